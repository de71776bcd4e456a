/* spill.h - memory for message bytes that may be big.
 *
 * A message is held whole while it is fetched, normalized and stored: sinks
 * take a pointer and a length. Past MF_SPILL_MIN bytes such a buffer is not
 * heap but a shared mapping of an unlinked temporary file in the spill
 * directory (the job's state directory), its blocks reserved up front with
 * posix_fallocate so that a full disk is an error here, never a SIGBUS
 * later. A 1 GB message then costs page cache, which the kernel writes back
 * and drops under pressure, instead of 1 GB of heap for each copy.
 *
 * Any pointer from here, and the data of any mf_buf (util.h), is released
 * with mf_bytes_free, which also frees ordinary heap pointers: code that
 * takes a buffer's bytes over frees them that way. Thread-safe.
 */
#ifndef MF_SPILL_H
#define MF_SPILL_H

#include <stddef.h>

#define MF_SPILL_MIN ((size_t)16 << 20)

/* Where spill files go (created unlinked, mode 0600). Default: $TMPDIR, else
 * /tmp. Copied. */
void mf_spill_set_dir(const char *dir);

/* n bytes: heap below MF_SPILL_MIN, else a spill mapping (heap if the
 * spill directory cannot take it). NULL when neither works. */
void *mf_bytes_alloc(size_t n);

/* Release p (NULL is fine): a spill mapping is unmapped, heap is freed. */
void mf_bytes_free(void *p);

/* An unlinked temporary file in the spill directory, open for reading and
 * writing (for bytes a library can only write to a FILE), or NULL. */
#include <stdio.h>
FILE *mf_spill_file(void);

/* For util.c's mf_buf: the size of the spill mapping at p (0 = not one);
 * a new mapping of n bytes; mapping p grown to n bytes (contents kept).
 * Both NULL on failure (p stays valid). */
size_t mf_spill_size(const void *p);
void *mf_spill_map(size_t n);
void *mf_spill_grow(void *p, size_t n);

#endif
