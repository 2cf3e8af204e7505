/*
 * conv.c: conv2d (conv1d is a conv2d of height 1) and the 2-d pools, forward and backward, and the
 * rule of the MG_FAM_CONV family (the norm ops' part is in norm.c).
 *
 * Convolution as matrix products. x (N,C,H,W) is unfolded (im2col) into col (C kh kw, N OH OW):
 * row ((c kh + i) kw + j), column (n OH OW + p) holds the input element under kernel tap (i,j) of
 * output position p of sample n (0 in the padding). Seen per group g, col_g is (K, P) with
 * K = C/groups kh kw and P = N OH OW, and
 *     forward   out_g (O/groups, P) = W_g (O/groups, K) col_g          (then permuted to (N,O,OH,OW))
 *     dW_g      (O/groups, K)       = gout_g (O/groups, P) col_g^T
 *     dcol_g    (K, P)              = W_g^T gout_g                      (then folded back: col2im)
 * each one product of the gemm engine per group (its order of sums is fixed by the sizes: the
 * same bits for any thread count and ISA). Because col keeps the whole batch side by side, dW is
 * one product whose inner dimension runs over the batch too (no per-sample partial sums).
 * im2col / col2im / the permutes are split over threads by rows / input planes, each written by one
 * index of the range. That is the batched path, for large images and small batches; small images
 * in batches of 4 or more take the per-sample path (below), one sample's columns at a time in a
 * thread's cache.
 */
#include <math.h>
#include <string.h>

#include "../core/cpu.h"
#include "conv.h"
#include "gemm.h"
#include "grad.h"
#include "ops.h"
#include "scalar.h"

#define NAME(e, name) name,
static const char *const conv_names[MG_NCONV] = {MG_CONV_OPS(NAME)};
#undef NAME
const char *mg_conv_name(mg_conv_op op) { return conv_names[op]; }

void mg_conv_geom_pack(int64_t *iarg, const mg_conv2d_geom *g) {
    iarg[0] = (g->sh << 32) | g->sw;
    iarg[1] = (g->ph << 32) | g->pw;
    iarg[2] = (g->dh << 32) | g->dw;
    iarg[3] = g->groups;
}
void mg_conv_geom_unpack(const int64_t *iarg, mg_conv2d_geom *g) {
    const int64_t lo = 0xffffffff;
    g->sh = iarg[0] >> 32, g->sw = iarg[0] & lo;
    g->ph = iarg[1] >> 32, g->pw = iarg[1] & lo;
    g->dh = iarg[2] >> 32, g->dw = iarg[2] & lo;
    g->groups = iarg[3];
    g->divisor = g->exclude_pad = 0;
}
void mg_pool_pack(int64_t *iarg, const mg_conv2d_geom *g) {
    mg_conv_geom_pack(iarg, g);
    iarg[3] = 2 * g->divisor + (g->exclude_pad != 0);
}
void mg_pool_unpack(const int64_t *iarg, mg_conv2d_geom *g) {
    mg_conv_geom_unpack(iarg, g);
    g->groups = 1;
    g->exclude_pad = iarg[3] & 1;
    g->divisor = (iarg[3] - g->exclude_pad) / 2;
}

mg_status mg_conv_contiguous(mg_ctx *ctx, const mg_tensor *t, mg_scratch *sc, const mg_tensor **out) {
    sc->s.data = NULL;
    *out = t;
    if (mg_is_contiguous(t)) return MG_OK;
    mg_status st = mg_scratch_new(ctx, sc, (mg_dtype)t->dtype, t->ndim, t->size);
    if (st == MG_OK) st = mg_copy(ctx, &sc->t, t);
    *out = &sc->t;
    return st;
}

/* ---- im2col / col2im ------------------------------------------------------------------------ */
typedef struct conv_job {
    mg_dtype dt;
    const char *x;      /* x's first element */
    int64_t xs[4];      /* x's strides, elements */
    char *col;          /* (C kh kw, N OH OW) */
    char *dx;           /* col2im: (N,C,H,W) contiguous */
    const char *gout;   /* pool backward: d loss / d out, contiguous (N,C,OH,OW) */
    const int64_t *idx;
    char *out;
    int64_t N, C, H, W, OH, OW;
    mg_conv2d_geom g;
    int isa; /* the ctx's instruction-set level (cpu.h), for the stamped row kernels */
    int relu; /* max pool: the fused relu (see mg_max_pool2d_relu) */
    uint8_t *slot; /* the fused relu over 2x2 windows: a byte a window (MAX22_ROWS' SLOT) */
} conv_job;

/* x / s rounded down and up, for x >= 0, s >= 1: stride 1, the common case, without a division
 * (im2col finds its range once a row of col) */
static inline int64_t div_down(int64_t x, int64_t s) {
    if (s == 1) return x;
    __asm__("" : "+r"(s)); /* else GCC merges the two cases back into one division (x / 1 == x) */
    return x / s;
}
static inline int64_t div_up(int64_t x, int64_t s) { return div_down(x + s - 1, s); }

/* The outputs o (of `out` along one axis) whose tap reads inside the input (of `in`) at
 * o stride + off: [*lo, *hi) (may be empty). */
static void valid_range(int64_t off, int64_t stride, int64_t in, int64_t out, int64_t *lo, int64_t *hi) {
    int64_t a = off >= 0 ? 0 : div_up(-off, stride);
    int64_t b = in - 1 - off < 0 ? 0 : div_down(in - 1 - off, stride) + 1;
    if (a > out) a = out;
    if (b > out) b = out;
    if (b < a) b = a;
    *lo = a, *hi = b;
}
/* the output columns ow whose tap kj reads inside the input row; the rows oh for tap ki */
static void valid_cols(const conv_job *j, int64_t kj, int64_t *lo, int64_t *hi) {
    valid_range(kj * j->g.dw - j->g.pw, j->g.sw, j->W, j->OW, lo, hi);
}
static void valid_rows(const conv_job *j, int64_t ki, int64_t *lo, int64_t *hi) {
    valid_range(ki * j->g.dh - j->g.ph, j->g.sh, j->H, j->OH, lo, hi);
}

#define IM2COL_ROW(T)                                                                      \
    do {                                                                                   \
        const T *xp = (const T *)j->x + n * j->xs[0] + c * j->xs[1];                       \
        T *dst = (T *)j->col + r * OHW;                                                    \
        const int64_t step = g->sw * j->xs[3], off = kj * g->dw - g->pw;                   \
        if (shifted) { /* col row = the plane shifted by one offset, edges zeroed */       \
            const int64_t shift = (ki * g->dh - g->ph) * j->W + off;                        \
            int64_t oh0, oh1;                                                              \
            valid_rows(j, ki, &oh0, &oh1);                                                 \
            /* [t0, t1): from the first valid column of row oh0 to the last of row oh1 - 1 */ \
            const int64_t t0 = oh0 < oh1 ? oh0 * j->OW + lo : 0;                           \
            const int64_t t1 = oh0 < oh1 && lo < hi ? (oh1 - 1) * j->OW + hi : t0;         \
            memset(dst, 0, sizeof(T) * (size_t)t0);                                        \
            if (t0 < t1) memcpy(dst + t0, xp + t0 + shift, sizeof(T) * (size_t)(t1 - t0)); \
            memset(dst + t1, 0, sizeof(T) * (size_t)(OHW - t1));                           \
            for (int64_t oh = oh0; oh < oh1 - 1 && t0 < t1; oh++) { /* the edges between */ \
                T *d = dst + oh * j->OW;                                                   \
                for (int64_t ow = hi; ow < j->OW; ow++) d[ow] = 0;                         \
                for (int64_t ow = 0; ow < lo; ow++) d[j->OW + ow] = 0;                     \
            }                                                                              \
            break;                                                                         \
        }                                                                                  \
        for (int64_t oh = 0; oh < j->OH; oh++) {                                           \
            const int64_t ih = oh * g->sh - g->ph + ki * g->dh;                            \
            T *d = dst + oh * j->OW;                                                       \
            if (ih < 0 || ih >= j->H) {                                                    \
                memset(d, 0, sizeof(T) * (size_t)j->OW);                                   \
                continue;                                                                  \
            }                                                                              \
            const T *src = xp + ih * j->xs[2] + (lo * g->sw + off) * j->xs[3];             \
            for (int64_t ow = 0; ow < lo; ow++) d[ow] = 0;                                 \
            if (step == 1) memcpy(d + lo, src, sizeof(T) * (size_t)(hi - lo));             \
            else                                                                           \
                for (int64_t ow = lo; ow < hi; ow++) d[ow] = src[(ow - lo) * step];        \
            for (int64_t ow = hi; ow < j->OW; ow++) d[ow] = 0;                             \
        }                                                                                  \
    } while (0)

/* Stride 1 across and down, as wide as the input, planes of contiguous rows: every tap reads the
 * plane at one offset from the output position (ih W + iw = oh OW + ow + shift), so a row of col is
 * one copy of the plane (a 14-wide image: one memcpy instead of 14) with the padding zeroed. */
static int shifted_layout(const conv_job *j) {
    return j->g.sh == 1 && j->g.sw == 1 && j->OW == j->W && j->xs[3] == 1 && j->xs[2] == j->W;
}

/* rows r = ((c kh + ki) kw + kj) N + n of col */
static void im2col_range(void *arg, int64_t b, int64_t e) {
    const conv_job *j = (const conv_job *)arg;
    const mg_conv2d_geom *g = &j->g;
    const int64_t OHW = j->OH * j->OW;
    const int shifted = shifted_layout(j);
    /* r's digits (c, ki, kj, n), found once and then counted up: a division a row cost more
     * than copying a 14-wide image's row */
    int64_t n = b % j->N, t = b / j->N;
    int64_t kj = t % g->kw, ki = (t / g->kw) % g->kh, c = t / g->kw / g->kh;
    for (int64_t r = b; r < e; r++) {
        int64_t lo, hi;
        valid_cols(j, kj, &lo, &hi);
        if (j->dt == MG_FLOAT64) IM2COL_ROW(double);
        else IM2COL_ROW(float);
        if (++n < j->N) continue;
        n = 0;
        if (++kj < g->kw) continue;
        kj = 0;
        if (++ki < g->kh) continue;
        ki = 0, c++;
    }
}

/* dst[i] += src[i], i < n, at the level's vector width (plain adds: the same bits at every level) */
#define ADD_RUN(isa, T)                                                                        \
    static void MG_ISA_FN(add_run_##T, isa)(T *restrict dst, const T *restrict src, int64_t n) { \
        for (int64_t i = 0; i < n; i++) dst[i] += src[i];                                      \
    }
MG_ISA_STAMP(ADD_RUN, float)
MG_ISA_STAMP(ADD_RUN, double)
#undef ADD_RUN

/* dst[i] = src[i] + v, i < n (dst may be src): the bias, at the level's vector width (a plain
 * add: the same bits at every level; stamped and aligned, the loop no longer ran at the mercy of
 * where the linker put it: 64 to 120 us a 64x16x28x28 output as unrelated code moved) */
#define ADD_BIAS(isa, T)                                                                       \
    static void MG_ISA_FN(add_bias_##T, isa)(T *dst, const T *src, int64_t n, T v) {           \
        for (int64_t i = 0; i < n; i++) dst[i] = src[i] + v;                                   \
    }
MG_ISA_STAMP(ADD_BIAS, float)
MG_ISA_STAMP(ADD_BIAS, double)
#undef ADD_BIAS

#define COL2IM_PLANE(T)                                                                        \
    do {                                                                                       \
        T *plane = (T *)j->dx + q * j->H * j->W;                                               \
        memset(plane, 0, sizeof(T) * (size_t)(j->H * j->W));                                   \
        if (g->sh == 1 && g->sw == 1 && j->OW == j->W) { /* im2col's shifted layout, undone */   \
            for (int64_t ki = 0; ki < g->kh; ki++)                                             \
                for (int64_t kj = 0; kj < g->kw; kj++) {                                       \
                    T *src = (T *)j->col + (((c * g->kh + ki) * g->kw + kj) * j->N + n) * OHW; \
                    int64_t lo, hi, oh0, oh1;                                                  \
                    valid_cols(j, kj, &lo, &hi);                                               \
                    valid_rows(j, ki, &oh0, &oh1);                                             \
                    if (oh0 >= oh1 || lo >= hi) continue;                                      \
                    const int64_t shift = (ki * g->dh - g->ph) * j->W + kj * g->dw - g->pw;    \
                    /* the padding's gradients between two rows' valid columns: zeroed (dcol \
                     * is scratch), so one run adds them as +0, which changes nothing */      \
                    for (int64_t oh = oh0; oh < oh1 - 1; oh++) {                               \
                        for (int64_t ow = hi; ow < j->OW; ow++) src[oh * j->OW + ow] = 0;      \
                        for (int64_t ow = 0; ow < lo; ow++) src[(oh + 1) * j->OW + ow] = 0;    \
                    }                                                                          \
                    const int64_t t0 = oh0 * j->OW + lo, t1 = (oh1 - 1) * j->OW + hi;          \
                    MG_ISA_PICK(j->isa, add_run_##T)(plane + t0 + shift, src + t0, t1 - t0);  \
                }                                                                              \
            break;                                                                             \
        }                                                                                      \
        for (int64_t ki = 0; ki < g->kh; ki++)                                                 \
            for (int64_t kj = 0; kj < g->kw; kj++) {                                           \
                const T *src = (const T *)j->col + (((c * g->kh + ki) * g->kw + kj) * j->N + n) * OHW; \
                int64_t lo, hi;                                                                \
                valid_cols(j, kj, &lo, &hi);                                                   \
                const int64_t off = kj * g->dw - g->pw;                                        \
                for (int64_t oh = 0; oh < j->OH; oh++) {                                       \
                    const int64_t ih = oh * g->sh - g->ph + ki * g->dh;                        \
                    if (ih < 0 || ih >= j->H) continue;                                        \
                    T *drow = plane + ih * j->W;                                               \
                    const T *srow = src + oh * j->OW;                                          \
                    if (g->sw == 1)                                                            \
                        for (int64_t ow = lo; ow < hi; ow++) drow[ow + off] += srow[ow];       \
                    else                                                                       \
                        for (int64_t ow = lo; ow < hi; ow++) drow[ow * g->sw + off] += srow[ow]; \
                }                                                                              \
            }                                                                                  \
    } while (0)

/* input planes q = n C + c of dx */
static void col2im_range(void *arg, int64_t b, int64_t e) {
    const conv_job *j = (const conv_job *)arg;
    const mg_conv2d_geom *g = &j->g;
    const int64_t OHW = j->OH * j->OW;
    for (int64_t q = b; q < e; q++) {
        const int64_t n = q / j->C, c = q % j->C;
        if (j->dt == MG_FLOAT64) COL2IM_PLANE(double);
        else COL2IM_PLANE(float);
    }
}

static int64_t grain_for(int64_t work_per_index) {
    const int64_t g = 32768 / (work_per_index > 0 ? work_per_index : 1);
    return g > 0 ? g : 1;
}

/* 4-d views: t seen as (N,C,H,W); `spatial` is 1 (conv1d) or 2; an unbatched t gets N = 1. */
mg_tensor *mg_conv_view4(mg_view_buf *vb, const mg_tensor *t, int spatial) {
    mg_tensor *v = mg_view_of(vb, t, 4);
    const int batched = t->ndim == spatial + 2;
    int d = 0;
    v->size[0] = batched ? t->size[d] : 1, v->stride[0] = batched ? t->stride[d++] : 0;
    v->size[1] = t->size[d], v->stride[1] = t->stride[d++];
    if (spatial == 1) v->size[2] = 1, v->stride[2] = 0;
    else v->size[2] = t->size[d], v->stride[2] = t->stride[d++];
    v->size[3] = t->size[d], v->stride[3] = t->stride[d];
    return v;
}

static void fill_job(conv_job *j, const mg_tensor *x, int64_t OH, int64_t OW, const mg_conv2d_geom *g) {
    memset(j, 0, sizeof *j);
    j->dt = (mg_dtype)x->dtype;
    j->x = (const char *)mg_tensor_data(x);
    for (int d = 0; d < 4; d++) j->xs[d] = x->stride[d];
    j->N = x->size[0], j->C = x->size[1], j->H = x->size[2], j->W = x->size[3];
    j->OH = OH, j->OW = OW;
    j->g = *g;
}

/* col <- im2col(x); col is allocated here (the caller frees it). */
static mg_status unfold(mg_ctx *ctx, conv_job *j, mg_scratch *col) {
    const int64_t rows = j->C * j->g.kh * j->g.kw * j->N, OHW = j->OH * j->OW;
    const int64_t size[2] = {rows / j->N, j->N * OHW};
    mg_status st = mg_scratch_new(ctx, col, j->dt, 2, size);
    if (st != MG_OK) return st;
    j->col = (char *)col->s.data;
    mg_parallel_for(ctx, rows, grain_for(OHW), im2col_range, j);
    return MG_OK;
}

/* ---- permutes between (N, O, S) and (O, N S), with the bias --------------------------------- */
typedef struct perm_job {
    mg_dtype dt;
    const char *src;
    char *dst;
    const char *bias; /* to_nos: added (may be NULL) */
    int64_t bias_stride;
    int64_t N, O, S;
    int to_nos;       /* 1: (O, N S) -> (N, O, S); 0: (N, O, S) -> (O, N S) */
} perm_job;

#define PERM_ROW(T)                                                                            \
    do {                                                                                       \
        const T *s = (const T *)p->src + (p->to_nos ? (o * p->N + n) * p->S : (n * p->O + o) * p->S); \
        T *d = (T *)p->dst + (p->to_nos ? (n * p->O + o) * p->S : (o * p->N + n) * p->S);      \
        if (p->bias) {                                                                         \
            const T bv = ((const T *)p->bias)[o * p->bias_stride];                             \
            for (int64_t k = 0; k < p->S; k++) d[k] = s[k] + bv;                               \
        } else {                                                                               \
            memcpy(d, s, sizeof(T) * (size_t)p->S);                                            \
        }                                                                                      \
    } while (0)

/* rows r = n O + o */
static void perm_range(void *arg, int64_t b, int64_t e) {
    const perm_job *p = (const perm_job *)arg;
    for (int64_t r = b; r < e; r++) {
        const int64_t n = r / p->O, o = r % p->O;
        if (p->dt == MG_FLOAT64) PERM_ROW(double);
        else PERM_ROW(float);
    }
}

static void permute(mg_ctx *ctx, perm_job *p) {
    mg_parallel_for(ctx, p->N * p->O, grain_for(p->S), perm_range, p);
}

/* ---- the weight gradient of a few taps: a dot-product kernel ---------------------------------
 * dW (O, K) = gout (O, S) col^T is a product whose B is col transposed: the gemm packs it (a
 * transpose a sample) and, for K = 9 (one input channel, 3x3), pads 9 columns to a 16- or 48-wide
 * tile. Here each element is a dot product of two contiguous rows instead:
 *     c[i ldc + j] = sum over p < k of a[i lda + p] b[j][p]      (float32; b: a table of rows)
 * in DOT_LANES lanes, lane l summing the terms p = l mod 16 in order of p from 0 with a fused
 * multiply-add (the baseline: the product rounded, then the add, as the gemm's portable kernel),
 * then the lanes folded in a fixed tree (l + l+8, then + 4, + 2, + 1: dot_fold). AVX-512 holds the
 * 16 lanes in one zmm, AVX2 in two ymm: the same operations lane by lane, the same bits; both fold
 * on the vectors, the same adds as dot_fold's (folding through memory, scalar, cost the book's conv1
 * dW about 75 of its ~450 us). Rows are taken two by two of a and of b (AVX-512: three by three of
 * b), several sums in flight, each row loaded once for two or three of them. */
#define DOT_LANES 16
#define DOT_MAX_K 16 /* taps a group: K 9 (book's conv1) 553 -> 440 us a batch; K 144 ran slower than the gemm */
static float dot_fold(float *l) {
    for (int w = DOT_LANES / 2; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) l[i] += l[i + w];
    return l[0];
}
static void dot_nt_base(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *const *b,
                        float *c, int64_t ldc) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            float l[DOT_LANES] = {0};
            const float *x = a + i * lda, *y = b[j];
            for (int64_t p = 0; p < k; p++) l[p % DOT_LANES] = l[p % DOT_LANES] + x[p] * y[p];
            c[i * ldc + j] = dot_fold(l);
        }
}
#if MG_CPU_X86
/* the four sums of rows i, i1 of a and j, j1 of b (i1 == i, j1 == j: a lone last row, its repeats
 * dropped) */
#define DOT_STORE(V, FOLD)                                                                     \
    do {                                                                                       \
        c[i * ldc + j] = FOLD(V##00);                                                          \
        if (j1 != j) c[i * ldc + j1] = FOLD(V##01);                                            \
        if (i1 != i) c[i1 * ldc + j] = FOLD(V##10);                                            \
        if (i1 != i && j1 != j) c[i1 * ldc + j1] = FOLD(V##11);                                \
    } while (0)
#define DOT_LOOP_HEAD                                                                          \
    for (int64_t i = 0; i < m; i += 2)                                                         \
        for (int64_t j = 0; j < n; j += 2) {                                                   \
            const int64_t i1 = i + 1 < m ? i + 1 : i, j1 = j + 1 < n ? j + 1 : j;            \
            const float *a0 = a + i * lda, *a1 = a + i1 * lda, *b0 = b[j], *b1 = b[j1];
/* AVX-512: rows of a two by two, of b three by three (six sums in flight; K 9 taps: no lone row) */
MG_TARGET("avx512f,fma") static void dot_nt_avx512(int64_t m, int64_t n, int64_t k, const float *a,
                                                   int64_t lda, const float *const *b, float *c, int64_t ldc) {
    const int64_t kq = k / DOT_LANES * DOT_LANES;
    const __mmask16 tail = (__mmask16)((1u << (k - kq)) - 1);
    for (int64_t i = 0; i < m; i += 2)
        for (int64_t j = 0; j < n; j += 3) {
            const float *ar[2], *br[3];
            _Pragma("GCC unroll 2") for (int t = 0; t < 2; t++) ar[t] = a + (i + t < m ? i + t : i) * lda;
            _Pragma("GCC unroll 3") for (int u = 0; u < 3; u++) br[u] = b[j + u < n ? j + u : j];
            __m512 acc[2][3];
            _Pragma("GCC unroll 2") for (int t = 0; t < 2; t++)
                _Pragma("GCC unroll 3") for (int u = 0; u < 3; u++) acc[t][u] = _mm512_setzero_ps();
            for (int64_t p = 0; p < kq; p += DOT_LANES) {
                __m512 x[2], y[3];
                _Pragma("GCC unroll 2") for (int t = 0; t < 2; t++) x[t] = _mm512_loadu_ps(ar[t] + p);
                _Pragma("GCC unroll 3") for (int u = 0; u < 3; u++) y[u] = _mm512_loadu_ps(br[u] + p);
                _Pragma("GCC unroll 2") for (int t = 0; t < 2; t++)
                    _Pragma("GCC unroll 3") for (int u = 0; u < 3; u++) acc[t][u] = _mm512_fmadd_ps(x[t], y[u], acc[t][u]);
            }
            if (tail) { /* the last k mod 16 terms into lanes 0..: the other lanes add 0 x 0 */
                __m512 x[2], y[3];
                _Pragma("GCC unroll 2") for (int t = 0; t < 2; t++) x[t] = _mm512_maskz_loadu_ps(tail, ar[t] + kq);
                _Pragma("GCC unroll 3") for (int u = 0; u < 3; u++) y[u] = _mm512_maskz_loadu_ps(tail, br[u] + kq);
                _Pragma("GCC unroll 2") for (int t = 0; t < 2; t++)
                    _Pragma("GCC unroll 3") for (int u = 0; u < 3; u++) acc[t][u] = _mm512_fmadd_ps(x[t], y[u], acc[t][u]);
            }
            for (int t = 0; t < 2 && i + t < m; t++)
                for (int u = 0; u < 3 && j + u < n; u++) {
                    /* dot_fold's tree on the vector: halves added, l + l+8, + 4, + 2, + 1 */
                    const __m512 v = acc[t][u];
                    const __m256 h8 = _mm256_add_ps(_mm512_castps512_ps256(v),
                                                    _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
                    const __m128 h4 = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
                    const __m128 h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
                    c[(i + t) * ldc + j + u] = _mm_cvtss_f32(_mm_add_ss(h2, _mm_shuffle_ps(h2, h2, 1)));
                }
        }
}
/* lanes 0-7 in the first ymm (h = 0), 8-15 in the second; dot_fold's tree on the vectors */
MG_TARGET("avx2,fma") static inline float fold256(const __m256 *v) {
    const __m256 h8 = _mm256_add_ps(v[0], v[1]);
    const __m128 h4 = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
    const __m128 h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
    return _mm_cvtss_f32(_mm_add_ss(h2, _mm_shuffle_ps(h2, h2, 1)));
}
#define FOLD256(v) fold256(v)
MG_TARGET("avx2,fma") static void dot_nt_avx2(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                                              const float *const *b, float *c, int64_t ldc) {
    const int64_t kq = k / DOT_LANES * DOT_LANES, r = k - kq;
    __m256i mask[2];
    for (int h = 0; h < 2; h++)
        mask[h] = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), _mm256_setr_epi32(8 * h, 8 * h + 1, 8 * h + 2,
                                     8 * h + 3, 8 * h + 4, 8 * h + 5, 8 * h + 6, 8 * h + 7));
    DOT_LOOP_HEAD
        __m256 s00[2], s01[2], s10[2], s11[2];
        for (int h = 0; h < 2; h++) s00[h] = s01[h] = s10[h] = s11[h] = _mm256_setzero_ps();
        for (int64_t p = 0; p < kq; p += DOT_LANES)
            for (int h = 0; h < 2; h++) {
                const __m256 x0 = _mm256_loadu_ps(a0 + p + 8 * h), x1 = _mm256_loadu_ps(a1 + p + 8 * h);
                const __m256 y0 = _mm256_loadu_ps(b0 + p + 8 * h), y1 = _mm256_loadu_ps(b1 + p + 8 * h);
                s00[h] = _mm256_fmadd_ps(x0, y0, s00[h]), s01[h] = _mm256_fmadd_ps(x0, y1, s01[h]);
                s10[h] = _mm256_fmadd_ps(x1, y0, s10[h]), s11[h] = _mm256_fmadd_ps(x1, y1, s11[h]);
            }
        if (r)
            for (int h = 0; h < 2; h++) {
                const __m256 x0 = _mm256_maskload_ps(a0 + kq + 8 * h, mask[h]);
                const __m256 x1 = _mm256_maskload_ps(a1 + kq + 8 * h, mask[h]);
                const __m256 y0 = _mm256_maskload_ps(b0 + kq + 8 * h, mask[h]);
                const __m256 y1 = _mm256_maskload_ps(b1 + kq + 8 * h, mask[h]);
                s00[h] = _mm256_fmadd_ps(x0, y0, s00[h]), s01[h] = _mm256_fmadd_ps(x0, y1, s01[h]);
                s10[h] = _mm256_fmadd_ps(x1, y0, s10[h]), s11[h] = _mm256_fmadd_ps(x1, y1, s11[h]);
            }
        DOT_STORE(s, FOLD256);
    }
}
#undef DOT_STORE
#undef DOT_LOOP_HEAD
#undef FOLD256
#endif
typedef void (*dot_nt_fn)(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *const *b,
                          float *c, int64_t ldc);
static dot_nt_fn dot_nt_for(int isa) {
#if MG_CPU_X86
    if (isa >= MG_ISA_AVX512) return dot_nt_avx512;
    if (isa == MG_ISA_AVX2) return dot_nt_avx2;
#endif
    (void)isa;
    return dot_nt_base;
}

/* ---- the per-sample path ---------------------------------------------------------------------
 * When one sample's columns are small (K S elements within SAMPLE_COL_BYTES, about the L2 cache) and
 * the batch has a few samples, each sample is unfolded, multiplied and folded by one thread while its
 * columns are in that thread's cache (the batched path's col of a 64-image batch is 7 MB for the
 * book's second convolution: every byte of it went to memory and back), and with no permutes:
 *     out[n] (O, S) = W col_n                written where it lies in out (N, O, S)
 *     dcol_n (K, S) = W^T gout[n]            gout[n] read where it lies, then col2im into dx[n]
 *     dW      (O, K) = sum over n of gout[n] col_n^T
 * out and dx sum over K and O as the batched products do (the same bits as that path); dW sums
 * over the batch: sample by sample within SAMPLE_CHUNKS chunks of consecutive samples (their
 * count fixed by N alone), whose partial sums are added in chunk order after the parallel call:
 * the bits depend on the sizes only, not on the threads. Each product runs on its thread with
 * that thread's scratch (mg_gemm_serial). Products per group, as everywhere in this file.
 * Variants, chosen by the sizes and the ctx's level only: the float32 forward at stride 1
 * (AVX2, AVX-512) with more taps than output channels (K > O: unfolding costs more than
 * forward_rows' extra pass over the output; the book's conv1, K 9 and O 16, ran 10 % slower with it)
 * reads the sample's zero-padded frame in place instead of unfolding it (forward_rows: the same
 * bits), and with at most DIRECT_MAX_K taps a group computes each output from the frame directly
 * (forward_direct: the same bits); at stride 1 (AVX2, AVX-512) float32 dx is a forward convolution of gout (dx_rows, for any
 * batch size: its own order of sums) and float32 dW reads the samples' frames (dwf_*: its own
 * order); at other strides a float32 dW of at most DOT_MAX_K taps a group sums each element as one
 * dot product of two rows (dot_nt_*: its own order, see there). */
#define SAMPLE_COL_BYTES ((int64_t)1 << 20)
#define SAMPLE_CHUNKS 8
#define SAMPLE_PARTIAL_BYTES ((int64_t)8 << 20)
enum { SAMPLE_FORWARD, SAMPLE_DX, SAMPLE_DW };
typedef struct sample_job {
    conv_job j;             /* the geometry, x (the whole batch), isa */
    int mode;
    const char *w;          /* the weight, contiguous (O, K) */
    const char *bias;       /* forward: added (may be NULL) */
    int64_t bias_stride;
    const char *gout;       /* DX, DW: d loss / d out, contiguous (N, O, S) */
    char *dst;              /* FORWARD: out (N, O, S); DX: dx (N, C, H, W); DW: partials (chunks, O, K) */
    char *work;             /* per thread: col (K, S), then gemm scratch */
    size_t work_bytes;
    int64_t O, K, S, G, chunk; /* K = C kh kw (all groups); chunk: samples a DW chunk */
    int dot;                /* DW: the dot-product kernel (float32) instead of the gemm */
    int frames;             /* DW: read from the frames (dwf_chunk), dst: lane sums (chunks, O, Kg, 16) */
    int rows;               /* FORWARD: forward_rows (float32, stride 1, AVX2 or AVX-512) */
    int direct;             /* FORWARD: forward_direct (float32, stride 1, few taps, AVX2 or AVX-512) */
    size_t aux_off;         /* DW with dot: K row pointers at work + aux_off */
} sample_job;

static bool use_sample_path(mg_dtype dt, int64_t N, int64_t O, int64_t K, int64_t S) {
    const int64_t es = (int64_t)mg_dtype_size(dt);
    return N >= 4 && K * S <= SAMPLE_COL_BYTES / es && O * K <= SAMPLE_PARTIAL_BYTES / SAMPLE_CHUNKS / es;
}

/* col <- im2col of sample n alone: rows (c kh + ki) kw + kj, S columns */
static void unfold_sample(const sample_job *s, int64_t n, char *col) {
    conv_job j = s->j;
    j.x += (size_t)(n * j.xs[0]) * mg_dtype_size(j.dt);
    j.N = 1, j.col = col;
    im2col_range(&j, 0, s->K);
}

static void sample_product(const sample_job *s, int64_t m, int64_t n, int64_t k, const void *a, int64_t rsa,
                           int64_t csa, const void *b, int64_t rsb, int64_t csb, void *c, int64_t rsc,
                           void *scratch) {
    const mg_gemm_args ga = {.m = m, .n = n, .k = k, .a = a, .rsa = rsa, .csa = csa, .b = b, .rsb = rsb,
                             .csb = csb, .c = c, .rsc = rsc, .csc = 1};
    mg_gemm_serial(s->j.dt, s->j.isa, &ga, scratch);
}

#define ADD_ROWS(T, dst, src, count)                                                           \
    do {                                                                                       \
        T *d_ = (T *)(dst);                                                                    \
        const T *s_ = (const T *)(src);                                                        \
        for (int64_t i_ = 0; i_ < (count); i_++) d_[i_] += s_[i_];                             \
    } while (0)

/* The forward product of sample n without a column buffer (stride 1, float32, AVX2 or AVX-512):
 * x[n] is copied into a zero-padded frame xp (C planes of Hp = H + 2 ph rows of Wp = W + 2 pw, or
 * more: frame_dims),
 * where every tap (c, ki, kj) reads the frame at one offset from the output position on a grid
 * Wp wide: col's row (c kh + ki) kw + kj is the frame's run from c Hp Wp + ki dh Wp + kj dw, with
 * the padding's zeros in place (the columns ow >= OW of this grid read the next row: computed,
 * then dropped). mg_gemm_rows_f32 multiplies W by these rows where they lie: the same products and
 * sums as im2col's columns, the same bits. Then the grid's rows OW wide go to out, with the bias. */
/* the frame's rows and their width: the padded input, and as far as the last tap of the last output
 * reaches (padding = "same" with an odd total pads one more row / column at the bottom / right) */
static void frame_dims(const conv_job *j, int64_t *Hp, int64_t *Wp) {
    const int64_t h = j->OH + (j->g.kh - 1) * j->g.dh, w = j->OW + (j->g.kw - 1) * j->g.dw;
    *Hp = j->H + 2 * j->g.ph > h ? j->H + 2 * j->g.ph : h;
    *Wp = j->W + 2 * j->g.pw > w ? j->W + 2 * j->g.pw : w;
}
#if MG_CPU_X86
/* The first n lanes of a vector (n clamped to 0..16, 0..8): the masks of a row's last vector. */
MG_ISA_TARGET_avx512 static inline __mmask16 lanes16(int64_t n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}
MG_ISA_TARGET_avx2 static inline __m256i lanes8(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n >= 8 ? 8 : n <= 0 ? 0 : (int)n),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
#endif
/* dst[0..n) = src[0..n), float32, for the frames' short rows (14 floats in the book's network: a
 * memcpy call each was ~7 % of a training step, some 50k of them): masked vectors at AVX-512 and
 * AVX2, memcpy at the baseline (which takes none of the frame paths). */
#if MG_CPU_X86
MG_TARGET("avx512f") static void copy_row_avx512(float *dst, const float *src, int64_t n, const float *bias) {
    const __m512 b = _mm512_set1_ps(bias ? *bias : 0);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = lanes16(n - i);
        const __m512 v = _mm512_maskz_loadu_ps(m, src + i);
        _mm512_mask_storeu_ps(dst + i, m, bias ? _mm512_add_ps(v, b) : v);
    }
}
MG_TARGET("avx2") static void copy_row_avx2(float *dst, const float *src, int64_t n, const float *bias) {
    const __m256 b = _mm256_set1_ps(bias ? *bias : 0);
    for (int64_t i = 0; i < n; i += 8) {
        const __m256i m = lanes8(n - i);
        const __m256 v = _mm256_maskload_ps(src + i, m);
        _mm256_maskstore_ps(dst + i, m, bias ? _mm256_add_ps(v, b) : v);
    }
}
#endif
/* ... and dst = src + *bias when bias is not NULL (a plain add: add_bias's bits) */
static void copy_row(int isa, float *dst, const float *src, int64_t n, const float *bias) {
#if MG_CPU_X86
    if (isa >= MG_ISA_AVX512) return copy_row_avx512(dst, src, n, bias);
    if (isa == MG_ISA_AVX2) return copy_row_avx2(dst, src, n, bias);
#endif
    (void)isa;
    if (bias) MG_ISA_PICK(MG_ISA_BASELINE, add_bias_float)(dst, src, n, *bias);
    else memcpy(dst, src, (size_t)n * sizeof(float));
}

/* xp (frame elements) <- sample n of x in its zero-padded frame: plane c's row h at xp + c Hp Wp +
 * (h + ph) Wp + pw, zeros around (and in the slack past the last plane) */
static void build_frame(const conv_job *j, int64_t n, float *xp, int64_t Hp, int64_t Wp, int64_t frame) {
    memset(xp, 0, (size_t)frame * sizeof(float));
    const float *x = (const float *)j->x + n * j->xs[0];
    for (int64_t c = 0; c < j->C; c++)
        for (int64_t h = 0; h < j->H; h++) {
            const float *src = x + c * j->xs[1] + h * j->xs[2];
            float *dst = xp + (c * Hp + h + j->g.ph) * Wp + j->g.pw;
            if (j->xs[3] == 1) copy_row(j->isa, dst, src, j->W, NULL);
            else
                for (int64_t w = 0; w < j->W; w++) dst[w] = src[w * j->xs[3]];
        }
}
/* toff[k] = where tap k = (c kh + ki) kw + kj reads the frame, from an output's position */
static void frame_taps(const conv_job *j, int64_t Hp, int64_t Wp, int64_t *toff) {
    for (int64_t c = 0, k = 0; c < j->C; c++)
        for (int64_t ki = 0; ki < j->g.kh; ki++)
            for (int64_t kj = 0; kj < j->g.kw; kj++) toff[k++] = (c * Hp + ki * j->g.dh) * Wp + kj * j->g.dw;
}
static size_t forward_rows_bytes(const sample_job *s) {
    const conv_job *j = &s->j;
    int64_t Hp, Wp;
    frame_dims(j, &Hp, &Wp);
    const int64_t frame = j->C * Hp * Wp + MG_GEMM_ROWS_SLACK;
    const int64_t grid = (j->OH - 1) * Wp + j->OW;
    return (size_t)(frame + s->O * grid) * sizeof(float) + (size_t)s->K * sizeof(float *) + 64;
}
static void forward_rows(const sample_job *s, int64_t n, char *work) {
    const conv_job *j = &s->j;
    const mg_conv2d_geom *g = &j->g;
    int64_t Hp, Wp;
    frame_dims(j, &Hp, &Wp);
    const int64_t PL = Hp * Wp, C = j->C;
    const int64_t frame = C * PL + MG_GEMM_ROWS_SLACK, grid = (j->OH - 1) * Wp + j->OW;
    const int64_t O = s->O, K = s->K, G = s->G, Og = O / G, Kg = K / G, S = j->OH * j->OW;
    const float **brow = (const float **)work;
    float *xp = (float *)(work + (size_t)K * sizeof(float *)), *outp = xp + frame;
    build_frame(j, n, xp, Hp, Wp, frame);
    for (int64_t c = 0, k = 0; c < C; c++)
        for (int64_t ki = 0; ki < g->kh; ki++)
            for (int64_t kj = 0; kj < g->kw; kj++) brow[k++] = xp + c * PL + ki * g->dh * Wp + kj * g->dw;
    const float *w = (const float *)s->w;
    for (int64_t gi = 0; gi < G; gi++)
        mg_gemm_rows_f32(j->isa, Og, grid, Kg, w + gi * Og * Kg, Kg, brow + gi * Kg, outp + gi * Og * grid, grid);
    float *out = (float *)s->dst + n * O * S;
    for (int64_t o = 0; o < O; o++) {
        const float bv = s->bias ? ((const float *)s->bias)[o * s->bias_stride] : 0;
        for (int64_t oh = 0; oh < j->OH; oh++) {
            const float *src = outp + o * grid + oh * Wp;
            float *dst = out + o * S + oh * j->OW;
            copy_row(j->isa, dst, src, j->OW, s->bias ? &bv : NULL);
        }
    }
}

/* dW of a float32 convolution at stride 1 read from the samples' zero-padded frames (AVX2, AVX-512),
 * no column buffer and no transposed operand: element (o, k) of a group is the sum over the
 * samples of a chunk, the output rows oh and the columns ow of gout[n, o, oh, ow] frame_n[toff[k] +
 * oh Wp + ow] (toff[k]: tap k's channel plane and its ki dh Wp + kj dw). The sum runs in
 * DWF_LANES lanes, lane l taking the columns ow = l mod DWF_LANES of every row (a row's last
 * vector masked: the lanes past OW load zeros on both sides), samples in order, then rows, then
 * columns; the lanes live in `acc` (dwf_lanes) across the chunk's runs of frames, are added
 * lane by lane in chunk order once every chunk is done and folded in dot_fold's tree. A block of
 * DWF_MO output channels by DWF_MT taps keeps its sums in registers over a run: each load of gout
 * serves DWF_MT taps and each of the frame DWF_MO channels. AVX-512 holds the 16 lanes in one
 * zmm, AVX2 in two ymm (smaller blocks, its 16 registers): the same operations lane by lane, the
 * same bits; the order depends on the sizes only, so on neither the thread count nor the level. */
#define DWF_LANES 16
typedef struct dwf_run {
    const float *gp;        /* the run's gout of this group, packed: dwf_pack's layout for mo */
    const float *const *fs; /* the F samples' frames */
    int64_t F, Og, Kg, OH, OW, NV, Wp; /* NV: vectors a row, OW / DWF_LANES rounded up */
    const int64_t *toff;    /* the group's Kg tap offsets */
    float *acc;             /* (Og rounded up to the kernel's block, Kg, DWF_LANES) */
} dwf_run;
#if MG_CPU_X86
/* gout of F samples of a group, packed for blocks of mo output channels: the block of rows
 * o0 .. o0 + mo - 1, sample f, row oh, vector v holds mo vectors of DWF_LANES in a row (lane l:
 * column v DWF_LANES + l), zeros past OW and for channels past Og: the kernel loads them at
 * constant offsets, unmasked. g: (n, O, OH, OW) contiguous, from the group's first channel.
 * Masked loads, a vector at a time (memcpy and memset a short row each cost more than the
 * products of the book's conv1). */
#define DWF_PACK(NAME, TARGET, VT, MT_, MASK, LOAD, STORE, ZERO)                                   \
    TARGET static void NAME(float *dst, const float *g, int64_t O, int64_t F, int64_t Og, int64_t OH,  \
                            int64_t OW, int64_t NV, int mo) {                                      \
        const int64_t plane = OH * OW;                                                         \
        for (int64_t o0 = 0; o0 < Og; o0 += mo)                                                \
            for (int64_t f = 0; f < F; f++)                                                    \
                for (int64_t oh = 0; oh < OH; oh++)                                            \
                    for (int64_t v = 0; v < NV; v++) {                                         \
                        const int64_t ow = v * DWF_LANES;                                      \
                        const int w = OW - ow < DWF_LANES ? (int)(OW - ow) : DWF_LANES;        \
                        MT_ m = MASK(w);                                                       \
                        for (int a = 0; a < mo; a++, dst += DWF_LANES) {                       \
                            if (o0 + a >= Og) {                                                \
                                ZERO(dst);                                                     \
                                continue;                                                      \
                            }                                                                  \
                            const float *src = g + (f * O + o0 + a) * plane + oh * OW + ow;    \
                            STORE(dst, LOAD(src, m));                                          \
                        }                                                                      \
                    }                                                                          \
    }
#define LOAD512(p, m) _mm512_maskz_loadu_ps(m, p)
#define ZERO512(d) _mm512_storeu_ps(d, _mm512_setzero_ps())
DWF_PACK(dwf_pack_avx512, MG_TARGET("avx512f,fma"), __m512, __mmask16, lanes16, LOAD512, _mm512_storeu_ps, ZERO512)
typedef struct { __m256i h[2]; } mask256x2;
MG_TARGET("avx2,fma") static inline mask256x2 mask256x2_of(int w) {
    return (mask256x2){{lanes8(w), lanes8(w - 8)}};
}
typedef struct { __m256 h[2]; } f256x2;
MG_TARGET("avx2,fma") static inline f256x2 load256x2(const float *p, mask256x2 m) {
    return (f256x2){{_mm256_maskload_ps(p, m.h[0]), _mm256_maskload_ps(p + 8, m.h[1])}};
}
MG_TARGET("avx2,fma") static inline void store256x2(float *d, f256x2 v) {
    _mm256_storeu_ps(d, v.h[0]), _mm256_storeu_ps(d + 8, v.h[1]);
}
#define ZERO256(d) store256x2(d, (f256x2){{_mm256_setzero_ps(), _mm256_setzero_ps()}})
DWF_PACK(dwf_pack_avx2, MG_TARGET("avx2,fma"), f256x2, mask256x2, mask256x2_of, load256x2, store256x2, ZERO256)
#undef DWF_PACK
#undef LOAD512
#undef ZERO512
#undef ZERO256
/* the block's taps, the last repeated past the end (its sums computed twice, stored alike) */
#define DWF_TAPS(MT)                                                                           \
    int64_t ti[MT];                                                                            \
    for (int q = 0; q < MT; q++) ti[q] = t0 + q < r->Kg ? t0 + q : r->Kg - 1;
#define DWF_MO512 8
#define DWF_MT512 3
MG_TARGET("avx512f,fma") static void dwf_avx512(const dwf_run *r) {
    const int64_t step = r->F * r->OH * r->NV * DWF_MO512 * DWF_LANES; /* a block's packed gout */
    for (int64_t o0 = 0; o0 < r->Og; o0 += DWF_MO512)
        for (int64_t t0 = 0; t0 < r->Kg; t0 += DWF_MT512) {
            DWF_TAPS(DWF_MT512)
            __m512 acc[DWF_MO512][DWF_MT512];
            _Pragma("GCC unroll 8") for (int a = 0; a < DWF_MO512; a++)
                _Pragma("GCC unroll 3") for (int b = 0; b < DWF_MT512; b++)
                    acc[a][b] = _mm512_loadu_ps(r->acc + ((o0 + a) * r->Kg + ti[b]) * DWF_LANES);
            const float *gp = r->gp + o0 / DWF_MO512 * step;
            for (int64_t f = 0; f < r->F; f++) {
                const float *y0 = r->fs[f] + r->toff[ti[0]], *y1 = r->fs[f] + r->toff[ti[1]];
                const float *y2 = r->fs[f] + r->toff[ti[2]];
                for (int64_t oh = 0; oh < r->OH; oh++, y0 += r->Wp, y1 += r->Wp, y2 += r->Wp)
                    for (int64_t v = 0; v < r->NV; v++, gp += DWF_MO512 * DWF_LANES) {
                        const int64_t ow = v * DWF_LANES;
                        const __mmask16 m = lanes16(r->OW - ow);
                        const __m512 y[DWF_MT512] = {_mm512_maskz_loadu_ps(m, y0 + ow), _mm512_maskz_loadu_ps(m, y1 + ow),
                                                     _mm512_maskz_loadu_ps(m, y2 + ow)};
                        _Pragma("GCC unroll 8") for (int a = 0; a < DWF_MO512; a++) {
                            __m512 x = _mm512_loadu_ps(gp + a * DWF_LANES);
                            __asm__("" : "+v"(x)); /* one load for the three taps: GCC folded it into each */
                            _Pragma("GCC unroll 3") for (int b = 0; b < DWF_MT512; b++)
                                acc[a][b] = _mm512_fmadd_ps(x, y[b], acc[a][b]);
                        }
                    }
            }
            _Pragma("GCC unroll 8") for (int a = 0; a < DWF_MO512; a++)
                _Pragma("GCC unroll 3") for (int b = 0; b < DWF_MT512; b++)
                    _mm512_storeu_ps(r->acc + ((o0 + a) * r->Kg + ti[b]) * DWF_LANES, acc[a][b]);
        }
}
#define DWF_MO256 2
#define DWF_MT256 2
MG_TARGET("avx2,fma") static void dwf_avx2(const dwf_run *r) {
    const int64_t step = r->F * r->OH * r->NV * DWF_MO256 * DWF_LANES;
    for (int64_t o0 = 0; o0 < r->Og; o0 += DWF_MO256)
        for (int64_t t0 = 0; t0 < r->Kg; t0 += DWF_MT256) {
            DWF_TAPS(DWF_MT256)
            __m256 acc[DWF_MO256][DWF_MT256][2];
            for (int a = 0; a < DWF_MO256; a++)
                for (int b = 0; b < DWF_MT256; b++)
                    for (int h = 0; h < 2; h++)
                        acc[a][b][h] = _mm256_loadu_ps(r->acc + ((o0 + a) * r->Kg + ti[b]) * DWF_LANES + 8 * h);
            const float *gp = r->gp + o0 / DWF_MO256 * step;
            for (int64_t f = 0; f < r->F; f++) {
                const float *y0 = r->fs[f] + r->toff[ti[0]], *y1 = r->fs[f] + r->toff[ti[1]];
                for (int64_t oh = 0; oh < r->OH; oh++, y0 += r->Wp, y1 += r->Wp)
                    for (int64_t v = 0; v < r->NV; v++, gp += DWF_MO256 * DWF_LANES) {
                        const int64_t ow = v * DWF_LANES;
                        for (int h = 0; h < 2; h++) {
                            const __m256i m = lanes8(r->OW - ow - 8 * h);
                            const __m256 y[DWF_MT256] = {_mm256_maskload_ps(y0 + ow + 8 * h, m),
                                                         _mm256_maskload_ps(y1 + ow + 8 * h, m)};
                            for (int a = 0; a < DWF_MO256; a++) {
                                const __m256 x = _mm256_loadu_ps(gp + a * DWF_LANES + 8 * h);
                                for (int b = 0; b < DWF_MT256; b++) acc[a][b][h] = _mm256_fmadd_ps(x, y[b], acc[a][b][h]);
                            }
                        }
                    }
            }
            for (int a = 0; a < DWF_MO256; a++)
                for (int b = 0; b < DWF_MT256; b++)
                    for (int h = 0; h < 2; h++)
                        _mm256_storeu_ps(r->acc + ((o0 + a) * r->Kg + ti[b]) * DWF_LANES + 8 * h, acc[a][b][h]);
        }
}
/* Kg = 9 (a 3x3 kernel over one channel a group: the book's conv1) at AVX-512: the nine taps in one
 * block, by two output channels, gout read where it lies (no packing: each gout vector is loaded
 * once, for nine sums; each frame vector once for two): the same FMAs lane by lane as dwf_avx512,
 * the same bits. gs: the run's F samples' gout of this group, (Og, OH, OW) each. */
MG_ISA_TARGET_avx512 static void dwf9_avx512(const dwf_run *r, const float *const *gs) {
    const int64_t plane = r->OH * r->OW;
    for (int64_t o0 = 0; o0 < r->Og; o0 += 2) {
        const int64_t o1 = o0 + 1 < r->Og ? o0 + 1 : o0; /* a lone last channel: computed twice */
        __m512 acc[2][9];
        _Pragma("GCC unroll 9") for (int b = 0; b < 9; b++) {
            acc[0][b] = _mm512_loadu_ps(r->acc + (o0 * 9 + b) * DWF_LANES);
            acc[1][b] = _mm512_loadu_ps(r->acc + (o1 * 9 + b) * DWF_LANES);
        }
        for (int64_t f = 0; f < r->F; f++) {
            const float *g0 = gs[f] + o0 * plane, *g1 = gs[f] + o1 * plane, *fr = r->fs[f];
            for (int64_t oh = 0; oh < r->OH; oh++, g0 += r->OW, g1 += r->OW, fr += r->Wp)
                for (int64_t ow = 0; ow < r->OW; ow += DWF_LANES) {
                    const __mmask16 m = lanes16(r->OW - ow);
                    const __m512 x0 = _mm512_maskz_loadu_ps(m, g0 + ow), x1 = _mm512_maskz_loadu_ps(m, g1 + ow);
                    _Pragma("GCC unroll 9") for (int b = 0; b < 9; b++) {
                        const __m512 y = _mm512_maskz_loadu_ps(m, fr + r->toff[b] + ow);
                        acc[0][b] = _mm512_fmadd_ps(x0, y, acc[0][b]);
                        acc[1][b] = _mm512_fmadd_ps(x1, y, acc[1][b]);
                    }
                }
        }
        _Pragma("GCC unroll 9") for (int b = 0; b < 9; b++) {
            _mm512_storeu_ps(r->acc + (o0 * 9 + b) * DWF_LANES, acc[0][b]);
            _mm512_storeu_ps(r->acc + (o1 * 9 + b) * DWF_LANES, acc[1][b]);
        }
    }
}
#undef DWF_TAPS
#endif
/* the frames' dW kernel of a level and its block of output channels; NULL at the baseline (which
 * takes the unfolded path) */
typedef void (*dwf_pack_fn)(float *dst, const float *g, int64_t O, int64_t F, int64_t Og, int64_t OH, int64_t OW,
                            int64_t NV, int mo);
static void (*dwf_for(int isa, int *mo, dwf_pack_fn *pack))(const dwf_run *) {
    *pack = NULL;
#if MG_CPU_X86
    if (isa >= MG_ISA_AVX512) return *mo = DWF_MO512, *pack = dwf_pack_avx512, dwf_avx512;
    if (isa == MG_ISA_AVX2) return *mo = DWF_MO256, *pack = dwf_pack_avx2, dwf_avx2;
#endif
    (void)isa;
    *mo = 1;
    return NULL;
}
static int64_t round_to(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
/* a chunk's lane sums: (G, Og rounded up to the kernel's block mo, Kg, DWF_LANES) */
static int64_t dwf_lanes(int64_t O, int64_t G, int64_t Kg, int mo) { return G * round_to(O / G, mo) * Kg * DWF_LANES; }
/* a run's frames and packed gout within about an eighth of L2 */
#define DWF_RUN_BYTES ((int64_t)128 << 10)
static void dwf_sizes(const sample_job *s, int64_t *F, int64_t *frame, int64_t *packed) {
    int64_t Hp, Wp;
    int mo;
    dwf_pack_fn pack;
    frame_dims(&s->j, &Hp, &Wp);
    dwf_for(s->j.isa, &mo, &pack);
    *frame = round_to(s->j.C * Hp * Wp + MG_GEMM_ROWS_SLACK, 16);
    *packed = round_to(s->O / s->G, mo) * s->j.OH * round_to(s->j.OW, DWF_LANES); /* a sample's, a group */
    const int64_t f = DWF_RUN_BYTES / ((*frame + *packed) * (int64_t)sizeof(float));
    *F = f < 1 ? 1 : f < s->chunk ? f : s->chunk;
}
static size_t dwf_work_bytes(const sample_job *s) {
    int64_t F, frame, packed;
    dwf_sizes(s, &F, &frame, &packed);
    return (size_t)(F * (frame + packed)) * sizeof(float) + (size_t)(2 * F) * sizeof(float *) +
           (size_t)s->K * sizeof(int64_t) + 64;
}
/* chunk u's lane sums into s->dst + u dwf_lanes */
static void dwf_chunk(const sample_job *s, int64_t u, char *work) {
    const conv_job *j = &s->j;
    int64_t Hp, Wp, F, frame, packed;
    frame_dims(j, &Hp, &Wp);
    dwf_sizes(s, &F, &frame, &packed);
    int mo;
    dwf_pack_fn pack;
    void (*kern)(const dwf_run *) = dwf_for(j->isa, &mo, &pack);
    const int64_t G = s->G, Og = s->O / G, Kg = s->K / G, NV = round_to(j->OW, DWF_LANES) / DWF_LANES;
    float *frames = (float *)work, *gp = frames + F * frame;
    const float **fs = (const float **)(gp + F * packed), **gs = fs + F;
    int64_t *toff = (int64_t *)(gs + F);
    const int nine = MG_CPU_X86 && j->isa >= MG_ISA_AVX512 && Kg == 9; /* dwf9_avx512 */
    (void)nine;
    frame_taps(j, Hp, Wp, toff);
    const int64_t Ogp = round_to(Og, mo), lanes = dwf_lanes(s->O, G, Kg, mo);
    float *acc = (float *)s->dst + u * lanes;
    memset(acc, 0, (size_t)lanes * sizeof(float));
    const int64_t n0 = u * s->chunk, n1 = n0 + s->chunk < j->N ? n0 + s->chunk : j->N;
    for (int64_t n = n0; n < n1; n += F) {
        const int64_t f = n1 - n < F ? n1 - n : F;
        for (int64_t q = 0; q < f; q++) {
            build_frame(j, n + q, frames + q * frame, Hp, Wp, frame);
            fs[q] = frames + q * frame;
        }
        for (int64_t gi = 0; gi < G; gi++) {
            const float *g = (const float *)s->gout + (n * s->O + gi * Og) * j->OH * j->OW;
            const dwf_run r = {.gp = gp, .fs = fs, .F = f, .Og = Og, .Kg = Kg, .OH = j->OH, .OW = j->OW,
                               .NV = NV, .Wp = Wp, .toff = toff + gi * Kg, .acc = acc + gi * Ogp * Kg * DWF_LANES};
#if MG_CPU_X86
            if (nine) {
                for (int64_t q = 0; q < f; q++) gs[q] = g + q * s->O * j->OH * j->OW;
                dwf9_avx512(&r, gs);
                continue;
            }
#endif
            pack(gp, g, s->O, f, Og, j->OH, j->OW, NV, mo);
            kern(&r);
        }
    }
}

/* The float32 forward at stride 1 with few taps a group (at most DIRECT_MAX_K: the book's conv1 has
 * 9) straight from the sample's zero-padded frame (AVX2, AVX-512): each output is one chain of
 * FMAs over its group's taps in order, from 0, then + bias: the products and sums of the gemm of
 * im2col's columns (a depth under one k block is one chain there too), the same bits, without the
 * column buffer or the gemm's packing and tiles of 48 columns that a 28-wide image fills badly.
 * A block of 8 output channels (AVX2: 4) by two vectors of a row: each frame load serves 8
 * channels, each weight broadcast two vectors. */
#define DIRECT_MAX_K 32
typedef struct direct_run {
    const float *frame, *w, *bias; /* w: the group's (Og, Kg); bias: NULL or its first, bias_stride apart */
    const int64_t *toff;           /* the group's Kg tap offsets in the frame */
    int64_t Og, Kg, OH, OW, Wp, bias_stride;
    float *out;                    /* the group's Og planes of OH OW */
} direct_run;
#if MG_CPU_X86
#define DIRECT_BODY(MO, VL, VT, MT, MASK, LOAD, SET1, FMA, ADD, STORE, ZERO)                   \
    const int64_t plane = r->OH * r->OW;                                                       \
    for (int64_t o0 = 0; o0 < r->Og; o0 += MO) {                                               \
        const float *wr[MO];                                                                   \
        for (int a = 0; a < MO; a++) wr[a] = r->w + (o0 + a < r->Og ? o0 + a : r->Og - 1) * r->Kg; \
        for (int64_t oh = 0; oh < r->OH; oh++)                                                 \
            for (int64_t ow = 0; ow < r->OW; ow += 2 * VL) {                                   \
                const MT m0 = MASK(r->OW - ow), m1 = MASK(r->OW - ow - VL);                    \
                VT acc[MO][2];                                                                 \
                for (int a = 0; a < MO; a++) acc[a][0] = acc[a][1] = ZERO;                     \
                const float *xr = r->frame + oh * r->Wp + ow;                                  \
                for (int64_t k = 0; k < r->Kg; k++) {                                          \
                    const VT x0 = LOAD(m0, xr + r->toff[k]), x1 = LOAD(m1, xr + r->toff[k] + VL); \
                    for (int a = 0; a < MO; a++) {                                             \
                        const VT wv = SET1(wr[a][k]);                                          \
                        acc[a][0] = FMA(wv, x0, acc[a][0]), acc[a][1] = FMA(wv, x1, acc[a][1]); \
                    }                                                                          \
                }                                                                              \
                for (int a = 0; a < MO && o0 + a < r->Og; a++) {                               \
                    float *d = r->out + (o0 + a) * plane + oh * r->OW + ow;                    \
                    if (r->bias) {                                                             \
                        const VT b = SET1(r->bias[(o0 + a) * r->bias_stride]);                 \
                        acc[a][0] = ADD(acc[a][0], b), acc[a][1] = ADD(acc[a][1], b);          \
                    }                                                                          \
                    STORE(d, m0, acc[a][0]);                                                   \
                    STORE(d + VL, m1, acc[a][1]);                                              \
                }                                                                              \
            }                                                                                  \
    }
#define LOAD16(m, p) _mm512_maskz_loadu_ps(m, p)
#define STORE16(d, m, v) _mm512_mask_storeu_ps(d, m, v)
MG_ISA_TARGET_avx512 static void direct_avx512(const direct_run *r) {
    DIRECT_BODY(8, 16, __m512, __mmask16, lanes16, LOAD16, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps,
                STORE16, _mm512_setzero_ps())
}
#define LOAD8(m, p) _mm256_maskload_ps(p, m)
#define STORE8(d, m, v) _mm256_maskstore_ps(d, m, v)
MG_ISA_TARGET_avx2 static void direct_avx2(const direct_run *r) {
    DIRECT_BODY(4, 8, __m256, __m256i, lanes8, LOAD8, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, STORE8,
                _mm256_setzero_ps())
}
#undef DIRECT_BODY
#undef LOAD16
#undef STORE16
#undef LOAD8
#undef STORE8
#endif
static void (*direct_for(int isa))(const direct_run *) {
#if MG_CPU_X86
    if (isa >= MG_ISA_AVX512) return direct_avx512;
    if (isa == MG_ISA_AVX2) return direct_avx2;
#endif
    (void)isa;
    return NULL;
}
static size_t forward_direct_bytes(const sample_job *s) {
    int64_t Hp, Wp;
    frame_dims(&s->j, &Hp, &Wp);
    return (size_t)(s->j.C * Hp * Wp + MG_GEMM_ROWS_SLACK) * sizeof(float) + (size_t)s->K * sizeof(int64_t) + 64;
}
static void forward_direct(const sample_job *s, int64_t n, char *work) {
    const conv_job *j = &s->j;
    int64_t Hp, Wp;
    frame_dims(j, &Hp, &Wp);
    const int64_t frame = j->C * Hp * Wp + MG_GEMM_ROWS_SLACK, G = s->G, Og = s->O / G, Kg = s->K / G;
    int64_t *toff = (int64_t *)work;
    float *xp = (float *)(work + (size_t)s->K * sizeof(int64_t));
    build_frame(j, n, xp, Hp, Wp, frame);
    frame_taps(j, Hp, Wp, toff);
    float *out = (float *)s->dst + n * s->O * j->OH * j->OW;
    for (int64_t gi = 0; gi < G; gi++) {
        const direct_run r = {.frame = xp, .w = (const float *)s->w + gi * Og * Kg,
                              .bias = s->bias ? (const float *)s->bias + gi * Og * s->bias_stride : NULL,
                              .toff = toff + gi * Kg, .Og = Og, .Kg = Kg, .OH = j->OH, .OW = j->OW, .Wp = Wp,
                              .bias_stride = s->bias_stride, .out = out + gi * Og * j->OH * j->OW};
        direct_for(j->isa)(&r);
    }
}

/* units: samples (FORWARD, DX) or chunks (DW) */
static void sample_range(void *arg, int64_t b, int64_t e) {
    const sample_job *s = (const sample_job *)arg;
    const size_t es = mg_dtype_size(s->j.dt);
    char *col = s->work + (size_t)mg_pool_thread_index() * s->work_bytes;
    const int64_t K = s->K, S = s->S, O = s->O, Og = O / s->G, Kg = K / s->G;
    char *tmp = col + (size_t)(K * S) * es;       /* DW: one sample's (O, K) */
    char *scratch = tmp + (size_t)(O * K) * es;
    const float **brow = (const float **)(col + s->aux_off); /* DW: the rows of col (dot) */
#define AT(p, off) ((p) + (size_t)(off) * es)
    for (int64_t u = b; u < e; u++) {
        if (s->mode == SAMPLE_FORWARD && s->direct) {
            forward_direct(s, u, col);
        } else if (s->mode == SAMPLE_FORWARD && s->rows) {
            forward_rows(s, u, col);
        } else if (s->mode == SAMPLE_FORWARD) {
            unfold_sample(s, u, col);
            char *out = s->dst + (size_t)(u * O * S) * es;
            for (int64_t g = 0; g < s->G; g++)
                sample_product(s, Og, S, Kg, AT(s->w, g * Og * Kg), Kg, 1, AT(col, g * Kg * S), S, 1,
                               AT(out, g * Og * S), S, scratch);
            if (s->bias)
                for (int64_t o = 0; o < O; o++) {
                    if (s->j.dt == MG_FLOAT64) {
                        double *row = (double *)out + o * S, bv = ((const double *)s->bias)[o * s->bias_stride];
                        MG_ISA_PICK(s->j.isa, add_bias_double)(row, row, S, bv);
                    } else {
                        float *row = (float *)out + o * S, bv = ((const float *)s->bias)[o * s->bias_stride];
                        MG_ISA_PICK(s->j.isa, add_bias_float)(row, row, S, bv);
                    }
                }
        } else if (s->mode == SAMPLE_DX) {
            const char *gout = s->gout + (size_t)(u * O * S) * es;
            for (int64_t g = 0; g < s->G; g++)
                sample_product(s, Kg, S, Og, AT(s->w, g * Og * Kg), 1, Kg, AT(gout, g * Og * S), S, 1,
                               AT(col, g * Kg * S), S, scratch);
            conv_job j = s->j;
            j.N = 1, j.col = col;
            j.dx = s->dst + (size_t)(u * j.C * j.H * j.W) * es;
            col2im_range(&j, 0, j.C);
        } else if (s->frames) {
            dwf_chunk(s, u, col);
        } else { /* DW: chunk u */
            char *part = s->dst + (size_t)(u * O * Kg) * es;
            const int64_t n1 = (u + 1) * s->chunk < s->j.N ? (u + 1) * s->chunk : s->j.N;
            for (int64_t n = u * s->chunk; n < n1; n++) {
                char *c = n == u * s->chunk ? part : tmp; /* the first sample writes the partial */
                unfold_sample(s, n, col);
                const char *gout = s->gout + (size_t)(n * O * S) * es;
                if (s->dot)
                    for (int64_t k = 0; k < K; k++) brow[k] = (const float *)col + k * S;
                for (int64_t g = 0; g < s->G; g++)
                    if (s->dot)
                        dot_nt_for(s->j.isa)(Og, Kg, S, (const float *)AT(gout, g * Og * S), S, brow + g * Kg,
                                             (float *)AT(c, g * Og * Kg), Kg);
                    else
                        sample_product(s, Og, Kg, S, AT(gout, g * Og * S), S, 1, AT(col, g * Kg * S), 1, S,
                                       AT(c, g * Og * Kg), Kg, scratch);
                if (c == tmp) {
                    if (s->j.dt == MG_FLOAT64) ADD_ROWS(double, part, tmp, O * Kg);
                    else ADD_ROWS(float, part, tmp, O * Kg);
                }
            }
        }
    }
#undef AT
}

/* Runs s over its units on the ctx's threads with a work buffer each; dst, gout, w set. */
static mg_status run_samples(mg_ctx *ctx, sample_job *s, int64_t units) {
    const mg_dtype dt = s->j.dt;
    const size_t es = mg_dtype_size(dt);
    const int64_t Og = s->O / s->G, Kg = s->K / s->G;
    s->j.isa = ctx->isa;
    /* the products of every mode, so one buffer size serves them */
    size_t gb = mg_gemm_serial_bytes(dt, Og, s->S, Kg, s->j.isa);
    const size_t gdx = mg_gemm_serial_bytes(dt, Kg, s->S, Og, s->j.isa);
    const size_t gdw = mg_gemm_serial_bytes(dt, Og, Kg, s->S, s->j.isa);
    if (gdx > gb) gb = gdx;
    if (gdw > gb) gb = gdw;
    s->work_bytes = (size_t)(s->K * s->S + s->O * s->K) * es + gb;
    if (s->rows && forward_rows_bytes(s) > s->work_bytes) s->work_bytes = forward_rows_bytes(s);
    if (s->frames) s->work_bytes = dwf_work_bytes(s);
    if (s->direct) s->work_bytes = forward_direct_bytes(s);
    s->work_bytes = (s->work_bytes + 63) / 64 * 64;
    s->aux_off = s->work_bytes;
    if (s->dot) s->work_bytes += ((size_t)s->K * sizeof(float *) + 63) / 64 * 64;
    const int64_t slots = ctx->num_threads < units ? ctx->num_threads : units;
    const size_t bytes = s->work_bytes * (size_t)slots;
    s->work = mg_alloc(ctx, bytes);
    if (!s->work) return mg_fail(ctx, MG_ENOMEM, 0, "not enough memory for convolution's columns (%zu bytes)", bytes);
    mg_parallel_for(ctx, units, 1, sample_range, s);
    mg_free(ctx, s->work, bytes);
    return MG_OK;
}

/* ---- conv2d ----------------------------------------------------------------------------------- */
mg_status mg_conv2d(mg_ctx *ctx, mg_tensor *out, const mg_tensor *x, const mg_tensor *weight,
                    const mg_tensor *bias, const mg_conv2d_geom *g) {
    const mg_dtype dt = (mg_dtype)x->dtype;
    const int64_t N = x->size[0], O = out->size[1], OH = out->size[2], OW = out->size[3];
    if (out->numel == 0) return MG_OK;
    /* out has elements: O > 0, so K <= weight->numel <= 2^62 */
    const int64_t G = g->groups, Og = O / G, K = weight->size[1] * g->kh * g->kw, P = N * OH * OW;
    conv_job j;
    fill_job(&j, x, OH, OW, g);
    mg_scratch col, outp, wsc;
    outp.s.data = NULL;
    const mg_tensor *w;
    mg_status st = mg_conv_contiguous(ctx, weight, &wsc, &w);
    if (st != MG_OK) goto done_w;
    col.s.data = NULL;
    if (K > 0 && use_sample_path(dt, N, O, K * G, OH * OW)) {
        sample_job s = {.j = j, .mode = SAMPLE_FORWARD, .w = (const char *)mg_tensor_data(w),
                        .bias = bias ? (const char *)mg_tensor_data(bias) : NULL,
                        .bias_stride = bias ? bias->stride[0] : 0, .dst = (char *)mg_tensor_data(out),
                        .O = O, .K = K * G, .S = OH * OW, .G = G,
                        .rows = dt == MG_FLOAT32 && g->sh == 1 && g->sw == 1 && K * G > O &&
                                mg_gemm_rows_f32(ctx->isa, 0, 0, 0, NULL, 0, NULL, NULL, 0),
                        .direct = dt == MG_FLOAT32 && g->sh == 1 && g->sw == 1 && K <= DIRECT_MAX_K &&
                                  direct_for(ctx->isa) != NULL};
        st = run_samples(ctx, &s, N);
        goto done;
    }
    if (K > 0) {
        st = unfold(ctx, &j, &col);
        if (st != MG_OK) goto done;
    }
    const int64_t psize[2] = {O, P};
    st = mg_scratch_new(ctx, &outp, dt, 2, psize);
    if (st != MG_OK) goto done;
    const int64_t bsa = Og * K, bsb = K * P, bsc = Og * P;
    const mg_gemm_args ga = {
        .m = Og, .n = P, .k = K,
        .a = mg_tensor_data(w), .rsa = K, .csa = 1,
        .b = col.s.data, .rsb = P, .csb = 1,
        .c = outp.s.data, .rsc = P, .csc = 1,
        .batch_ndim = 1, .batch_size = &G, .batch_sa = &bsa, .batch_sb = &bsb, .batch_sc = &bsc,
    };
    st = mg_gemm(ctx, dt, &ga);
    if (st != MG_OK) goto done;
    perm_job p = {.dt = dt, .src = (const char *)outp.s.data, .dst = (char *)mg_tensor_data(out),
                  .bias = bias ? (const char *)mg_tensor_data(bias) : NULL,
                  .bias_stride = bias ? bias->stride[0] : 0, .N = N, .O = O, .S = OH * OW, .to_nos = 1};
    permute(ctx, &p);
done:
    if (outp.s.data) mg_scratch_free(ctx, &outp);
    if (col.s.data) mg_scratch_free(ctx, &col);
done_w:
    if (wsc.s.data) mg_scratch_free(ctx, &wsc);
    return st;
}

/* db[o] = sum over n, p of g[n, o, p], in double: BIAS_LANES lanes, lane l summing the elements
 * p = l mod BIAS_LANES of every run of S (n in order, then p), the lanes folded in a fixed tree
 * (l + l + 8, then + 4, + 2, + 1). Independent sums hide the adds' latency (four lanes ran
 * latency-bound: 270 us for the book's 64x16x28x28); the lanes are plain double adds, so every
 * level vectorizes them with the same bits, and the order depends on the sizes only. */
#define BIAS_LANES 16
typedef struct bias_job {
    mg_dtype dt;
    const char *g;
    char *db;
    int64_t N, O, S;
    int isa;
} bias_job;
#define BIAS_SUM(isa, T)                                                                       \
    static double MG_ISA_FN(bias_sum_##T, isa)(const T *restrict g, int64_t N, int64_t stride, \
                                               int64_t S) {                                    \
        double l[BIAS_LANES] = {0};                                                            \
        for (int64_t n = 0; n < N; n++) {                                                      \
            const T *p = g + n * stride;                                                       \
            int64_t k = 0;                                                                     \
            for (; k + BIAS_LANES <= S; k += BIAS_LANES)                                       \
                for (int i = 0; i < BIAS_LANES; i++) l[i] += (double)p[k + i];                 \
            for (int i = 0; k + i < S; i++) l[i] += (double)p[k + i];                          \
        }                                                                                      \
        for (int w = BIAS_LANES / 2; w >= 1; w /= 2)                                           \
            for (int i = 0; i < w; i++) l[i] += l[i + w];                                      \
        return l[0];                                                                           \
    }
MG_ISA_STAMP(BIAS_SUM, float)
MG_ISA_STAMP(BIAS_SUM, double)
#undef BIAS_SUM
static void bias_grad_range(void *arg, int64_t b, int64_t e) {
    const bias_job *j = (const bias_job *)arg;
    for (int64_t o = b; o < e; o++) {
        const int64_t stride = j->O * j->S;
        if (j->dt == MG_FLOAT64)
            ((double *)j->db)[o] = MG_ISA_PICK(j->isa, bias_sum_double)((const double *)j->g + o * j->S, j->N, stride, j->S);
        else
            ((float *)j->db)[o] = (float)MG_ISA_PICK(j->isa, bias_sum_float)((const float *)j->g + o * j->S, j->N, stride, j->S);
    }
}

/* conv_backward's input (i = 0) and weight (i = 1) gradients on the per-sample path; gc: gout,
 * contiguous (N, O, OH, OW) */
static mg_status sample_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin,
                                 const mg_tensor *x, const mg_tensor *gc, const mg_conv2d_geom *g) {
    const mg_tensor *weight = a->inputs[1];
    const mg_dtype dt = (mg_dtype)gin->dtype;
    const size_t es = mg_dtype_size(dt);
    const int64_t N = x->size[0], O = weight->size[0], Kg = weight->size[1] * g->kh * g->kw;
    sample_job s = {.gout = (const char *)mg_tensor_data(gc), .O = O, .K = Kg * g->groups,
                    .S = gc->size[2] * gc->size[3], .G = g->groups};
    fill_job(&s.j, x, gc->size[2], gc->size[3], g);
    if (i == 0) {
        mg_scratch wsc;
        const mg_tensor *w;
        mg_status st = mg_conv_contiguous(ctx, weight, &wsc, &w);
        if (st == MG_OK) {
            s.mode = SAMPLE_DX, s.w = (const char *)mg_tensor_data(w), s.dst = (char *)mg_tensor_data(gin);
            st = run_samples(ctx, &s, N);
        }
        if (wsc.s.data) mg_scratch_free(ctx, &wsc);
        return st;
    }
    /* dW: chunk partials, then added in chunk order */
    s.chunk = (N + SAMPLE_CHUNKS - 1) / SAMPLE_CHUNKS;
    const int64_t chunks = (N + s.chunk - 1) / s.chunk, OK = O * Kg;
    int mo;
    dwf_pack_fn pack;
    const int have_frames = dwf_for(ctx->isa, &mo, &pack) != NULL;
    const int64_t Og = O / g->groups, Ogp = round_to(Og, mo), lanes = dwf_lanes(O, g->groups, Kg, mo);
    s.frames = dt == MG_FLOAT32 && g->sh == 1 && g->sw == 1 && have_frames &&
               lanes <= SAMPLE_PARTIAL_BYTES / SAMPLE_CHUNKS / (int64_t)es;
    s.dot = !s.frames && dt == MG_FLOAT32 && Kg <= DOT_MAX_K;
    const size_t bytes = (size_t)(chunks * (s.frames ? lanes : OK)) * es;
    s.mode = SAMPLE_DW, s.dst = mg_alloc(ctx, bytes);
    if (!s.dst) return mg_fail(ctx, MG_ENOMEM, 0, "not enough memory for convolution's weight gradient (%zu bytes)", bytes);
    mg_status st = run_samples(ctx, &s, chunks);
    if (s.frames) { /* the chunks' lanes added in chunk order, then folded */
        const float *p = (const float *)s.dst;
        float *d = (float *)mg_tensor_data(gin);
        for (int64_t e = 0; st == MG_OK && e < OK; e++) {
            const int64_t gi = e / (Og * Kg), o = e / Kg % Og, at = ((gi * Ogp + o) * Kg + e % Kg) * DWF_LANES;
            float l[DWF_LANES];
            memcpy(l, p + at, sizeof l);
            for (int64_t c = 1; c < chunks; c++)
                for (int q = 0; q < DWF_LANES; q++) l[q] += p[c * lanes + at + q];
            d[e] = dot_fold(l);
        }
        mg_free(ctx, s.dst, bytes);
        return st;
    }
#define SUM_CHUNKS(T)                                                                          \
    do {                                                                                       \
        const T *p = (const T *)s.dst;                                                         \
        T *d = (T *)mg_tensor_data(gin);                                                       \
        for (int64_t e = 0; e < OK; e++) {                                                     \
            T v = p[e];                                                                        \
            for (int64_t c = 1; c < chunks; c++) v += p[c * OK + e];                           \
            d[e] = v;                                                                          \
        }                                                                                      \
    } while (0)
    if (st == MG_OK && dt == MG_FLOAT64) SUM_CHUNKS(double);
    else if (st == MG_OK) SUM_CHUNKS(float);
#undef SUM_CHUNKS
    mg_free(ctx, s.dst, bytes);
    return st;
}

/* dx of a float32 convolution at stride 1, as a forward convolution of gout (AVX2, AVX-512):
 *     dx[n, c, ih, iw] = sum over o, ki, kj of w[o, c, ki, kj] gout[n, o, ih + ph - ki dh, iw + pw - kj dw]
 * (gout zero outside), which is conv2d of gout with the weight flipped (ki -> kh - 1 - ki, kj likewise)
 * and its channels swapped (w'[c, o] = w[o, c] within a group), padding PT = (kh - 1) dh - ph and
 * PL = (kw - 1) dw - pw, stride 1, the same dilation: forward_rows on gout's zero-padded frame,
 * a sample per thread. The product's depth is O kh kw (the book's conv2: 72) instead of the
 * batched path's O (8) followed by col2im's K adds an element: no column buffer, no col2im, one
 * write of dx. Its own order of sums (each dx element one product over (o, ki, kj)), the same
 * bits at AVX2 and AVX-512, for any thread count and for a sample alone or in a batch. Not when
 * the padding reaches past the kernel (PT or PL < 0) or when a weight is not finite (a padding
 * zero times an infinite weight would add a NaN the unfolded sums never make): *done false. */
static mg_status dx_rows(mg_ctx *ctx, const mg_tensor *weight, const mg_tensor *gc, mg_tensor *dx,
                         const mg_conv2d_geom *g, bool *done) { /* gc (N,O,OH,OW), dx (N,C,H,W) contiguous */
    *done = false;
    const int64_t O = weight->size[0], Cg = weight->size[1], kh = g->kh, kw = g->kw, G = g->groups;
    const int64_t PT = (kh - 1) * g->dh - g->ph, PL = (kw - 1) * g->dw - g->pw;
    const int64_t C = dx->size[1], H = dx->size[2], W = dx->size[3];
    const int64_t Og = O / G, Kt = Og * kh * kw; /* the transposed product's depth a group */
    if (dx->dtype != MG_FLOAT32 || g->sh != 1 || g->sw != 1 || PT < 0 || PL < 0 ||
        !mg_gemm_rows_f32(ctx->isa, 0, 0, 0, NULL, 0, NULL, NULL, 0) ||
        Kt * G * H * W > SAMPLE_COL_BYTES / (int64_t)sizeof(float))
        return MG_OK;
    const mg_tensor *w;
    mg_scratch wsc;
    mg_status st = mg_conv_contiguous(ctx, weight, &wsc, &w);
    const size_t bytes = (size_t)(C * Kt) * sizeof(float);
    float *wt = st == MG_OK ? mg_alloc(ctx, bytes) : NULL;
    if (st == MG_OK && !wt) st = mg_fail(ctx, MG_ENOMEM, 0, "not enough memory for convolution's flipped weight (%zu bytes)", bytes);
    if (st != MG_OK) goto done;
    const float *wp = (const float *)mg_tensor_data(w);
    bool finite = true;
    for (int64_t gi = 0; gi < G; gi++)
        for (int64_t c = 0; c < Cg; c++)
            for (int64_t o = 0; o < Og; o++)
                for (int64_t ki = 0; ki < kh; ki++)
                    for (int64_t kj = 0; kj < kw; kj++) {
                        const float v = wp[(((gi * Og + o) * Cg + c) * kh + kh - 1 - ki) * kw + kw - 1 - kj];
                        finite &= isfinite(v) != 0;
                        wt[(gi * Cg + c) * Kt + (o * kh + ki) * kw + kj] = v;
                    }
    if (finite) {
        mg_conv2d_geom gt = *g;
        gt.ph = PT, gt.pw = PL;
        sample_job s = {.mode = SAMPLE_FORWARD, .w = (const char *)wt, .rows = 1, .O = C, .K = Kt * G,
                        .S = H * W, .G = G, .dst = (char *)mg_tensor_data(dx)};
        fill_job(&s.j, gc, H, W, &gt);
        st = run_samples(ctx, &s, gc->size[0]);
        *done = true;
    }
done:
    if (wt) mg_free(ctx, wt, bytes);
    if (wsc.s.data) mg_scratch_free(ctx, &wsc);
    return st;
}

static mg_status conv_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    const mg_tensor *xin = a->inputs[0], *weight = a->inputs[1];
    const int spatial = weight->ndim - 2;
    mg_conv2d_geom g;
    mg_conv_geom_unpack(a->node->iarg, &g);
    g.kh = spatial == 1 ? 1 : weight->size[2];
    g.kw = weight->size[weight->ndim - 1];
    mg_view_buf vx, vg;
    const mg_tensor *x = mg_conv_view4(&vx, xin, spatial);
    const mg_tensor *gout4 = mg_conv_view4(&vg, a->gout, spatial);
    const mg_dtype dt = (mg_dtype)gin->dtype;
    const int64_t N = x->size[0], C = x->size[1], O = weight->size[0], OH = gout4->size[2], OW = gout4->size[3];
    mg_scratch gsc, gp, col, wsc;
    gsc.s.data = gp.s.data = col.s.data = wsc.s.data = NULL;
    if (gin->numel == 0) return MG_OK;
    if (gout4->numel == 0) return mg_fill(ctx, gin, 0, 0); /* O == 0 (or no output) */
    const int64_t G = g.groups, Og = O / G, K = weight->size[1] * g.kh * g.kw, P = N * OH * OW, S = OH * OW;
    const mg_tensor *gc;
    mg_status st = mg_conv_contiguous(ctx, gout4, &gsc, &gc);
    if (st != MG_OK) goto done;
    if (i == 2) {
        bias_job bj = {dt, (const char *)mg_tensor_data(gc), (char *)mg_tensor_data(gin), N, O, S, ctx->isa};
        mg_parallel_for(ctx, O, grain_for(N * S), bias_grad_range, &bj);
        goto done;
    }
    if (P == 0 || K == 0) {
        st = mg_fill(ctx, gin, 0, 0);
        goto done;
    }
    if (i == 0) {
        mg_view_buf vd;
        bool done_rows;
        st = dx_rows(ctx, weight, gc, mg_conv_view4(&vd, gin, spatial), &g, &done_rows);
        if (st != MG_OK || done_rows) goto done;
    }
    if (use_sample_path(dt, N, O, K * G, S)) {
        st = sample_backward(ctx, a, i, gin, x, gc, &g);
        goto done;
    }
    const int64_t psize[2] = {O, P};
    st = mg_scratch_new(ctx, &gp, dt, 2, psize);
    if (st != MG_OK) goto done;
    perm_job p = {.dt = dt, .src = (const char *)mg_tensor_data(gc), .dst = (char *)gp.s.data,
                  .N = N, .O = O, .S = S, .to_nos = 0};
    permute(ctx, &p);
    conv_job j;
    fill_job(&j, x, OH, OW, &g);
    j.isa = ctx->isa;
    if (i == 1) { /* dW_g = gout_g col_g^T */
        st = unfold(ctx, &j, &col);
        if (st != MG_OK) goto done;
        const int64_t bsa = Og * P, bsb = K * P, bsc = Og * K;
        const mg_gemm_args ga = {
            .m = Og, .n = K, .k = P,
            .a = gp.s.data, .rsa = P, .csa = 1,
            .b = col.s.data, .rsb = 1, .csb = P,
            .c = mg_tensor_data(gin), .rsc = K, .csc = 1,
            .batch_ndim = 1, .batch_size = &G, .batch_sa = &bsa, .batch_sb = &bsb, .batch_sc = &bsc,
        };
        st = mg_gemm(ctx, dt, &ga);
        goto done;
    }
    /* dcol_g = W_g^T gout_g, folded back into dx */
    const mg_tensor *w;
    st = mg_conv_contiguous(ctx, weight, &wsc, &w);
    if (st != MG_OK) goto done;
    const int64_t csize[2] = {C * g.kh * g.kw, P};
    st = mg_scratch_new(ctx, &col, dt, 2, csize);
    if (st != MG_OK) goto done;
    const int64_t bsa = Og * K, bsb = Og * P, bsc = K * P;
    const mg_gemm_args ga = {
        .m = K, .n = P, .k = Og,
        .a = mg_tensor_data(w), .rsa = 1, .csa = K,
        .b = gp.s.data, .rsb = P, .csb = 1,
        .c = col.s.data, .rsc = P, .csc = 1,
        .batch_ndim = 1, .batch_size = &G, .batch_sa = &bsa, .batch_sb = &bsb, .batch_sc = &bsc,
    };
    st = mg_gemm(ctx, dt, &ga);
    if (st != MG_OK) goto done;
    j.col = (char *)col.s.data;
    j.dx = (char *)mg_tensor_data(gin);
    mg_parallel_for(ctx, N * C, grain_for(K * S), col2im_range, &j);
done:
    if (wsc.s.data) mg_scratch_free(ctx, &wsc);
    if (col.s.data) mg_scratch_free(ctx, &col);
    if (gp.s.data) mg_scratch_free(ctx, &gp);
    if (gsc.s.data) mg_scratch_free(ctx, &gsc);
    return st;
}

/* ---- pooling ---------------------------------------------------------------------------------- */
/* best, at <- v, i when v is larger or NaN (PyTorch's test) */
#define MAX_STEP(v, i)                                                                         \
    do {                                                                                       \
        const __typeof__(best) v_ = (v);                                                                   \
        const int u_ = (v_ > best) | (v_ != v_);                                               \
        best = u_ ? v_ : best;                                                                 \
        at = u_ ? (i) : at;                                                                    \
    } while (0)

/* RELU_POOLED: max_pool2d(relu(x)) computed as relu on the pooled output, with the bits of the
 * unfused pair (MG_RELU, scalar.h, as unary.c's relu: relu(-0.0) = -0.0 and relu(NaN) = NaN; its
 * gradient x > 0 ? g : 0). relu is monotone and keeps x > 0 and NaN unchanged, so for a window
 * whose max M is > 0 or NaN both pools pick the same element (ties compare alike: every element
 * relu changes is below M) and the output is M. When M <= 0 every relu(x) is a zero, all tie, and
 * the unfused pool takes the window's first element: the output is MG_RELU(first), not relu(M)
 * (first -1, M -0.0: +0.0 and not -0.0). The gradient: the unfused pool sends g to an element
 * whose relu gradient is 0 unless M > 0 (an element > 0 is only ever the max of a window with
 * M > 0), so the fused index is -1 (no gradient, as padding) for M <= 0 or NaN and the usual
 * backward sums the same terms in the same order onto the same zeros. */

/* The 2x2, stride-2 max pool of `rows` output rows of a plane of even width W = 2 OW: out[oh][ow]
 * = the max of x[2oh][2ow], x[2oh][2ow+1], x[2oh+1][2ow], x[2oh+1][2ow+1] (the first maximum wins,
 * a NaN beats everything and the last NaN wins: PyTorch's test; taking the pairs across first and
 * then down gives the same winner), at[oh][ow] its flat index in the plane (at0: of x's first
 * element). Output rows are short (OW = 14 in a 28x28 net, under one vector), so both passes run
 * flat over the whole block: pass 1 takes the max of each horizontal pair, hv[i] of x[2i], x[2i+1];
 * pass 2 the max of hv[t] and hv[t + OW], the pair below, for every t (odd input rows included,
 * discarded), whose flat index is 2t (+1, + W) because W = 2 OW; then the even rows are copied out.
 * Selects on compares only: vectorizes at every level with the same bits. On random data a
 * branchy loop mispredicts about once an output (16 ns an output on Zen 4). */
#define MAX22_BLOCK 512 /* pairs of pass 1 a block: 8 KiB of stack for doubles */
/* RELU (a constant): the fused relu's output and index (RELU_POOLED above). SLOT (a constant):
 * instead of int64 indices, a byte a window (the fused relu over 2x2 windows, relu22_*): 0 to 3
 * for its winner (left and right of the top row, then of the bottom one), 4 where no gradient
 * goes (RELU_POOLED's -1): what its backward needs, an eighth of the indices' bytes. */
#define MAX22_ROWS(isa, NAME, T, RELU, SLOT)                                                   \
    static void MG_ISA_FN(NAME, isa)(const T *restrict x, T *restrict out, void *restrict at_, \
                                     int64_t rows, int64_t OW, int64_t at0) {                  \
        T hv[MAX22_BLOCK], best[MAX22_BLOCK];                                                  \
        int64_t hk[MAX22_BLOCK], where[SLOT ? 1 : MAX22_BLOCK];                                \
        uint8_t sl[SLOT ? MAX22_BLOCK : 1];                                                    \
        const int64_t W = 2 * OW, n = 2 * rows * OW, m = n - OW;                               \
        (void)W, (void)at0, (void)where, (void)sl;                                             \
        for (int64_t i = 0; i < n; i++) {                                                      \
            const T a = x[2 * i], b = x[2 * i + 1];                                            \
            const int u = (b > a) | (b != b);                                                  \
            hv[i] = u ? b : a, hk[i] = u;                                                      \
        }                                                                                      \
        for (int64_t t = 0; t < m; t++) {                                                      \
            const T top = hv[t], bot = hv[t + OW];                                             \
            const int u = (bot > top) | (bot != bot);                                          \
            best[t] = u ? bot : top;                                                           \
            if (SLOT) sl[t] = (uint8_t)(u ? 2 + hk[t + OW] : hk[t]);                           \
            else where[t] = at0 + 2 * t + (u ? W + hk[t + OW] : hk[t]);                        \
        }                                                                                      \
        if (RELU) /* a pass of its own: folded into pass 2, GCC gives up vectorizing both */   \
            for (int64_t t = 0; t < m; t++) {                                                  \
                const T mx = best[t], f = x[2 * t]; /* f: the window's first element */        \
                const T z = MG_RELU(f);                                                        \
                const int keep = mx > 0;                                                       \
                best[t] = keep | (mx != mx) ? mx : z;                                          \
                if (SLOT) sl[t] = keep ? sl[t] : 4;                                            \
                else where[t] = keep ? where[t] : -1;                                          \
            }                                                                                  \
        for (int64_t r = 0; r < rows; r++) {                                                   \
            memcpy(out + r * OW, best + 2 * r * OW, (size_t)OW * sizeof(T));                   \
            if (SLOT) memcpy((uint8_t *)at_ + r * OW, sl + 2 * r * OW, (size_t)OW);            \
            else memcpy((int64_t *)at_ + r * OW, where + 2 * r * OW, (size_t)OW * sizeof(int64_t));\
        }                                                                                      \
    }
MG_ISA_STAMP(MAX22_ROWS, max22_float, float, 0, 0)
MG_ISA_STAMP(MAX22_ROWS, max22_double, double, 0, 0)
MG_ISA_STAMP(MAX22_ROWS, max22r_float, float, 1, 0)
MG_ISA_STAMP(MAX22_ROWS, max22r_double, double, 1, 0)
MG_ISA_STAMP(MAX22_ROWS, relu22_float, float, 1, 1)
MG_ISA_STAMP(MAX22_ROWS, relu22_double, double, 1, 1)
#undef MAX22_ROWS

#if MG_CPU_X86
/* The fused relu + 2x2 pool at AVX-512 for rows of at most 16 windows (28x28 images: 14, then 7),
 * a row of windows a step: its two input rows in two masked vectors each, split into the windows'
 * left and right elements by one permute each, then MAX22_ROWS' compares in the same order (the
 * pair across first, then down: the same winner, the same NaN) and relu's selects: the bits of
 * relu22_* and relu22_back_* (the flat passes, which ran 4 stack passes and row copies a plane). */
typedef struct pool16 {
    __mmask16 m0, m1, mo;    /* an input row's first and second vector, a row of windows */
    __m512i left, right, lo, hi; /* deinterleave, interleave */
} pool16;
MG_ISA_TARGET_avx512 static pool16 pool16_of(int64_t OW) {
    pool16 p;
    p.m0 = lanes16(2 * OW), p.m1 = lanes16(2 * OW - 16), p.mo = lanes16(OW);
    p.left = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    p.right = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    p.lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    p.hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    return p;
}
/* a row's pairs: a (left), their max h (b wins when greater or NaN) and whether b won */
MG_ISA_TARGET_avx512 static inline __m512 pool16_pairs(const pool16 *p, const float *row, __m512 *a, __mmask16 *u) {
    const __m512 v0 = _mm512_maskz_loadu_ps(p->m0, row), v1 = _mm512_maskz_loadu_ps(p->m1, row + 16);
    const __m512 l = _mm512_permutex2var_ps(v0, p->left, v1), r = _mm512_permutex2var_ps(v0, p->right, v1);
    *u = _mm512_cmp_ps_mask(r, l, _CMP_GT_OQ) | _mm512_cmp_ps_mask(r, r, _CMP_UNORD_Q);
    *a = l;
    return _mm512_mask_blend_ps(*u, l, r);
}
/* row r of windows (input rows 2r, 2r + 1 of width W): their max; a: their first elements; ut, ub:
 * whether the right element won its pair, top and bottom; v: whether the bottom pair won */
MG_ISA_TARGET_avx512 static inline __m512 pool16_window(const pool16 *p, const float *x, int64_t r, int64_t W,
                                                        __m512 *a, __mmask16 *ut, __mmask16 *ub, __mmask16 *v) {
    __m512 c;
    const __m512 top = pool16_pairs(p, x + 2 * r * W, a, ut), bot = pool16_pairs(p, x + (2 * r + 1) * W, &c, ub);
    *v = _mm512_cmp_ps_mask(bot, top, _CMP_GT_OQ) | _mm512_cmp_ps_mask(bot, bot, _CMP_UNORD_Q);
    return _mm512_mask_blend_ps(*v, top, bot);
}
MG_ISA_TARGET_avx512 static void relu22_rows16(const float *x, float *out, uint8_t *slot, int64_t rows, int64_t OW) {
    const pool16 p = pool16_of(OW);
    for (int64_t r = 0; r < rows; r++) {
        __m512 a;
        __mmask16 ut, ub, v;
        const __m512 m = pool16_window(&p, x, r, 2 * OW, &a, &ut, &ub, &v);
        const __mmask16 pos = _mm512_cmp_ps_mask(m, _mm512_setzero_ps(), _CMP_GT_OQ);
        const __mmask16 keep = pos | _mm512_cmp_ps_mask(m, m, _CMP_UNORD_Q);
        /* MG_RELU(first): a < 0 ? 0 : a */
        const __m512 z = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_setzero_ps(), _CMP_LT_OQ), a, _mm512_setzero_ps());
        _mm512_mask_storeu_ps(out + r * OW, p.mo, _mm512_mask_blend_ps(keep, z, m));
        /* the winner's slot (MAX22_ROWS' SLOT): 2 v + (v ? ub : ut), 4 where the max is not > 0 */
        const __m512i one = _mm512_set1_epi32(1);
        __m512i sv = _mm512_add_epi32(_mm512_maskz_mov_epi32(v, _mm512_set1_epi32(2)),
                                      _mm512_maskz_mov_epi32((v & ub) | ((__mmask16)~v & ut), one));
        sv = _mm512_mask_mov_epi32(_mm512_set1_epi32(4), pos, sv);
        _mm512_mask_cvtepi32_storeu_epi8(slot + r * OW, p.mo, sv);
    }
}
MG_ISA_TARGET_avx512 static void relu22_back_rows16(const uint8_t *slot, const float *g, float *dx, int64_t rows, int64_t OW) {
    const pool16 p = pool16_of(OW);
    const int64_t W = 2 * OW;
    for (int64_t r = 0; r < rows; r++) {
        const __m512i sv = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(p.mo, slot + r * OW));
        const __m512 gv = _mm512_add_ps(_mm512_setzero_ps(), _mm512_maskz_loadu_ps(p.mo, g + r * OW));
        __m512 w[4]; /* the gradient where slot k won, +0 elsewhere */
        for (int k = 0; k < 4; k++) w[k] = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(sv, _mm512_set1_epi32(k)), gv);
        float *d = dx + 2 * r * W;
        _mm512_mask_storeu_ps(d, p.m0, _mm512_permutex2var_ps(w[0], p.lo, w[1]));
        _mm512_mask_storeu_ps(d + 16, p.m1, _mm512_permutex2var_ps(w[0], p.hi, w[1]));
        _mm512_mask_storeu_ps(d + W, p.m0, _mm512_permutex2var_ps(w[2], p.lo, w[3]));
        _mm512_mask_storeu_ps(d + W + 16, p.m1, _mm512_permutex2var_ps(w[2], p.hi, w[3]));
    }
}
#else /* never called: pool16_fits is false */
static void relu22_rows16(const float *x, float *out, uint8_t *slot, int64_t rows, int64_t OW) {
    (void)x, (void)out, (void)slot, (void)rows, (void)OW;
}
static void relu22_back_rows16(const uint8_t *slot, const float *g, float *dx, int64_t rows, int64_t OW) {
    (void)slot, (void)g, (void)dx, (void)rows, (void)OW;
}
#endif
/* relu22_rows16 / relu22_back_rows16 apply: float32 at AVX-512, rows of at most 16 windows */
static int pool16_fits(const conv_job *j) {
#if MG_CPU_X86
    return j->dt == MG_FLOAT32 && j->isa >= MG_ISA_AVX512 && j->OW <= 16;
#else
    (void)j;
    return 0;
#endif
}

/* The 2x2 window at stride 2 (no padding, no dilation) over planes of contiguous rows of even
 * width within MAX22_BLOCK: max22_* / relu22_* and, for the fused relu, relu22_back. */
static int pool22(const conv_job *j) {
    const mg_conv2d_geom *g = &j->g;
    return g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->dh == 1 && g->dw == 1 && g->ph == 0 &&
           g->pw == 0 && j->OH >= 1 && 2 * j->OH <= j->H && j->W == 2 * j->OW && j->xs[3] == 1 &&
           j->xs[2] == j->W && j->OW <= MAX22_BLOCK / 2 && (j->dt == MG_FLOAT32 || j->dt == MG_FLOAT64);
}

/* inside: padding 0 and the last window within the input (not so for a ceil_mode output whose
 * last window reaches past it), no bounds checks. */
#define MAXPOOL_PLANE(T)                                                                       \
    do {                                                                                       \
        const T *xp = (const T *)j->x + n * j->xs[0] + c * j->xs[1];                           \
        T *op = (T *)j->out + q * OHW;                                                         \
        int64_t *ip = j->idx ? (int64_t *)j->idx + q * OHW : NULL;                             \
        uint8_t *sp = j->slot ? j->slot + q * OHW : NULL; /* the fused relu's slots (relu22) */ \
        const int inside = g->ph == 0 && g->pw == 0 && (j->OH - 1) * g->sh + (g->kh - 1) * g->dh < j->H && \
                           (j->OW - 1) * g->sw + (g->kw - 1) * g->dw < j->W;                   \
        if (sp && pool16_fits(j)) {                                                            \
            relu22_rows16((const float *)xp, (float *)op, sp, j->OH, j->OW);                   \
            break;                                                                             \
        }                                                                                      \
        if (pool22(j)) { /* the common 2x2 window, stride 2: blocks of rows */                  \
            const int64_t per = MAX22_BLOCK / (2 * j->OW);                                     \
            for (int64_t oh = 0; oh < j->OH; oh += per) {                                      \
                const int64_t rows = j->OH - oh < per ? j->OH - oh : per;                      \
                (sp ? MG_ISA_PICK(j->isa, relu22_##T)                                          \
                 : j->relu ? MG_ISA_PICK(j->isa, max22r_##T) : MG_ISA_PICK(j->isa, max22_##T))( \
                    xp + 2 * oh * j->W, op + oh * j->OW,                                       \
                    sp ? (void *)(sp + oh * j->OW) : (void *)(ip + oh * j->OW), rows, j->OW, 2 * oh * j->W); \
            }                                                                                  \
            break;                                                                             \
        }                                                                                      \
        for (int64_t oh = 0; oh < j->OH; oh++)                                                 \
            for (int64_t ow = 0; ow < j->OW; ow++) {                                           \
                T best = (T)-INFINITY, first = 0;                                              \
                int64_t at = -1;                                                               \
                const int64_t h0 = oh * g->sh - g->ph, w0 = ow * g->sw - g->pw;                \
                if (inside) {                                                                  \
                    for (int64_t ki = 0; ki < g->kh; ki++) {                                   \
                        const int64_t ih = h0 + ki * g->dh;                                    \
                        const T *row = xp + ih * j->xs[2];                                     \
                        for (int64_t kj = 0; kj < g->kw; kj++) {                               \
                            const int64_t iw = w0 + kj * g->dw;                                \
                            const T v = row[iw * j->xs[3]];                                    \
                            if (at < 0) first = v;                                             \
                            if (at < 0 || v > best || isnan(v)) best = v, at = ih * j->W + iw; \
                        }                                                                      \
                    }                                                                          \
                } else {                                                                       \
                    for (int64_t ki = 0; ki < g->kh; ki++) {                                   \
                        const int64_t ih = h0 + ki * g->dh;                                    \
                        if (ih < 0 || ih >= j->H) continue;                                    \
                        for (int64_t kj = 0; kj < g->kw; kj++) {                               \
                            const int64_t iw = w0 + kj * g->dw;                                \
                            if (iw < 0 || iw >= j->W) continue;                                \
                            const T v = xp[ih * j->xs[2] + iw * j->xs[3]];                     \
                            if (at < 0) first = v;                                             \
                            if (at < 0 || v > best || isnan(v)) best = v, at = ih * j->W + iw; \
                        }                                                                      \
                    }                                                                          \
                }                                                                              \
                if (j->relu && !(best > 0)) { /* RELU_POOLED */                                \
                    if (at >= 0 && best == best) best = MG_RELU(first);                    \
                    at = -1;                                                                   \
                }                                                                              \
                op[oh * j->OW + ow] = best;                                                    \
                ip[oh * j->OW + ow] = at;                                                      \
            }                                                                                  \
    } while (0)

static void maxpool_range(void *arg, int64_t b, int64_t e) {
    const conv_job *j = (const conv_job *)arg;
    const mg_conv2d_geom *g = &j->g;
    const int64_t OHW = j->OH * j->OW;
    for (int64_t q = b; q < e; q++) {
        const int64_t n = q / j->C, c = q % j->C;
        if (j->dt == MG_FLOAT64) MAXPOOL_PLANE(double);
        else MAXPOOL_PLANE(float);
    }
}

/* avg (adaptive = 0) or adaptive avg (1) pooling of one plane */
static inline void window(const conv_job *j, int adaptive, int64_t oh, int64_t ow, int64_t *h0, int64_t *h1,
                          int64_t *w0, int64_t *w1, double *div) {
    if (adaptive) {
        *h0 = oh * j->H / j->OH, *h1 = ((oh + 1) * j->H + j->OH - 1) / j->OH;
        *w0 = ow * j->W / j->OW, *w1 = ((ow + 1) * j->W + j->OW - 1) / j->OW;
        *div = (double)((*h1 - *h0) * (*w1 - *w0));
        return;
    }
    const mg_conv2d_geom *g = &j->g;
    int64_t hs = oh * g->sh - g->ph, ws = ow * g->sw - g->pw;
    int64_t he = hs + g->kh, we = ws + g->kw;
    if (he > j->H + g->ph) he = j->H + g->ph; /* (a ceil_mode window past the padding) */
    if (we > j->W + g->pw) we = j->W + g->pw;
    *div = (double)((he - hs) * (we - ws)); /* padded zeros counted */
    *h0 = hs < 0 ? 0 : hs, *w0 = ws < 0 ? 0 : ws;
    *h1 = he > j->H ? j->H : he, *w1 = we > j->W ? j->W : we;
    if (g->exclude_pad) *div = (double)((*h1 - *h0) * (*w1 - *w0)); /* count_include_pad = false */
    if (g->divisor) *div = (double)g->divisor;                       /* divisor_override */
}

#define AVGPOOL_PLANE(T)                                                                       \
    do {                                                                                       \
        const T *xp = (const T *)j->x + n * j->xs[0] + c * j->xs[1];                           \
        T *op = (T *)j->out + q * OHW;                                                         \
        for (int64_t oh = 0; oh < j->OH; oh++)                                                 \
            for (int64_t ow = 0; ow < j->OW; ow++) {                                           \
                int64_t h0, h1, w0, w1;                                                        \
                double div, s = 0;                                                             \
                window(j, adaptive, oh, ow, &h0, &h1, &w0, &w1, &div);                         \
                for (int64_t ih = h0; ih < h1; ih++)                                           \
                    for (int64_t iw = w0; iw < w1; iw++) s += xp[ih * j->xs[2] + iw * j->xs[3]]; \
                op[oh * j->OW + ow] = (T)(s / div);                                            \
            }                                                                                  \
    } while (0)

static void avgpool_range_impl(const conv_job *j, int adaptive, int64_t b, int64_t e) {
    const int64_t OHW = j->OH * j->OW;
    for (int64_t q = b; q < e; q++) {
        const int64_t n = q / j->C, c = q % j->C;
        if (j->dt == MG_FLOAT64) AVGPOOL_PLANE(double);
        else AVGPOOL_PLANE(float);
    }
}
static void avgpool_range(void *arg, int64_t b, int64_t e) { avgpool_range_impl((const conv_job *)arg, 0, b, e); }
static void adaptive_range(void *arg, int64_t b, int64_t e) { avgpool_range_impl((const conv_job *)arg, 1, b, e); }

static void pool_job(conv_job *j, const mg_tensor *x, const mg_tensor *out, const mg_conv2d_geom *g) {
    mg_conv2d_geom none = {1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0};
    fill_job(j, x, out->size[2], out->size[3], g ? g : &none);
    j->out = (char *)mg_tensor_data(out);
}

static mg_status max_pool(mg_ctx *ctx, mg_tensor *out, mg_tensor *indices, const mg_tensor *x,
                          const mg_conv2d_geom *g, int relu) {
    conv_job j;
    pool_job(&j, x, out, g);
    j.isa = ctx->isa;
    j.relu = relu;
    if (relu && pool22(&j)) j.slot = (uint8_t *)mg_tensor_data(indices); /* mg_max_pool2d_relu_slots */
    else j.idx = (const int64_t *)mg_tensor_data(indices);
    if (out->numel) mg_parallel_for(ctx, j.N * j.C, grain_for(j.OH * j.OW * g->kh * g->kw), maxpool_range, &j);
    return MG_OK;
}
mg_status mg_max_pool2d(mg_ctx *ctx, mg_tensor *out, mg_tensor *indices, const mg_tensor *x,
                        const mg_conv2d_geom *g) {
    return max_pool(ctx, out, indices, x, g, 0);
}
mg_status mg_max_pool2d_relu(mg_ctx *ctx, mg_tensor *out, mg_tensor *indices, const mg_tensor *x,
                             const mg_conv2d_geom *g) {
    return max_pool(ctx, out, indices, x, g, 1);
}

bool mg_max_pool2d_relu_slots(const mg_tensor *x, int64_t OH, int64_t OW, const mg_conv2d_geom *g) {
    conv_job j;
    fill_job(&j, x, OH, OW, g);
    return pool22(&j);
}

mg_status mg_avg_pool2d(mg_ctx *ctx, mg_tensor *out, const mg_tensor *x, const mg_conv2d_geom *g) {
    conv_job j;
    pool_job(&j, x, out, g);
    if (out->numel) mg_parallel_for(ctx, j.N * j.C, grain_for(j.OH * j.OW * g->kh * g->kw), avgpool_range, &j);
    return MG_OK;
}

mg_status mg_adaptive_avg_pool2d(mg_ctx *ctx, mg_tensor *out, const mg_tensor *x) {
    conv_job j;
    pool_job(&j, x, out, NULL);
    if (out->numel) mg_parallel_for(ctx, j.N * j.C, grain_for(j.H * j.W + j.OH * j.OW), adaptive_range, &j);
    return MG_OK;
}

/* dx of the fused relu + 2x2 max pool (pool22) from its slots (MAX22_ROWS' SLOT): a window's g goes
 * to the element its slot names, as 0 + g (the unfused backward adds g onto zeros: -0 arrives as
 * +0), every other element is +0 (slot 4: all four). Each element of dx written once, from the
 * slots and g alone: no int64 indices, no zeroing pass, no second read of x. */
#define RELU22_BACK(isa, NAME, T)                                                              \
    static void MG_ISA_FN(NAME, isa)(const uint8_t *restrict slot, const T *restrict g, T *restrict dx,\
                                     int64_t rows, int64_t OW) {                               \
        const int64_t W = 2 * OW;                                                              \
        for (int64_t r = 0; r < rows; r++) {                                                   \
            T *d = dx + 2 * r * W;                                                             \
            for (int64_t ow = 0; ow < OW; ow++) {                                              \
                const int k = slot[r * OW + ow];                                               \
                const T gv = (T)0 + g[r * OW + ow];                                            \
                d[2 * ow] = k == 0 ? gv : (T)0;                                                \
                d[2 * ow + 1] = k == 1 ? gv : (T)0;                                            \
                d[W + 2 * ow] = k == 2 ? gv : (T)0;                                            \
                d[W + 2 * ow + 1] = k == 3 ? gv : (T)0;                                        \
            }                                                                                  \
        }                                                                                      \
    }
MG_ISA_STAMP(RELU22_BACK, relu22_back_float, float)
MG_ISA_STAMP(RELU22_BACK, relu22_back_double, double)
#undef RELU22_BACK
#define RELU22_BACK_PLANE(T)                                                                   \
    do {                                                                                       \
        T *dp = (T *)j->dx + q * j->H * j->W;                                                  \
        const T *gp = (const T *)j->gout + q * j->OH * j->OW;                                  \
        const uint8_t *sp = j->slot + q * j->OH * j->OW;                                       \
        if (pool16_fits(j)) relu22_back_rows16(sp, (const float *)gp, (float *)dp, j->OH, j->OW);\
        else MG_ISA_PICK(j->isa, relu22_back_##T)(sp, gp, dp, j->OH, j->OW);                   \
        for (int64_t s = 2 * j->OH * j->W; s < j->H * j->W; s++) dp[s] = 0; /* an odd last row */\
    } while (0)
static void relu22_back_range(void *arg, int64_t b, int64_t e) {
    const conv_job *j = (const conv_job *)arg;
    for (int64_t q = b; q < e; q++) {
        if (j->dt == MG_FLOAT64) RELU22_BACK_PLANE(double);
        else RELU22_BACK_PLANE(float);
    }
}
#undef RELU22_BACK_PLANE

/* backward of the pools: each input plane q gets the gradients of its own output plane */
#define POOL_BACK_PLANE(T)                                                                     \
    do {                                                                                       \
        T *dp = (T *)j->dx + q * HW;                                                           \
        const T *gp = (const T *)j->gout + q * OHW;                                               \
        for (int64_t s = 0; s < HW; s++) dp[s] = 0;                                            \
        if (j->idx) {                                                                          \
            const int64_t *ip = j->idx + q * OHW;                                              \
            for (int64_t s = 0; s < OHW; s++)                                                  \
                if (ip[s] >= 0) dp[ip[s]] += gp[s];                                            \
        } else {                                                                               \
            for (int64_t oh = 0; oh < j->OH; oh++)                                             \
                for (int64_t ow = 0; ow < j->OW; ow++) {                                       \
                    int64_t h0, h1, w0, w1;                                                    \
                    double div;                                                                \
                    window(j, adaptive, oh, ow, &h0, &h1, &w0, &w1, &div);                     \
                    const T v = (T)(gp[oh * j->OW + ow] / div);                                \
                    for (int64_t ih = h0; ih < h1; ih++)                                       \
                        for (int64_t iw = w0; iw < w1; iw++) dp[ih * j->W + iw] += v;          \
                }                                                                              \
        }                                                                                      \
    } while (0)

static void pool_back_impl(const conv_job *j, int adaptive, int64_t b, int64_t e) {
    const int64_t OHW = j->OH * j->OW, HW = j->H * j->W;
    for (int64_t q = b; q < e; q++) {
        if (j->dt == MG_FLOAT64) POOL_BACK_PLANE(double);
        else POOL_BACK_PLANE(float);
    }
}
static void pool_back_range(void *arg, int64_t b, int64_t e) { pool_back_impl((const conv_job *)arg, 0, b, e); }
static void adaptive_back_range(void *arg, int64_t b, int64_t e) { pool_back_impl((const conv_job *)arg, 1, b, e); }

static mg_status pool_backward(mg_ctx *ctx, const mg_backward_args *a, mg_tensor *gin) {
    const mg_conv_op op = (mg_conv_op)a->node->op;
    mg_conv2d_geom g = {1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0};
    if (op != MG_CONV_ADAPTIVE_AVG) {
        mg_pool_unpack(a->node->iarg, &g);
        g.kh = (int64_t)a->node->darg[0], g.kw = (int64_t)a->node->darg[1];
    }
    mg_view_buf vx, vg, vi, vgin;
    const mg_tensor *x = mg_conv_view4(&vx, a->inputs[0], 2);
    const mg_tensor *gout4 = mg_conv_view4(&vg, a->gout, 2);
    mg_scratch gsc;
    const mg_tensor *gc;
    mg_status st = mg_conv_contiguous(ctx, gout4, &gsc, &gc);
    if (st != MG_OK) goto done;
    conv_job j;
    fill_job(&j, x, gout4->size[2], gout4->size[3], &g);
    j.dx = (char *)mg_tensor_data(mg_conv_view4(&vgin, gin, 2));
    j.gout = (const char *)mg_tensor_data(gc);
    j.isa = ctx->isa;
    if (op == MG_CONV_MAX_POOL_RELU && pool22(&j)) { /* the winners' slots (mg_max_pool2d_relu_slots) */
        j.slot = (uint8_t *)mg_tensor_data(a->saved[0]);
        if (gin->numel) mg_parallel_for(ctx, j.N * j.C, grain_for(2 * j.H * j.W), relu22_back_range, &j);
        goto done;
    }
    if (op == MG_CONV_MAX_POOL || op == MG_CONV_MAX_POOL_RELU)
        j.idx = (const int64_t *)mg_tensor_data(mg_conv_view4(&vi, a->saved[0], 2));
    if (gin->numel)
        mg_parallel_for(ctx, j.N * j.C, grain_for(j.H * j.W + j.OH * j.OW * g.kh * g.kw),
                        op == MG_CONV_ADAPTIVE_AVG ? adaptive_back_range : pool_back_range, &j);
done:
    if (gsc.s.data) mg_scratch_free(ctx, &gsc);
    return st;
}

/* ---- the family's rule ------------------------------------------------------------------------ */
mg_status mg_conv_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    switch ((mg_conv_op)a->node->op) {
    case MG_CONV_CONV: return conv_backward(ctx, a, i, gin);
    case MG_CONV_MAX_POOL:
    case MG_CONV_MAX_POOL_RELU:
    case MG_CONV_AVG_POOL:
    case MG_CONV_ADAPTIVE_AVG: return pool_backward(ctx, a, gin);
    default: return mg_norm_backward(ctx, a, i, gin);
    }
}
