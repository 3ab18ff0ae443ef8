/* record_files.c — shard folders and content hashes for render results (see record_files.h). */
#include "worker/record_files.h"

#include <sodium.h>

#include <stdio.h>
#include <string.h>

void record_shard_dir(const char *out, const char *layout, uint64_t shard, char *dir, size_t cap) {
    if (!strcmp(layout, "tar")) snprintf(dir, cap, "%s/.staging/%05llu", out, (unsigned long long)shard);
    else snprintf(dir, cap, "%s/%05llu", out, (unsigned long long)shard);
}

void record_sha256_hex(const void *data, size_t n, char hex[65]) {
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, data, n);
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < (int)sizeof h; i++) { hex[2 * i] = digits[h[i] >> 4]; hex[2 * i + 1] = digits[h[i] & 15]; }
    hex[64] = 0;
}
