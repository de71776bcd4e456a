/* spill.c - big message buffers as mappings of unlinked temporary files. */
#include "spill.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct region {
	void *p;
	size_t size;
	int fd;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct region *regs; /* under lock */
static size_t nregs, capregs;
static atomic_size_t live; /* nregs, read without the lock on the fast path */
static char spill_dir[4096];

void mf_spill_set_dir(const char *dir)
{
	pthread_mutex_lock(&lock);
	snprintf(spill_dir, sizeof(spill_dir), "%s", dir ? dir : "");
	pthread_mutex_unlock(&lock);
}

/* An unlinked file in the spill directory, or -1. */
static int spill_fd(void)
{
	char dir[sizeof(spill_dir)], path[sizeof(spill_dir) + 32];
	pthread_mutex_lock(&lock);
	memcpy(dir, spill_dir, sizeof(dir));
	pthread_mutex_unlock(&lock);
	if (!dir[0]) {
		const char *t = getenv("TMPDIR");
		snprintf(dir, sizeof(dir), "%s", t && *t ? t : "/tmp");
	}
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	/* file systems without O_TMPFILE */
	snprintf(path, sizeof(path), "%s/.mailferry-spill-XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		unlink(path);
	return fd;
}

FILE *mf_spill_file(void)
{
	int fd = spill_fd();
	FILE *f = fd >= 0 ? fdopen(fd, "w+") : NULL;
	if (!f && fd >= 0)
		close(fd);
	return f;
}

static int add_region(void *p, size_t size, int fd)
{
	pthread_mutex_lock(&lock);
	if (nregs == capregs) {
		size_t c = capregs ? capregs * 2 : 8;
		struct region *r = realloc(regs, c * sizeof(*r));
		if (!r) {
			pthread_mutex_unlock(&lock);
			return -1;
		}
		regs = r;
		capregs = c;
	}
	regs[nregs++] = (struct region){.p = p, .size = size, .fd = fd};
	atomic_store(&live, nregs);
	pthread_mutex_unlock(&lock);
	return 0;
}

/* Index of p's region or -1; under lock. */
static ssize_t find(const void *p)
{
	for (size_t i = 0; i < nregs; i++)
		if (regs[i].p == p)
			return (ssize_t)i;
	return -1;
}

void *mf_spill_map(size_t n)
{
	int fd = spill_fd();
	if (fd < 0)
		return NULL;
	/* blocks reserved now: a full disk fails here, not as SIGBUS later */
	if (posix_fallocate(fd, 0, (off_t)n) != 0) {
		close(fd);
		return NULL;
	}
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		close(fd);
		return NULL;
	}
	if (add_region(p, n, fd) < 0) {
		munmap(p, n);
		close(fd);
		return NULL;
	}
	return p;
}

void *mf_spill_grow(void *p, size_t n)
{
	pthread_mutex_lock(&lock);
	ssize_t i = find(p);
	void *q = NULL;
	if (i >= 0 && n > regs[i].size && posix_fallocate(regs[i].fd, 0, (off_t)n) == 0) {
		q = mremap(p, regs[i].size, n, MREMAP_MAYMOVE);
		if (q == MAP_FAILED) {
			q = NULL;
		} else {
			regs[i].p = q;
			regs[i].size = n;
		}
	}
	pthread_mutex_unlock(&lock);
	return q;
}

size_t mf_spill_size(const void *p)
{
	if (!p || atomic_load(&live) == 0)
		return 0;
	pthread_mutex_lock(&lock);
	ssize_t i = find(p);
	size_t n = i >= 0 ? regs[i].size : 0;
	pthread_mutex_unlock(&lock);
	return n;
}

void *mf_bytes_alloc(size_t n)
{
	void *p = n >= MF_SPILL_MIN ? mf_spill_map(n) : NULL;
	return p ? p : malloc(n ? n : 1);
}

void mf_bytes_free(void *p)
{
	if (!p)
		return;
	if (atomic_load(&live) > 0) {
		pthread_mutex_lock(&lock);
		ssize_t i = find(p);
		if (i >= 0) {
			struct region r = regs[i];
			regs[i] = regs[--nregs];
			atomic_store(&live, nregs);
			pthread_mutex_unlock(&lock);
			munmap(r.p, r.size);
			close(r.fd);
			return;
		}
		pthread_mutex_unlock(&lock);
	}
	free(p);
}
