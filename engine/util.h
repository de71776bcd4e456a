/* util.h - small shared helpers: hashing, hex, files. */
#ifndef MF_UTIL_H
#define MF_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MF_SHA256_LEN 32

/* SHA-256 of data (nettle). */
void mf_sha256(const void *data, size_t len, unsigned char out[MF_SHA256_LEN]);
/* Lowercase hex of n bytes into out (2n+1 bytes). */
void mf_hex(const unsigned char *in, size_t n, char *out);

/* mkdir -p with mode 0700 for new directories. 0 or -errno. */
int mf_mkdirs(const char *path);
/* fsync a directory. 0 or -errno. */
int mf_fsync_dir(const char *path);
/* Read a whole file (up to max bytes) into a malloc'd buffer (NUL-terminated
 * beyond len). 0 or -errno (-EFBIG over max). */
int mf_read_file(const char *path, size_t max, char **out, size_t *len);

/* Monotonic milliseconds. */
uint64_t mf_now_ms(void);
/* Sleep ms milliseconds; returns early (1) when *stop becomes non-zero. */
int mf_sleep_ms(uint64_t ms, const volatile int *stop);

/* Growable byte buffer. With `spill` set, growth past MF_SPILL_MIN moves it
 * into a spill mapping (spill.h): for message bytes. Its data, taken over
 * or not, is released with mf_bytes_free (mf_buf_free does). */
struct mf_buf {
	char *data;
	size_t len, cap;
	bool spill;
};
int mf_buf_add(struct mf_buf *b, const void *data, size_t len);
int mf_buf_addstr(struct mf_buf *b, const char *s);
int mf_buf_printf(struct mf_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mf_buf_free(struct mf_buf *b);

#endif
