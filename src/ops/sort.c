/*
 * sort.c: stable sort of each line along a dim (sort, argsort, topk): a merge sort of (value,
 * position) pairs per line, in scratch memory from the ctx's allocator (freed before returning).
 * Only the comparison and the pair type are typed: one DEFINE_SORT line per dtype.
 *
 * Order: NaN is larger than every number (ascending it goes last, descending first), -0.0 equals
 * 0.0, and equal values keep their positions' order, as PyTorch's sort(stable=True).
 */
#include <math.h>
#include <string.h>

#include "sort.h"

/* a before b (strictly) in the requested order */
#define FLOAT_BEFORE(a, b, desc) \
    ((desc) ? (isnan(a) ? !isnan(b) : !isnan(b) && (a) > (b)) : (isnan(a) ? false : isnan(b) || (a) < (b)))
#define PLAIN_BEFORE(a, b, desc) ((desc) ? (a) > (b) : (a) < (b))

/* Sorts n pairs in p (tmp: room for n more) stably; bottom-up merges of runs 1, 2, 4, ... */
#define DEFINE_SORT(NAME, T, BEFORE)                                                           \
    typedef struct NAME##_pair { T v; int64_t i; } NAME##_pair;                                \
    static NAME##_pair *NAME##_merge_sort(NAME##_pair *p, NAME##_pair *tmp, int64_t n, bool desc) { \
        for (int64_t w = 1; w < n; w *= 2) {                                                   \
            for (int64_t lo = 0; lo < n; lo += 2 * w) {                                        \
                const int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n; \
                int64_t a = lo, b = mid, o = lo;                                               \
                while (a < mid && b < hi) /* the right one first only when strictly before */  \
                    tmp[o++] = BEFORE(p[b].v, p[a].v, desc) ? p[b++] : p[a++];                 \
                while (a < mid) tmp[o++] = p[a++];                                             \
                while (b < hi) tmp[o++] = p[b++];                                              \
            }                                                                                  \
            NAME##_pair *s = p;                                                                \
            p = tmp, tmp = s;                                                                  \
        }                                                                                      \
        return p;                                                                              \
    }                                                                                          \
    static void NAME(void *buf, const char *line, int64_t stride, int64_t n, char *vals,      \
                     int64_t vstride, char *idx, int64_t istride, int64_t k, bool desc) {      \
        NAME##_pair *p = (NAME##_pair *)buf, *tmp = p + n;                                     \
        for (int64_t j = 0; j < n; j++) p[j].v = *(const T *)(line + j * stride), p[j].i = j;  \
        p = NAME##_merge_sort(p, tmp, n, desc);                                                \
        for (int64_t j = 0; j < k; j++) {                                                      \
            if (vals) *(T *)(vals + j * vstride) = p[j].v;                                     \
            *(int64_t *)(idx + j * istride) = p[j].i + 1;                                      \
        }                                                                                      \
    }
DEFINE_SORT(sort_f32, float, FLOAT_BEFORE)
DEFINE_SORT(sort_f64, double, FLOAT_BEFORE)
DEFINE_SORT(sort_i64, int64_t, PLAIN_BEFORE)
DEFINE_SORT(sort_bool, bool, PLAIN_BEFORE)
typedef void (*sort_fn)(void *, const char *, int64_t, int64_t, char *, int64_t, char *, int64_t,
                        int64_t, bool);
static const sort_fn sorts[MG_NDTYPES] = {sort_f32, sort_f64, sort_i64, sort_bool};
/* the pair sizes, for the scratch (a pair of the widest type bounds them all) */
static const size_t pair_sizes[MG_NDTYPES] = {sizeof(sort_f32_pair), sizeof(sort_f64_pair),
                                              sizeof(sort_i64_pair), sizeof(sort_bool_pair)};

mg_status mg_sort(mg_ctx *ctx, mg_tensor *values, mg_tensor *indices, const mg_tensor *in, int dim,
                  bool descending, int64_t k) {
    const mg_dtype dt = (mg_dtype)in->dtype;
    const int64_t n = in->ndim ? in->size[dim] : 1;
    if (k < 0 || k > n || indices->dtype != MG_INT64 || (values && values->dtype != dt))
        return mg_fail(ctx, MG_EVALUE, 0, "sort: output of the wrong dtype or shape");
    if (in->numel == 0 || k == 0) return MG_OK;
    const size_t bytes = 2 * (size_t)n * pair_sizes[dt];
    void *buf = mg_alloc(ctx, bytes);
    if (!buf) return mg_fail(ctx, MG_ENOMEM, 0, "out of memory for sort's scratch (%zu bytes)", bytes);
    const int64_t item = (int64_t)mg_dtype_size(dt);
    int64_t s = 0, vs = 0, is = 0;
    int64_t ksize[MG_MAX_DIMS], kstride[MG_MAX_DIMS], kvstride[MG_MAX_DIMS], kistride[MG_MAX_DIMS];
    int64_t kindex[MG_MAX_DIMS] = {0};
    int nk = 0;
    int64_t lines = 1;
    for (int d = 0; d < in->ndim; d++) {
        if (d == dim) {
            s = in->stride[d] * item, is = indices->stride[d] * 8;
            vs = values ? values->stride[d] * item : 0;
        } else {
            ksize[nk] = in->size[d], kstride[nk] = in->stride[d] * item;
            kistride[nk] = indices->stride[d] * 8, kvstride[nk] = values ? values->stride[d] * item : 0;
            nk++, lines *= in->size[d];
        }
    }
    const char *p = (const char *)mg_tensor_data(in);
    char *v = values ? (char *)mg_tensor_data(values) : NULL, *ix = (char *)mg_tensor_data(indices);
    for (int64_t l = 0; l < lines; l++) {
        sorts[dt](buf, p, s, n, v, vs, ix, is, k, descending);
        for (int d = nk - 1; d >= 0; d--) {
            p += kstride[d], ix += kistride[d];
            if (v) v += kvstride[d];
            if (++kindex[d] < ksize[d]) break;
            p -= kstride[d] * ksize[d], ix -= kistride[d] * ksize[d];
            if (v) v -= kvstride[d] * ksize[d];
            kindex[d] = 0;
        }
    }
    mg_free(ctx, buf, bytes);
    return MG_OK;
}
