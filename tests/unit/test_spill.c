/* test_spill.c - engine/spill.c: big message buffers in unlinked files.
 * Below MF_SPILL_MIN memory is heap; past it, a mapping that grows with its
 * contents intact, is a file of the spill directory unlinked at once (as
 * /proc/self/maps shows), and falls back to
 * the heap when the directory cannot take it. */
#include <stdint.h>

#include "engine/error.h"
#include "engine/spill.h"
#include "engine/util.h"
#include "test.h"

static char dir[512];

/* What /proc/self/maps says is mapped at p: 1 = a file in the spill
 * directory that is already unlinked ("(deleted)"), 0 = something else
 * (the heap, or a file still linked), -1 = cannot tell. */
static int mapped_unlinked_spill(const void *p)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[1024];
	int r = -1;
	if (!f)
		return -1;
	while (r < 0 && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		int off = 0;
		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &off) < 2 || !off)
			continue;
		if ((unsigned long)(uintptr_t)p < lo || (unsigned long)(uintptr_t)p >= hi)
			continue;
		const char *path = line + off;
		r = strncmp(path, dir, strlen(dir)) == 0 && strstr(path, "(deleted)") != NULL;
	}
	fclose(f);
	return r < 0 ? 0 : r;
}


TEST(alloc_small_and_big)
{
	unsigned char *small = mf_bytes_alloc(1000);
	CHECK(small != NULL);
	CHECK_INT(mf_spill_size(small), 0);
	mf_bytes_free(small);
	size_t n = MF_SPILL_MIN + 12345;
	unsigned char *big = mf_bytes_alloc(n);
	CHECK(big != NULL);
	CHECK(mf_spill_size(big) >= n);
	for (size_t i = 0; big && i < n; i += 4096)
		big[i] = (unsigned char)(i >> 12);
	CHECK_INT(mapped_unlinked_spill(big), 1); /* a file, unlinked at once */
	mf_bytes_free(big);
	CHECK_INT(mf_spill_size(big), 0);
	mf_bytes_free(NULL);
}

/* An mf_buf with spill set moves to a mapping past the threshold and keeps
 * growing there; one without stays heap. */
TEST(buf_spills_and_grows)
{
	struct mf_buf b = {.spill = true}, h = {0};
	unsigned char chunk[65536];
	size_t total = 3 * MF_SPILL_MIN + 777;
	for (size_t off = 0; off < total;) {
		size_t n = total - off < sizeof(chunk) ? total - off : sizeof(chunk);
		for (size_t i = 0; i < n; i++)
			chunk[i] = (unsigned char)((off + i) * 31 + ((off + i) >> 16));
		CHECK_INT(mf_buf_add(&b, chunk, n), 0);
		if (off < MF_SPILL_MIN)
			CHECK_INT(mf_buf_add(&h, chunk, n), 0);
		off += n;
	}
	CHECK_INT(b.len, total);
	CHECK(mf_spill_size(b.data) >= total + 1);
	CHECK_INT(mapped_unlinked_spill(b.data), 1);
	CHECK_INT(mf_spill_size(h.data), 0);
	size_t bad = 0;
	for (size_t i = 0; i < total; i++)
		bad += (unsigned char)b.data[i] != (unsigned char)(i * 31 + (i >> 16));
	CHECK_INT(bad, 0);
	CHECK_INT(b.data[b.len], '\0');
	/* taken over, then freed the way owners of message bytes free */
	char *taken = b.data;
	mf_bytes_free(taken);
	CHECK_INT(mf_spill_size(taken), 0);
	CHECK_INT(mapped_unlinked_spill(h.data), 0); /* heap */
	mf_buf_free(&h);
}

/* A spill directory that cannot take the file: the heap, still correct. */
TEST(fallback_to_heap)
{
	char nodir[600];
	snprintf(nodir, sizeof(nodir), "%s/does-not-exist", dir);
	mf_spill_set_dir(nodir);
	size_t n = MF_SPILL_MIN + 1;
	unsigned char *p = mf_bytes_alloc(n);
	CHECK(p != NULL);
	CHECK_INT(mf_spill_size(p), 0);
	if (p) {
		memset(p, 7, n);
		CHECK_INT(p[n - 1], 7);
	}
	mf_bytes_free(p);
	struct mf_buf b = {.spill = true};
	static char big[1 << 20];
	for (int i = 0; i < 20; i++)
		CHECK_INT(mf_buf_add(&b, big, sizeof(big)), 0);
	CHECK_INT(b.len, 20 << 20);
	mf_buf_free(&b);
	mf_spill_set_dir(dir);
}

int main(void)
{
	const char *tmp = getenv("MF_TMP") ? getenv("MF_TMP") : "/tmp";
	snprintf(dir, sizeof(dir), "%s/spill", tmp);
	mf_mkdirs(dir);
	mf_spill_set_dir(dir);
	RUN(alloc_small_and_big);
	RUN(buf_spills_and_grows);
	RUN(fallback_to_heap);
	return test_done();
}
