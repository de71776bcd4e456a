/* azure_pst.h - the azure-blob sink's `upload = pst-files` mode (the staging
 * step of Microsoft 365's PST Import service, implemented in azure.c): the
 * pure parts, exposed for unit tests.
 *
 * Layout: each manifest PST goes to the block blob `{url prefix}/{FilePath/
 * Name}` with metadata sha256, mailbox, isarchive, targetrootfolder
 * (percent-encoded ASCII), and the import mapping CSV
 * `{url prefix}/mailferry-pst-import-mapping.csv` lists every such blob under
 * the prefix. All functions here are pure; any thread.
 */
#ifndef MF_SINK_AZURE_PST_H
#define MF_SINK_AZURE_PST_H

#include <stddef.h>
#include <stdint.h>

#define MF_AZURE_PST_CSV_NAME "mailferry-pst-import-mapping.csv"
#define MF_AZURE_PST_CSV_HEADER                                                        \
	"Workload,FilePath,Name,Mailbox,IsArchive,TargetRootFolder,ContentCodePage,"   \
	"SPFileContainer,SPManifestContainer,SPSiteUrl"

/* Azure allows at most 50,000 committed blocks per blob. */
#define MF_AZURE_PST_MAX_BLOCKS 50000u

/* The block size for a file of `file_size` bytes under service version `sv`
 * ("YYYY-MM-DD": a SAS's sv, or the x-ms-version sent with Shared Key).
 *   - sv before 2016-05-31, missing or malformed: 4 MiB (Put Block's limit
 *     for those versions; the PST Import SAS has sv=2012-02-12/2015-04-05).
 *   - 2016-05-31 and later: 16 MiB. The limit is 100 MiB (4000 MiB from
 *     2019-12-12) but each running upload holds one block in memory, a
 *     failed block is sent again whole, and 16 MiB already makes the
 *     per-request overhead negligible (a 20 GB PST is 1,221 blocks).
 * When the file would need more than 50,000 blocks, the size grows (whole
 * MiB) up to the version's limit, capped at 100 MiB. Returns 0 when the file
 * cannot fit at all. */
size_t mf_azure_pst_block_size(const char *sv, uint64_t file_size);

/* The block id of block `index` (< 1,000,000) of a file: base64 of 12 raw
 * bytes, 6 bytes of `tag` (derived from the file's SHA-256 and the block
 * size, so that blocks left by another version of the file are never
 * reused) then the index as 6 decimal digits. Always 16 characters (no '='),
 * written NUL-terminated into out. */
void mf_azure_pst_block_id(const unsigned char tag[6], unsigned index, char out[17]);

#endif
