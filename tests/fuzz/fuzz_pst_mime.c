/* fuzz_pst_mime.c - libFuzzer target: the PST source (libpst + our
 * PST-to-MIME) on mutated PST files. The input is written to a temp file,
 * opened as a PST unit, and up to 64 messages per folder are fetched. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/conf.h"
#include "engine/error.h"
#include "engine/message.h"
#include "engine/source.h"
#include "engine/unit.h"

extern const struct mf_source_ops mf_source_pst;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct keys {
	char *key[64];
	int n;
};

static int collect(void *arg, const struct mf_msgref *ref)
{
	struct keys *k = arg;
	if (k->n < 64 && ref->key && !ref->skip_kind)
		k->key[k->n++] = strdup(ref->key);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *tmp = getenv("TMPDIR");
	char path[512];
	snprintf(path, sizeof(path), "%s/mf-fuzz-pst-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	int fd = mkstemp(path);
	if (fd < 0)
		return 0;
	size_t off = 0;
	while (off < size) {
		ssize_t w = write(fd, data + off, size - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(fd);

	const struct mf_source_ops *ops = &mf_source_pst;
	struct mf_conf_section sec = { .file = "fuzz.ini", .dir = "/tmp", .name = (char *)"source" };
	struct mf_err err = { 0 };
	void *cfg = NULL, *src = NULL;
	struct mf_unit unit = { .id = (char *)"fuzz", .mailbox = (char *)"fuzz@example.org",
				.source_desc = path, .pst_path = path, .target_root = (char *)"" };
	if (ops->configure && ops->configure(&sec, &cfg, &err) != 0)
		goto out;
	if (ops->open(cfg, &unit, &src, &err) != 0)
		goto out;
	const struct mf_folder *folders;
	size_t nf;
	if (ops->folders(src, &folders, &nf, &err) == 0) {
		for (size_t f = 0; f < nf && f < 32; f++) {
			struct keys k = { .n = 0 };
			char *next = NULL;
			ops->list(src, &folders[f], NULL, collect, &k, &next, &err);
			free(next);
			for (int i = 0; i < k.n; i++) {
				struct mf_msgref ref = { .key = k.key[i] };
				struct mf_msg m = { 0 };
				if (ops->fetch(src, &folders[f], &ref, &m, &err) == 0)
					mf_msg_clear(&m);
				free(k.key[i]);
			}
		}
	}
out:
	if (src)
		ops->close(src);
	if (cfg && ops->free_config)
		ops->free_config(cfg);
	unlink(path);
	return 0;
}
