/* npy.c — read and write numpy .npy files (see npy.h). */
#include "models/formats/npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct { const char *descr; dtype type; } npy_types[] = {
    {"<f4", DT_F32}, {"<f2", DT_F16}, {"<f8", DT_F64}, {"<i8", DT_I64}, {"<i4", DT_I32},
    {"<i2", DT_I16}, {"|i1", DT_I8}, {"|u1", DT_U8},   {"|b1", DT_BOOL}, {"<u2", DT_BF16},
};

/* Finds 'key': value in the header dict; returns a pointer just past the colon. */
static const char *header_field(const char *h, const char *key) {
    char pattern[32];
    snprintf(pattern, sizeof pattern, "'%s'", key);
    const char *p = strstr(h, pattern);
    if (!p) return NULL;
    p = strchr(p + strlen(pattern), ':');
    return p ? p + 1 : NULL;
}

int npy_load(const char *path, tensor *out) {
    FILE *f = fopen(path, "rb");
    if (!f) return ts_fail("%s: cannot open", path);
    unsigned char pre[10];
    char *header = NULL;
    int rc = -1;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) { ts_fail("%s: not an .npy file", path); goto done; }
    size_t hlen;
    if (pre[6] == 1) hlen = pre[8] | (size_t)pre[9] << 8;
    else {
        unsigned char more[2];
        if (fread(more, 1, 2, f) != 2) { ts_fail("%s: truncated header", path); goto done; }
        hlen = pre[8] | (size_t)pre[9] << 8 | (size_t)more[0] << 16 | (size_t)more[1] << 24;
    }
    if (hlen > (1u << 20)) { ts_fail("%s: header of %zu bytes is too large", path, hlen); goto done; }
    header = ts_malloc(hlen + 1);
    if (fread(header, 1, hlen, f) != hlen) { ts_fail("%s: truncated header", path); goto done; }
    header[hlen] = 0;

    const char *d = header_field(header, "descr");
    const char *fo = header_field(header, "fortran_order");
    const char *sh = header_field(header, "shape");
    if (!d || !fo || !sh) { ts_fail("%s: header lacks descr/fortran_order/shape", path); goto done; }
    while (*d == ' ') d++;
    dtype type = DT_COUNT;
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
        if (strncmp(d + 1, npy_types[i].descr, 3) == 0) type = npy_types[i].type;
    if (type == DT_COUNT) { ts_fail("%s: unsupported dtype %.6s", path, d); goto done; }
    while (*fo == ' ') fo++;
    if (strncmp(fo, "False", 5) != 0) { ts_fail("%s: Fortran-order arrays are not supported", path); goto done; }

    int64_t shape[TENSOR_MAX_DIMS];
    int ndim = 0;
    const char *p = strchr(sh, '(');
    if (!p) { ts_fail("%s: bad shape", path); goto done; }
    p++;
    while (*p && *p != ')') {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ')') break;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0) { ts_fail("%s: bad shape", path); goto done; }
        if (ndim == TENSOR_MAX_DIMS) { ts_fail("%s: more than %d dimensions", path, TENSOR_MAX_DIMS); goto done; }
        shape[ndim++] = v;
        p = end;
    }
    if (ndim == 0) shape[ndim++] = 1;
    *out = tensor_new(type, ndim, shape);
    size_t bytes = tensor_nbytes(out);
    if (fread(out->data, 1, bytes, f) != bytes) {
        tensor_free(out);
        ts_fail("%s: data is shorter than the shape says (%zu bytes expected)", path, bytes);
        goto done;
    }
    rc = 0;
done:
    free(header);
    fclose(f);
    return rc;
}

int npy_save(const char *path, const tensor *t) {
    const char *descr = NULL;
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
        if (npy_types[i].type == t->type) descr = npy_types[i].descr;
    if (!descr || t->type == DT_BF16) return ts_fail("%s: dtype %s cannot be written as .npy", path, dtype_name(t->type));

    char header[256];
    int n = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int d = 0; d < t->ndim; d++)
        n += snprintf(header + n, sizeof header - (size_t)n, "%lld,%s", (long long)t->shape[d], d + 1 < t->ndim ? " " : "");
    n += snprintf(header + n, sizeof header - (size_t)n, "), }");
    int total = 10 + n + 1;
    int pad = (64 - total % 64) % 64;

    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) return ts_fail("%s: cannot create", tmp);
    unsigned hl = (unsigned)(n + pad + 1);
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xff), (unsigned char)(hl >> 8)};
    fwrite(pre, 1, 10, f);
    fwrite(header, 1, (size_t)n, f);
    for (int i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);

    tensor c = tensor_new(t->type, t->ndim, t->shape);
    tensor_copy(&c, t);
    fwrite(c.data, 1, tensor_nbytes(&c), f);
    tensor_free(&c);
    if (fflush(f) != 0 || ferror(f)) { fclose(f); unlink(tmp); return ts_fail("%s: write failed", tmp); }
    fclose(f);
    if (rename(tmp, path) != 0) { unlink(tmp); return ts_fail("%s: cannot rename into place", path); }
    return 0;
}
