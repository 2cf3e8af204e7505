/*
 * gemm.c: the matrix-product engine (see gemm.h for its API): C(M,N) = A(M,K) B(K,N) for float32,
 * float64 and int64, with any strides, on one thread or several. src/ops/linalg.c maps matmul's
 * forms onto it.
 *
 * One product is described by a `product` (pointers and strides in elements, any strides:
 * transposed and expanded views multiply without a copy). Three kinds of kernel run it:
 *   - naive: the triple loop, the oracle and the fallback. It runs int64 (wrapping as PyTorch does),
 *     K == 0 (C = 0), and vector products (M == 1 or N == 1) that read the matrix along its
 *     contiguous dim, where packing would only pad the vector to a whole micro-tile;
 *   - gemm (float32, float64): the usual cache-blocked scheme. For each KC x NC panel of B and each
 *     MC x KC block of A, both are packed into contiguous 64-byte aligned scratch (A in slivers of
 *     MR rows, B in slivers of NR columns, zero-padded), then a register-tiled MR x NR micro-kernel.
 *     A small product (C no taller than one block of A, one thread) skips the packing (gemm_direct): the
 *     SIMD kernel reads A in place and a row-major B too, with the same sums (same bits).
 *     On x86 the kernel is chosen at each call from the ctx's level (ctx->isa: what the CPU has,
 *     capped by MOONGRAD_ISA; src/core/cpu.h): AVX-512 (12x32 float32, 12x16 float64, 24 zmm
 *     accumulators), else AVX2+FMA (6x16 / 6x8, 12 ymm), else the portable one (plain loops over a
 *     fixed-size local array, which the compiler keeps in SSE registers). They are compiled with target attributes: no -m flags;
 *   - gemv (float32 vector products, on x86 with FMA): matrix-vector kernels that read the matrix
 *     in place whatever its layout, with the gemm's sums (same bits); see the gemv section.
 * All accumulate in the element type (float32 in float32, as BLAS does). The order of the sums
 * depends on the sizes only (blocks of KC along K, each summed in order, then added to C), so
 * results are reproducible on one machine; the SIMD kernels use fused multiply-adds (and so do the
 * naive path's sums when one of them is selected, so that a vector product gives the same bits
 * whatever its layout), and the AVX2 and AVX-512 kernels give the same bits as each other. The
 * blocking logic is dtype-free; only pack, micro and naive are typed, one DEFINE_ line per dtype.
 * Threads split C (gemm) or the outputs or K blocks (gemv) so that every sum keeps its order: the
 * bits do not depend on the number of threads.
 *
 * Layout: the portable kernels; then, in one `#if MG_CPU_X86` section, the SIMD kernels, their
 * tables and the gemv kernels (with stubs elsewhere); then the drivers (gemv_run, gemm_direct,
 * the threaded blocked product) and mg_gemm, which picks one per product.
 *
 * To add a dtype: DEFINE_NAIVE (and DEFINE_PACK / DEFINE_MICRO for a gemm), a row in `kernels`.
 */
#include <string.h>

#include "../core/cpu.h"
#include "gemm.h"

/* One product C(M,N) = A(M,K) B(K,N), strides in elements (the batch fields are not read). */
typedef mg_gemm_args product;

static int64_t min64(int64_t x, int64_t y) { return x < y ? x : y; }
static int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/* Element offset -> address (es: element size in bytes). */
static const char *at(const void *p, int64_t off, size_t es) { return (const char *)p + (size_t)off * es; }

/* ---- stopping a long product (mg_interrupt, mg.set_time_limit) ----------------------------- */
/* A product of MG_INTERRUPT_CHUNK multiply-adds or more is watched: it looks at the interrupt
 * request (and the deadline of the time limit) about every MG_INTERRUPT_CHUNK multiply-adds, or
 * once per block of A in the blocked path (gemm_tiles), and stops. Any thread may look (a relaxed
 * load: workers see the request too); the first that sees it sets `stop`, after which every
 * range function returns at once, and the caller's thread takes the request (mg_should_stop:
 * ctx->err is written by one thread only) and returns MG_EINTR. Where a product is cut into pieces
 * to look between them, every C element is still summed as the unwatched product sums it (see
 * naive_pieces and gemv_outputs): the bits do not depend on being watched. */
typedef struct watch {
    mg_ctx *ctx;
    double deadline;  /* mg_deadline's (0: no time limit) */
    atomic_int stop;  /* some thread saw the request or the deadline */
} watch;
static bool watch_poll(watch *w) {
    if (atomic_load_explicit(&w->stop, memory_order_relaxed)) return true;
    if (!atomic_load_explicit(&w->ctx->interrupt, memory_order_relaxed) && (w->deadline == 0 || mg_now() < w->deadline))
        return false;
    atomic_store_explicit(&w->stop, 1, memory_order_relaxed);
    return true;
}
static bool watch_stopped(watch *w) { return w && atomic_load_explicit(&w->stop, memory_order_relaxed); }
/* K lengths past this are cut into pieces: a first part in one call (the first blocks of kc, as the
 * whole product sums them), then one block of kc per call, added to C in order (as the kernels add
 * their blocks): so a dot of 2^40 elements looks at the request every MG_INTERRUPT_CHUNK. Below it,
 * a piece sums all of K (at most WATCH_OUTS x WATCH_K multiply-adds between looks). */
#ifndef WATCH_K
#define WATCH_K ((int64_t)1 << 22)
#endif
/* the outputs of one piece when K is cut (a stack buffer holds their block sums) */
#define WATCH_OUTS 64
/* the length of K a piece of `outs` outputs sums in its first call: about MG_INTERRUPT_CHUNK
 * multiply-adds, a whole number of blocks of kc */
static int64_t watch_first(int64_t outs, int64_t kc) {
    const int64_t blocks = MG_INTERRUPT_CHUNK / outs / kc;
    return blocks > 0 ? blocks * kc : kc;
}

/* ---- naive: oracle and fallback ------------------------------------------------------------ */
/* Each element of C is a dot product summed exactly as the gemm sums it: blocks of kc along K
 * (kc: the gemm's, or all of K), each summed in order from 0 with MADD (a fused multiply-add when
 * the gemm's micro-kernel uses one), the blocks added in order. So a vector product gives the same
 * bits on either path. Outputs are computed up to NAIVE_GROUP at a time (along a row, or along a
 * column when C is taller than wide), so that as many independent sums are in flight. The group
 * computes out[o * os] = sum over p of x[o * xs + p * xp] * y[o * ys + p * yp], o < cnt. */
#define NAIVE_GROUP 8
#define NAIVE_BLOCK(T, CNT, MADD)                                                              \
    for (int64_t p0 = 0, p1; p0 < k; p0 = p1) {                                                \
        p1 = k - p0 <= kc ? k : p0 + kc;                                                       \
        T acc[NAIVE_GROUP] = {0};                                                              \
        _Pragma("GCC unroll 8") for (int64_t o = 0; o < CNT; o++) acc[o] = 0;                  \
        for (int64_t p = p0; p < p1; p++)                                                      \
            _Pragma("GCC unroll 8") for (int64_t o = 0; o < CNT; o++)                          \
                acc[o] = MADD(x[o * xs + p * xp], y[o * ys + p * yp], acc[o]);                 \
        _Pragma("GCC unroll 8") for (int64_t o = 0; o < CNT; o++)                              \
            tot[o] = p0 == 0 ? acc[o] : tot[o] + acc[o];                                       \
    }
#define DEFINE_NAIVE(NAME, T, ATTR, MADD)                                                     \
    ATTR static void NAME##_group(T *out, int64_t os, int64_t cnt, const T *x, int64_t xs,    \
                                  int64_t xp, const T *y, int64_t ys, int64_t yp, int64_t k,  \
                                  int64_t kc) {                                               \
        T tot[NAIVE_GROUP] = {0};                                                             \
        if (cnt == NAIVE_GROUP) {                                                             \
            NAIVE_BLOCK(T, NAIVE_GROUP, MADD)                                                 \
        } else {                                                                              \
            NAIVE_BLOCK(T, cnt, MADD)                                                         \
        }                                                                                     \
        for (int64_t o = 0; o < cnt; o++) out[o * os] = tot[o];                               \
    }                                                                                         \
    static void NAME(const product *g, int64_t kc) {                                          \
        const T *a = (const T *)g->a, *b = (const T *)g->b;                                   \
        T *c = (T *)g->c;                                                                     \
        if (g->n >= g->m) {                                                                   \
            for (int64_t i = 0; i < g->m; i++)                                                \
                for (int64_t j = 0; j < g->n; j += NAIVE_GROUP)                               \
                    NAME##_group(c + i * g->rsc + j * g->csc, g->csc,                         \
                                 g->n - j < NAIVE_GROUP ? g->n - j : NAIVE_GROUP,             \
                                 a + i * g->rsa, 0, g->csa, b + j * g->csb, g->csb, g->rsb,   \
                                 g->k, kc);                                                   \
        } else {                                                                              \
            for (int64_t j = 0; j < g->n; j++)                                                \
                for (int64_t i = 0; i < g->m; i += NAIVE_GROUP)                               \
                    NAME##_group(c + i * g->rsc + j * g->csc, g->rsc,                         \
                                 g->m - i < NAIVE_GROUP ? g->m - i : NAIVE_GROUP,             \
                                 a + i * g->rsa, g->rsa, g->csa, b + j * g->csb, 0, g->rsb,   \
                                 g->k, kc);                                                   \
        }                                                                                     \
    }
#define MADD_PLAIN(x, y, acc) ((acc) + (x) * (y))
DEFINE_NAIVE(naive_f32, float, , MADD_PLAIN)
DEFINE_NAIVE(naive_f64, double, , MADD_PLAIN)
DEFINE_NAIVE(naive_i64, uint64_t, , MADD_PLAIN) /* int64 read as unsigned: wraps, no overflow */

/* ---- gemm: packing and micro-kernels ------------------------------------------------------- */
/* Packs `lanes` rows (A: rows, s_lane = rsa, s_depth = csa) or columns (B: s_lane = csb,
 * s_depth = rsb) of a depth-`depth` block into slivers of W lanes: for each sliver, for each p,
 * W values, the missing lanes of the last sliver zero. Lanes adjacent in memory are copied a row
 * of W at a time; otherwise each lane is read along its depth (contiguous for a row-major A or a
 * transposed B) and written with a stride of W. */
#define DEFINE_PACK(NAME, T, W, FAST)                                                         \
    static void NAME(void *dst_, const void *src_, int64_t s_lane, int64_t s_depth,           \
                     int64_t lanes, int64_t depth) {                                          \
        T *restrict dst = (T *)dst_;                                                          \
        const T *src = (const T *)src_;                                                       \
        int64_t l0 = 0;                                                                       \
        if (s_lane == 1) { /* whole slivers of adjacent lanes: each source row read once, in order */ \
            const int64_t full = lanes / W;                                                   \
            for (int64_t p = 0; p < depth; p++)                                               \
                for (int64_t v = 0; v < full; v++)                                            \
                    memcpy(dst + v * W * depth + p * W, src + p * s_depth + v * W, sizeof(T) * W); \
            l0 = full * W, dst += full * W * depth;                                           \
        }                                                                                     \
        for (; l0 < lanes; l0 += W, dst += W * depth) {                                       \
            const int64_t w = lanes - l0 < W ? lanes - l0 : W;                                \
            const T *s = src + l0 * s_lane;                                                   \
            int64_t l = 0;                                                                    \
            FAST(W)                                                                           \
            for (; l + 4 <= w; l += 4) {                                                      \
                const T *s0 = s + l * s_lane, *s1 = s0 + s_lane, *s2 = s1 + s_lane,           \
                        *s3 = s2 + s_lane;                                                    \
                T *d = dst + l;                                                               \
                for (int64_t p = 0; p < depth; p++, d += W) {                                 \
                    const int64_t q = p * s_depth;                                            \
                    d[0] = s0[q], d[1] = s1[q], d[2] = s2[q], d[3] = s3[q];                   \
                }                                                                             \
            }                                                                                 \
            for (; l < w; l++)                                                                \
                for (int64_t p = 0; p < depth; p++) dst[p * W + l] = s[l * s_lane + p * s_depth]; \
            for (; l < W; l++)                                                                \
                for (int64_t p = 0; p < depth; p++) dst[p * W + l] = 0;                       \
        }                                                                                     \
    }

#define NO_FAST(W)

/* The portable micro-kernel: acc(MR,NR) = sum over p of pa(p, 0..MR) x pb(p, 0..NR), then the
 * mr x nr corner that exists goes to C: stored on the first K block, added on the next ones. */
#define DEFINE_MICRO(NAME, T, MR, NR)                                                         \
    static void NAME(int64_t kc, const void *pa_, const void *pb_, void *c_, int64_t rsc,     \
                     int64_t csc, int64_t mr, int64_t nr, bool first) {                       \
        const T *restrict pa = (const T *)pa_, *restrict pb = (const T *)pb_;                 \
        T acc[MR][NR];                                                                        \
        for (int i = 0; i < MR; i++)                                                          \
            for (int j = 0; j < NR; j++) acc[i][j] = 0;                                       \
        for (int64_t p = 0; p < kc; p++, pa += MR, pb += NR)                                  \
            for (int i = 0; i < MR; i++)                                                      \
                for (int j = 0; j < NR; j++) acc[i][j] += pa[i] * pb[j];                      \
        T *c = (T *)c_;                                                                       \
        for (int64_t i = 0; i < mr; i++)                                                      \
            for (int64_t j = 0; j < nr; j++) {                                                \
                T *cij = c + i * rsc + j * csc;                                               \
                *cij = first ? acc[i][j] : *cij + acc[i][j];                                  \
            }                                                                                 \
    }
/* 6x8 float32 / 6x4 float64: 12 SSE2 accumulators, leaving room for the B row and an A value */
DEFINE_MICRO(micro_f32, float, 6, 8)
DEFINE_MICRO(micro_f64, double, 6, 4)
DEFINE_PACK(pack_f32_6, float, 6, NO_FAST)
DEFINE_PACK(pack_f32_8, float, 8, NO_FAST)
DEFINE_PACK(pack_f64_6, double, 6, NO_FAST)
DEFINE_PACK(pack_f64_4, double, 4, NO_FAST)

/* ---- kernel tables ------------------------------------------------------------------------- */
typedef void (*naive_fn)(const product *g, int64_t kc);
typedef void (*pack_fn)(void *dst, const void *src, int64_t s_lane, int64_t s_depth, int64_t lanes,
                        int64_t depth);
typedef void (*micro_fn)(int64_t kc, const void *pa, const void *pb, void *c, int64_t rsc,
                         int64_t csc, int64_t mr, int64_t nr, bool first);
typedef void (*direct_fn)(int64_t kc, const void *a, int64_t ars, int64_t aps, const void *pb,
                          int64_t ldb, void *c, int64_t rsc, int64_t csc, int64_t mr, int64_t nr,
                          bool first);

/* mr, nr: the micro-tile; mc, nc: block sizes (mc a multiple of mr, nc of nr); kc: the length of
 * each sum along K (the bits: blocks of kc summed from 0, added in order). The blocked product packs
 * GEMM_KC_BLOCKS blocks of kc at once and runs them back to back on each tile of C, so that a
 * tile of C is read and written while it is still in L1, not once a pass over all of C. */
typedef struct gemm_kernel {
    naive_fn naive;
    pack_fn pack_a, pack_b; /* NULL: no gemm, naive only */
    micro_fn micro;
    int64_t mr, nr, mc, kc, nc;
    direct_fn direct; /* NULL: no unpacked path (see gemm_direct) */
} gemm_kernel;

static const gemm_kernel kernels[MG_NDTYPES] = {
    [MG_FLOAT32] = {naive_f32, pack_f32_6, pack_f32_8, micro_f32, 6, 8, 96, MG_GEMM_KC, 1024, NULL},
    [MG_FLOAT64] = {naive_f64, pack_f64_6, pack_f64_4, micro_f64, 6, 4, 96, MG_GEMM_KC, 512, NULL},
    [MG_INT64] = {naive_i64, NULL, NULL, NULL, 0, 0, 0, 0, 0, NULL},
};

/* Building with -DMG_GEMM_ISA=1 (AVX2 at most) or 0 (portable only) tests the other kernels. */
#ifndef MG_GEMM_ISA
#define MG_GEMM_ISA 2
#endif

/* ---- gemv: float32 products with one output dim of size 1 ---------------------------------- */
/* y(i) = sum over p < k of A(i,p) x(p), i < m, with A(i,p) at a + i rs + p cs: a matrix-vector
 * product (n == 1: A is the product's a) or a vector-matrix one (m == 1: A is b read as its
 * transpose, y is the row of C). Every y(i) is summed exactly as the gemm and naive_f32_fma sum a
 * C element: blocks of kc along K, each a chain of fused multiply-adds in order from +0, the block
 * sums added in order. So the layout of A (and the kernel reading it) never changes the bits:
 *   - rows kernel (cs == 1, rows of A contiguous, e.g. X w): 16 (AVX-512) or 8 (AVX2) rows at a
 *     time, a 16x16 (8x8) tile loaded row by row and transposed in registers, so that each lane
 *     runs one row's chain; the k tail is loaded masked and multiplied by x padded with zeros
 *     (fma(0, 0, acc) == acc, since a chain started from +0 is never -0);
 *   - cols kernel (rs == 1, columns of A contiguous, e.g. X^T g or a column-major A): up to 4
 *     vectors of outputs, one column slice loaded per p, masked at the edge;
 *   - anything else (expanded, narrowed): naive_f32_fma's groups.
 * A kernel computes outputs [i0, i1) over [pb, pe) (pb a multiple of kc) into dst(i - i0) at
 * stride ds. Threads (gemv_run) split the outputs, or, for few outputs and a long K, the kc blocks:
 * each block's sums go to scratch and the caller adds them in block order, which is the order the
 * one-thread kernels use, so the bits do not depend on the number of threads either. */
typedef struct gemv_t {
    int64_t m, k, kc;
    const float *a;
    int64_t rs, cs;
    const float *x;
    int64_t xs;
} gemv_t;
typedef void (*gemv_fn)(const gemv_t *v, int64_t i0, int64_t i1, int64_t pb, int64_t pe, float *dst,
                        int64_t ds);

/* ---- x86 SIMD kernels ---------------------------------------------------------------------- */
#if MG_CPU_X86
DEFINE_NAIVE(naive_f32_fma, float, MG_TARGET("fma"), __builtin_fmaf)
DEFINE_NAIVE(naive_f64_fma, double, MG_TARGET("fma"), __builtin_fma)

/* The end of every SIMD micro-kernel: C (rows rsc apart, columns csc apart) <- acc, or += acc
 * unless `first`. A full tile with unit column stride is stored straight from the registers; an
 * edge tile or a strided C goes through a buffer, element by element. */
#define MICRO_STORE(T, VL, MR, NV, LOADU, STOREU, ADD)                                         \
    T *c = (T *)c_;                                                                            \
    if (mr == MR && nr == NV * VL && csc == 1) {                                               \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                  \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {                             \
                T *cv = c + i * rsc + v * VL;                                                  \
                STOREU(cv, first ? acc[i][v] : ADD(LOADU(cv), acc[i][v]));                     \
            }                                                                                  \
        return;                                                                                \
    }                                                                                          \
    T buf[MR][NV * VL];                                                                        \
    _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                      \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) STOREU(&buf[i][v * VL], acc[i][v]); \
    for (int64_t i = 0; i < mr; i++)                                                           \
        for (int64_t j = 0; j < nr; j++) {                                                     \
            T *cij = c + i * rsc + j * csc;                                                    \
            *cij = first ? buf[i][j] : *cij + buf[i][j];                                       \
        }

/* The loop every SIMD kernel shares (the packed, the direct and the rows ones differ only in where
 * A's values and B's rows are read): SIMD_ACC_ZERO clears the MR x NV accumulators acc, and
 * SIMD_ACC_STEP adds one p: B's row at BROW (NV vectors, loaded with BLOAD) times A's value AVAL
 * of each row i (an expression of the loop's i), one fused multiply-add each, rows in order. */
#define SIMD_ACC_ZERO(MR, NV, SETZ)                                                            \
    _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                      \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[i][v] = SETZ()
#define SIMD_ACC_STEP(VT, VL, MR, NV, SET1, BLOAD, FMA, BROW, AVAL)                            \
    do {                                                                                       \
        VT bv[NV];                                                                             \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) bv[v] = BLOAD((BROW) + v * VL);   \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) {                                \
            const VT av = SET1(AVAL);                                                          \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) acc[i][v] = FMA(av, bv[v], acc[i][v]); \
        }                                                                                      \
    } while (0)

/* SIMD micro-kernels (x86, chosen at run time): MR rows of NV vectors of VL lanes, one fused
 * multiply-add per (row, vector) and p, in order, from 0 (so every element's sum is the same on
 * the AVX2 and the AVX-512 kernels, and the same as naive_*_fma's). Full tiles of a C with
 * contiguous rows are stored (or added) straight from the registers; edges go through a buffer. */
#define DEFINE_SIMD_MICRO(NAME, T, TARGET, VT, VL, MR, NV, SETZ, SET1, LOAD, LOADU, STOREU, FMA, ADD) \
    MG_TARGET(TARGET) static void NAME(int64_t kc, const void *pa_, const void *pb_, void *c_,   \
                                       int64_t rsc, int64_t csc, int64_t mr, int64_t nr,       \
                                       bool first) {                                           \
        const T *pa = (const T *)pa_, *pb = (const T *)pb_;                                    \
        VT acc[MR][NV];                                                                        \
        SIMD_ACC_ZERO(MR, NV, SETZ);                                                           \
        for (int64_t p = 0; p < kc; p++, pa += MR, pb += NV * VL)                               \
            SIMD_ACC_STEP(VT, VL, MR, NV, SET1, LOAD, FMA, pb, pa[i]);                         \
        MICRO_STORE(T, VL, MR, NV, LOADU, STOREU, ADD)                                         \
    }
/* AVX-512: 12 x 32 float32 / 12 x 16 float64 (24 zmm accumulators). AVX2: 6 x 16 / 6 x 8 (12 ymm) */
DEFINE_SIMD_MICRO(micro_f32_avx512, float, "avx512f,fma", __m512, 16, 12, 2, _mm512_setzero_ps,
                  _mm512_set1_ps, _mm512_load_ps, _mm512_loadu_ps, _mm512_storeu_ps,
                  _mm512_fmadd_ps, _mm512_add_ps)
DEFINE_SIMD_MICRO(micro_f64_avx512, double, "avx512f,fma", __m512d, 8, 12, 2, _mm512_setzero_pd,
                  _mm512_set1_pd, _mm512_load_pd, _mm512_loadu_pd, _mm512_storeu_pd,
                  _mm512_fmadd_pd, _mm512_add_pd)
DEFINE_SIMD_MICRO(micro_f32_avx2, float, "avx2,fma", __m256, 8, 6, 2, _mm256_setzero_ps,
                  _mm256_set1_ps, _mm256_load_ps, _mm256_loadu_ps, _mm256_storeu_ps,
                  _mm256_fmadd_ps, _mm256_add_ps)
DEFINE_SIMD_MICRO(micro_f64_avx2, double, "avx2,fma", __m256d, 4, 6, 2, _mm256_setzero_pd,
                  _mm256_set1_pd, _mm256_load_pd, _mm256_loadu_pd, _mm256_storeu_pd,
                  _mm256_fmadd_pd, _mm256_add_pd)
/* The same micro-kernels reading A where it lies (no packing): row i at a + i ars, element p of
 * it at + p aps (rows >= mr read row 0 again, their sums are dropped), and B rows ldb apart (a
 * packed sliver, ldb = NR, or a row-major B read in place). Same fused multiply-adds in the same
 * order from 0: the same bits as the packed kernels. */
#define DEFINE_SIMD_DIRECT(NAME, T, TARGET, VT, VL, MR, NV, SETZ, SET1, LOADU, STOREU, FMA, ADD, COLUMNS) \
    MG_TARGET(TARGET) static void NAME(int64_t kc, const void *a_, int64_t ars, int64_t aps,   \
                                       const void *pb_, int64_t ldb, void *c_, int64_t rsc,    \
                                       int64_t csc, int64_t mr, int64_t nr, bool first) {      \
        const T *pb = (const T *)pb_;                                                          \
        const T *ar[MR];                                                                       \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                                  \
            ar[i] = (const T *)a_ + (i < mr ? i : 0) * ars;                                    \
        VT acc[MR][NV];                                                                        \
        SIMD_ACC_ZERO(MR, NV, SETZ);                                                           \
        for (int64_t p = 0, off = 0; p < kc; p++, off += aps, pb += ldb)                        \
            SIMD_ACC_STEP(VT, VL, MR, NV, SET1, LOADU, FMA, pb, ar[i][off]);                   \
        COLUMNS(c_, csc, mr, nr, rsc, acc, NV, first);                                         \
        MICRO_STORE(T, VL, MR, NV, LOADU, STOREU, ADD)                                         \
    }
/* COLUMNS of the direct kernels: a full tile of a C whose columns are contiguous (rsc 1: a product
 * computed as its transpose, see in_place_pays) stored a column at a time; NO_COLUMNS: none */
#define NO_COLUMNS(c, csc, mr, nr, rsc, acc, NV, first) ((void)0)
#define COLUMNS_8(c, csc, mr, nr, rsc, acc, NV, first)                                         \
    do {                                                                                       \
        if (mr == 8 && nr == 16 * (NV) && rsc == 1) {                                          \
            store_columns8_f32((float *)(c), csc, &acc[0][0], NV, first);                      \
            return;                                                                            \
        }                                                                                      \
    } while (0)
static void store_columns8_f32(float *c, int64_t csc, const __m512 *acc, int nv, bool first);
DEFINE_SIMD_DIRECT(direct_f32_avx512, float, "avx512f,fma", __m512, 16, 12, 2, _mm512_setzero_ps,
                   _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_add_ps, NO_COLUMNS)
DEFINE_SIMD_DIRECT(direct_f64_avx512, double, "avx512f,fma", __m512d, 8, 12, 2, _mm512_setzero_pd,
                   _mm512_set1_pd, _mm512_loadu_pd, _mm512_storeu_pd, _mm512_fmadd_pd, _mm512_add_pd, NO_COLUMNS)
/* AVX-512, 8 x 48 float32 (24 zmm accumulators too): C 8, 16 or 32 rows tall (a convolution's
 * output channels) fills every row of its tiles, where 12-row tiles leave a third of the work
 * padding at 8 or 16 rows. The same sums in the same order: the same bits as 12 x 32. */
DEFINE_SIMD_MICRO(micro_f32_avx512_8x48, float, "avx512f,fma", __m512, 16, 8, 3, _mm512_setzero_ps,
                  _mm512_set1_ps, _mm512_load_ps, _mm512_loadu_ps, _mm512_storeu_ps,
                  _mm512_fmadd_ps, _mm512_add_ps)
DEFINE_SIMD_DIRECT(direct_f32_avx512_8x48, float, "avx512f,fma", __m512, 16, 8, 3, _mm512_setzero_ps,
                   _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_add_ps, COLUMNS_8)
/* AVX-512, 8 x 32 float32 (16 zmm accumulators): a C 8k rows tall and 32k wide (W6's x W1^T, 64 x
 * 256) covered without padding, where 12 x 32 and 8 x 48 tiles compute 72 x 256 / 64 x 288. */
DEFINE_SIMD_MICRO(micro_f32_avx512_8x32, float, "avx512f,fma", __m512, 16, 8, 2, _mm512_setzero_ps,
                  _mm512_set1_ps, _mm512_load_ps, _mm512_loadu_ps, _mm512_storeu_ps,
                  _mm512_fmadd_ps, _mm512_add_ps)
DEFINE_SIMD_DIRECT(direct_f32_avx512_8x32, float, "avx512f,fma", __m512, 16, 8, 2, _mm512_setzero_ps,
                   _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_add_ps, COLUMNS_8)
DEFINE_SIMD_DIRECT(direct_f32_avx2, float, "avx2,fma", __m256, 8, 6, 2, _mm256_setzero_ps,
                   _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_add_ps, NO_COLUMNS)
DEFINE_SIMD_DIRECT(direct_f64_avx2, double, "avx2,fma", __m256d, 4, 6, 2, _mm256_setzero_pd,
                   _mm256_set1_pd, _mm256_loadu_pd, _mm256_storeu_pd, _mm256_fmadd_pd, _mm256_add_pd, NO_COLUMNS)

/* r[l] = row l of an 8x8 tile -> r[j] = column j */
MG_TARGET("avx2") __attribute__((always_inline)) static inline void transpose8_ps(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]),
           t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]),
           t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]),
           t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)),
           u1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)),
           u2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)),
           u3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2)),
           u4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)),
           u5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2)),
           u6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)),
           u7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* C (column j at c + j csc, its 8 rows contiguous) <- or += an 8-row tile of nv vectors of 16
 * float32 (acc row-major, 8 x nv): each 8 x 8 block transposed in registers, then a column of 8 a
 * store. The same adds (C + acc, one rounding) as MICRO_STORE's. */
MG_TARGET("avx512f") static void store_columns8_f32(float *c, int64_t csc, const __m512 *acc, int nv, bool first) {
    for (int v = 0; v < nv; v++)
        for (int h = 0; h < 2; h++) {
            __m256 r[8];
            _Pragma("GCC unroll 8") for (int i = 0; i < 8; i++) {
                const __m512 a = acc[i * nv + v];
                r[i] = h ? _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)) : _mm512_castps512_ps256(a);
            }
            transpose8_ps(r);
            _Pragma("GCC unroll 8") for (int q = 0; q < 8; q++) {
                float *cq = c + (16 * v + 8 * h + q) * csc;
                _mm256_storeu_ps(cq, first ? r[q] : _mm256_add_ps(_mm256_loadu_ps(cq), r[q]));
            }
        }
}

/* 8 lanes (8 rows of A, or 8 columns of a transposed B) read along their contiguous depth and
 * written 8 at a time: 8x8 blocks transposed in registers. dst: the first lane's column of the
 * packed sliver, whose rows are W wide. Used by the packs of the SIMD kernels (AVX2 is there). */
MG_TARGET("avx2") static void transpose8_f32(float *dst, int64_t W, const float *s, int64_t s_lane,
                                             int64_t depth) {
    int64_t p = 0;
    for (; p + 8 <= depth; p += 8) {
        __m256 r[8];
        _Pragma("GCC unroll 8") for (int l = 0; l < 8; l++) r[l] = _mm256_loadu_ps(s + l * s_lane + p);
        transpose8_ps(r);
        _Pragma("GCC unroll 8") for (int q = 0; q < 8; q++) _mm256_storeu_ps(dst + (p + q) * W, r[q]);
    }
    for (; p < depth; p++)
        for (int l = 0; l < 8; l++) dst[p * W + l] = s[l * s_lane + p];
}
#define FAST_T8_F32(W)                                                                        \
    if (s_depth == 1)                                                                         \
        for (; l + 8 <= w; l += 8) transpose8_f32(dst + l, W, s + l * s_lane, s_lane, depth);
DEFINE_PACK(pack_f32_12, float, 12, FAST_T8_F32)
DEFINE_PACK(pack_f32_8t, float, 8, FAST_T8_F32) /* pack_f32_8 with the AVX2 transpose (x86 kernels only) */
DEFINE_PACK(pack_f32_16, float, 16, FAST_T8_F32)
DEFINE_PACK(pack_f32_32, float, 32, FAST_T8_F32)
DEFINE_PACK(pack_f32_48, float, 48, FAST_T8_F32)
DEFINE_PACK(pack_f64_12, double, 12, NO_FAST)
DEFINE_PACK(pack_f64_8, double, 8, NO_FAST)
DEFINE_PACK(pack_f64_16, double, 16, NO_FAST)

static const gemm_kernel kernels_avx512[2] = {
    [MG_FLOAT32] = {naive_f32_fma, pack_f32_12, pack_f32_32, micro_f32_avx512, 12, 32, 384, MG_GEMM_KC, 2048, direct_f32_avx512},
    [MG_FLOAT64] = {naive_f64_fma, pack_f64_12, pack_f64_16, micro_f64_avx512, 12, 16, 192, MG_GEMM_KC, 1024, direct_f64_avx512},
};
static const gemm_kernel kernel_f32_avx512_8x48 = {naive_f32_fma, pack_f32_8t, pack_f32_48, micro_f32_avx512_8x48,
                                                   8, 48, 384, MG_GEMM_KC, 2016, direct_f32_avx512_8x48};
static const gemm_kernel kernel_f32_avx512_8x32 = {naive_f32_fma, pack_f32_8t, pack_f32_32, micro_f32_avx512_8x32,
                                                   8, 32, 384, MG_GEMM_KC, 2048, direct_f32_avx512_8x32};
static const gemm_kernel kernels_avx2[2] = {
    [MG_FLOAT32] = {naive_f32_fma, pack_f32_6, pack_f32_16, micro_f32_avx2, 6, 16, 96, MG_GEMM_KC, 2048, direct_f32_avx2},
    [MG_FLOAT64] = {naive_f64_fma, pack_f64_6, pack_f64_8, micro_f64_avx2, 6, 8, 96, MG_GEMM_KC, 1024, direct_f64_avx2},
};

/* The SIMD kernel for dt (float32, float64) at the ctx's level `isa` and a C m x n; NULL: none
 * (baseline: no FMA). */
static const gemm_kernel *simd_kernel(mg_dtype dt, int64_t m, int64_t n, int isa) {
    /* a C narrower than half the AVX-512 tile pads less on the AVX2 one (and the bits agree) */
    if (MG_GEMM_ISA >= 2 && 2 * n > kernels_avx512[dt].nr && isa >= MG_ISA_AVX512) {
        /* float32: of 12 x 32, 8 x 48 and 8 x 32 tiles (as fast as each other on a large product),
         * the one that covers C with the least padding: the fraction of the tiles' work that is C's
         * (a tie keeps the earlier). W6's x W1^T (64 x 256): 8 x 32, where the others compute 72 x
         * 256 or 64 x 288. */
        if (dt == MG_FLOAT32 && m > 0) {
            const gemm_kernel *const choice[3] = {&kernels_avx512[dt], &kernel_f32_avx512_8x48, &kernel_f32_avx512_8x32};
            const gemm_kernel *best = choice[0];
            double best_fill = 0;
            for (int c = 0; c < 3; c++) {
                const double fill = (double)m / (double)round_up(m, choice[c]->mr) * (double)n /
                                    (double)round_up(n, choice[c]->nr);
                if (fill > best_fill) best = choice[c], best_fill = fill;
            }
            return best;
        }
        return &kernels_avx512[dt];
    }
    if (MG_GEMM_ISA >= 1 && isa >= MG_ISA_AVX2) return &kernels_avx2[dt];
    return NULL;
}

/* ---- x86 gemv kernels ---------------------------------------------------------------------- */
static void gemv_naive(const gemv_t *v, int64_t i0, int64_t i1, int64_t pb, int64_t pe, float *dst,
                       int64_t ds) {
    for (int64_t i = i0; i < i1; i += NAIVE_GROUP)
        naive_f32_fma_group(dst + (i - i0) * ds, ds, i1 - i < NAIVE_GROUP ? i1 - i : NAIVE_GROUP,
                            v->a + i * v->rs + pb * v->cs, v->rs, v->cs, v->x + pb * v->xs, 0, v->xs,
                            pe - pb, v->kc);
}

/* r[l] = row l of a 16x16 tile -> r[j] = column j */
MG_TARGET("avx512f") __attribute__((always_inline)) static inline void transpose16_ps(__m512 r[16]) {
    __m512 t[16], u[16];
    _Pragma("GCC unroll 8") for (int l = 0; l < 8; l++) {
        t[2 * l] = _mm512_unpacklo_ps(r[2 * l], r[2 * l + 1]);
        t[2 * l + 1] = _mm512_unpackhi_ps(r[2 * l], r[2 * l + 1]);
    }
    /* u[4g + c], 128-bit block b: column 4b + c, rows 4g..4g+3 */
    _Pragma("GCC unroll 4") for (int g4 = 0; g4 < 4; g4++) {
        __m512 *tg = t + 4 * g4, *ug = u + 4 * g4;
        ug[0] = _mm512_shuffle_ps(tg[0], tg[2], 0x44);
        ug[1] = _mm512_shuffle_ps(tg[0], tg[2], 0xEE);
        ug[2] = _mm512_shuffle_ps(tg[1], tg[3], 0x44);
        ug[3] = _mm512_shuffle_ps(tg[1], tg[3], 0xEE);
    }
    _Pragma("GCC unroll 4") for (int c = 0; c < 4; c++) {
        const __m512 e = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88),
                     f = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD),
                     g = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88),
                     h = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
        r[c] = _mm512_shuffle_f32x4(e, g, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(e, g, 0xDD);
        r[4 + c] = _mm512_shuffle_f32x4(f, h, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(f, h, 0xDD);
    }
}

/* y values of one vector of lanes to dst at stride ds (the first n lanes) */
#define GEMV_STORE(VL, STOREU, vec, dst, ds, n)                                               \
    do {                                                                                      \
        if ((ds) == 1 && (n) == VL) STOREU(dst, vec);                                         \
        else {                                                                                \
            float buf_[VL];                                                                   \
            STOREU(buf_, vec);                                                                \
            for (int64_t o_ = 0; o_ < (n); o_++) (dst)[o_ * (ds)] = buf_[o_];                 \
        }                                                                                     \
    } while (0)

/* tiles of 16 rows prefetched ahead by the rows kernel (0: none) */
#ifndef GEMV_AHEAD
#define GEMV_AHEAD 1
#endif
/* elements of A from which the rows kernel streams y (16 MB: several times L2) */
#ifndef GEMV_STREAM_MIN
#define GEMV_STREAM_MIN ((int64_t)1 << 22)
#endif
/* The rows kernel's body, with the row stride a parameter so that the caller can pass a constant:
 * rows of 16 floats (X w for X n x 16, W5's shape) then address their 16 rows at fixed offsets
 * instead of 16 strides kept in (spilled) registers: 1.5x faster at the read limit there. */
MG_TARGET("avx512f,fma") __attribute__((always_inline)) static inline void gemv_rows_avx512_body(
    const gemv_t *v, const int64_t rs, int64_t i0, int64_t i1, int64_t pb, int64_t pe, float *dst,
    int64_t ds) {
    const int64_t xs = v->xs, kc = v->kc;
    /* A far larger than the caches: y would be evicted before its next use anyway, so it is
     * written with streaming stores (no read for ownership: ~6% less traffic at k = 16) */
    const bool stream = ds == 1 && v->m * v->k >= GEMV_STREAM_MIN;
    int64_t i = i0;
    /* whole short rows, one after the other: the tile's lines are read 16 rows apart, a pattern the
     * hardware prefetchers do not follow past 16 floats a row; the tile GEMV_AHEAD tiles ahead is
     * prefetched line by line, in address order, instead */
    const bool ahead = GEMV_AHEAD && rs == v->k && pb == 0 && pe == v->k && rs >= 32 && rs <= 256;
    for (; i + 16 <= i1; i += 16) {
        const float *a = v->a + i * rs;
        if (ahead)
            for (int64_t o = 0; o < 16 * rs; o += 16)
                _mm_prefetch((const char *)(a + GEMV_AHEAD * 16 * rs + o), _MM_HINT_T0);
        __m512 tot = _mm512_setzero_ps();
        for (int64_t p0 = pb, p1; p0 < pe; p0 = p1) {
            p1 = pe - p0 <= kc ? pe : p0 + kc;
            __m512 acc = _mm512_setzero_ps();
            for (int64_t p = p0; p < p1; p += 16) {
                const int64_t cnt = p1 - p < 16 ? p1 - p : 16;
                __m512 r[16];
                float xb[16];
                if (cnt == 16) {
                    _Pragma("GCC unroll 16") for (int l = 0; l < 16; l++) r[l] = _mm512_loadu_ps(a + l * rs + p);
                    _Pragma("GCC unroll 16") for (int q = 0; q < 16; q++) xb[q] = v->x[(p + q) * xs];
                } else {
                    const __mmask16 mk = (__mmask16)((1u << cnt) - 1);
                    _Pragma("GCC unroll 16") for (int l = 0; l < 16; l++)
                        r[l] = _mm512_maskz_loadu_ps(mk, a + l * rs + p);
                    for (int q = 0; q < 16; q++) xb[q] = q < cnt ? v->x[(p + q) * xs] : 0.0f;
                }
                transpose16_ps(r);
                _Pragma("GCC unroll 16") for (int q = 0; q < 16; q++)
                    acc = _mm512_fmadd_ps(r[q], _mm512_set1_ps(xb[q]), acc);
            }
            tot = p0 == pb ? acc : _mm512_add_ps(tot, acc);
        }
        float *d = dst + (i - i0) * ds;
        if (stream && ((uintptr_t)d & 63) == 0) _mm512_stream_ps(d, tot);
        else GEMV_STORE(16, _mm512_storeu_ps, tot, d, ds, 16);
    }
    if (i < i1) gemv_naive(v, i, i1, pb, pe, dst + (i - i0) * ds, ds);
    if (stream) _mm_sfence(); /* the streaming stores ordered before the caller reads y */
}

/* Aligned to 64 bytes: where its loop falls against cache lines moves with unrelated code
 * around it, and at 16-byte alignment X w (10^6 x 16) measured 10-25% slower on a Zen 4. */
MG_TARGET("avx512f,fma") __attribute__((aligned(64))) static void gemv_rows_avx512(
    const gemv_t *v, int64_t i0, int64_t i1, int64_t pb, int64_t pe, float *dst, int64_t ds) {
    if (v->rs == 16) gemv_rows_avx512_body(v, 16, i0, i1, pb, pe, dst, ds);
    else gemv_rows_avx512_body(v, v->rs, i0, i1, pb, pe, dst, ds);
}

/* lanes below n set (n in 0..8), for maskload / maskstore */
MG_TARGET("avx2") __attribute__((always_inline)) static inline __m256i mask8(int64_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

MG_TARGET("avx2,fma") static void gemv_rows_avx2(const gemv_t *v, int64_t i0, int64_t i1,
                                                               int64_t pb, int64_t pe, float *dst,
                                                               int64_t ds) {
    const int64_t rs = v->rs, xs = v->xs, kc = v->kc;
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8) {
        const float *a = v->a + i * rs;
        __m256 tot = _mm256_setzero_ps();
        for (int64_t p0 = pb, p1; p0 < pe; p0 = p1) {
            p1 = pe - p0 <= kc ? pe : p0 + kc;
            __m256 acc = _mm256_setzero_ps();
            for (int64_t p = p0; p < p1; p += 8) {
                const int64_t cnt = p1 - p < 8 ? p1 - p : 8;
                __m256 r[8];
                float xb[8];
                if (cnt == 8) {
                    _Pragma("GCC unroll 8") for (int l = 0; l < 8; l++) r[l] = _mm256_loadu_ps(a + l * rs + p);
                    _Pragma("GCC unroll 8") for (int q = 0; q < 8; q++) xb[q] = v->x[(p + q) * xs];
                } else {
                    const __m256i mk = mask8(cnt);
                    _Pragma("GCC unroll 8") for (int l = 0; l < 8; l++) r[l] = _mm256_maskload_ps(a + l * rs + p, mk);
                    for (int q = 0; q < 8; q++) xb[q] = q < cnt ? v->x[(p + q) * xs] : 0.0f;
                }
                transpose8_ps(r);
                _Pragma("GCC unroll 8") for (int q = 0; q < 8; q++)
                    acc = _mm256_fmadd_ps(r[q], _mm256_set1_ps(xb[q]), acc);
            }
            tot = p0 == pb ? acc : _mm256_add_ps(tot, acc);
        }
        float *d = dst + (i - i0) * ds;
        GEMV_STORE(8, _mm256_storeu_ps, tot, d, ds, 8);
    }
    if (i < i1) gemv_naive(v, i, i1, pb, pe, dst + (i - i0) * ds, ds);
}

/* cols kernels: NV vectors of outputs (the last ones masked) per pass over [pb, pe) */
#define DEFINE_GEMV_COLS(NAME, TARGET, VT, VL, MASKT, MKMASK, SETZ, SET1, MLOAD, STOREU, FMA, ADD)  \
    MG_TARGET(TARGET) __attribute__((always_inline)) static inline void NAME##_nv(                   \
        const gemv_t *v, const float *a, int64_t w, int64_t pb, int64_t pe, float *dst,          \
        int64_t ds, const int NV) {                                                              \
        const int64_t cs = v->cs, xs = v->xs, kc = v->kc;                                        \
        MASKT mk[4];                                                                             \
        for (int u = 0; u < NV; u++) mk[u] = MKMASK(w - u * VL);                                 \
        VT tot[4], acc[4];                                                                       \
        for (int u = 0; u < NV; u++) tot[u] = SETZ();                                            \
        for (int64_t p0 = pb, p1; p0 < pe; p0 = p1) {                                            \
            p1 = pe - p0 <= kc ? pe : p0 + kc;                                                   \
            for (int u = 0; u < NV; u++) acc[u] = SETZ();                                        \
            const float *ap = a + p0 * cs;                                                       \
            for (int64_t p = p0; p < p1; p++, ap += cs) {                                        \
                const VT xv = SET1(v->x[p * xs]);                                                \
                for (int u = 0; u < NV; u++) acc[u] = FMA(MLOAD(ap + u * VL, mk[u]), xv, acc[u]); \
            }                                                                                    \
            for (int u = 0; u < NV; u++) tot[u] = p0 == pb ? acc[u] : ADD(tot[u], acc[u]);       \
        }                                                                                        \
        for (int u = 0; u < NV; u++) {                                                           \
            const int64_t n_ = w - u * VL < VL ? w - u * VL : VL;                                \
            GEMV_STORE(VL, STOREU, tot[u], dst + u * VL * ds, ds, n_);                           \
        }                                                                                        \
    }                                                                                            \
    MG_TARGET(TARGET) static void NAME(const gemv_t *v, int64_t i0, int64_t i1,      \
                                                     int64_t pb, int64_t pe, float *dst,         \
                                                     int64_t ds) {                               \
        for (int64_t i = i0; i < i1; i += 4 * VL) {                                              \
            const int64_t w = i1 - i < 4 * VL ? i1 - i : 4 * VL;                                 \
            const float *a = v->a + i;                                                           \
            float *d = dst + (i - i0) * ds;                                                      \
            switch ((w + VL - 1) / VL) {                                                         \
            case 1: NAME##_nv(v, a, w, pb, pe, d, ds, 1); break;                                 \
            case 2: NAME##_nv(v, a, w, pb, pe, d, ds, 2); break;                                 \
            case 3: NAME##_nv(v, a, w, pb, pe, d, ds, 3); break;                                 \
            default: NAME##_nv(v, a, w, pb, pe, d, ds, 4); break;                                \
            }                                                                                    \
        }                                                                                        \
    }
MG_TARGET("avx512f") __attribute__((always_inline)) static inline __mmask16 mask16(int64_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}
#define MLOAD512(p, m) _mm512_maskz_loadu_ps(m, p)
#define MLOAD256(p, m) _mm256_maskload_ps(p, m)
DEFINE_GEMV_COLS(gemv_cols_avx512, "avx512f,fma", __m512, 16, __mmask16, mask16, _mm512_setzero_ps,
                 _mm512_set1_ps, MLOAD512, _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_add_ps)
DEFINE_GEMV_COLS(gemv_cols_avx2, "avx2,fma", __m256, 8, __m256i, mask8, _mm256_setzero_ps,
                 _mm256_set1_ps, MLOAD256, _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_add_ps)

/* The kernel for v at the ctx's level `isa`, and its unit (outputs per pass); NULL without FMA. */
static gemv_fn gemv_kernel(const gemv_t *v, int64_t *unit, int isa) {
    const bool avx512 = MG_GEMM_ISA >= 2 && isa >= MG_ISA_AVX512;
    const bool avx2 = MG_GEMM_ISA >= 1 && isa >= MG_ISA_AVX2;
    if (!avx512 && !avx2) return NULL;
    if (v->cs == 1 && v->m >= 8) {
        *unit = avx512 ? 16 : 8;
        return avx512 ? gemv_rows_avx512 : gemv_rows_avx2;
    }
    if (v->rs == 1) {
        *unit = avx512 ? 64 : 32;
        return avx512 ? gemv_cols_avx512 : gemv_cols_avx2;
    }
    *unit = NAIVE_GROUP;
    return gemv_naive;
}
#else /* no SIMD kernels: the portable gemm and naive only */
static const gemm_kernel *simd_kernel(mg_dtype dt, int64_t m, int64_t n, int isa) {
    (void)dt, (void)m, (void)n, (void)isa;
    return NULL;
}
static gemv_fn gemv_kernel(const gemv_t *v, int64_t *unit, int isa) {
    (void)v, (void)unit, (void)isa;
    return NULL;
}
#endif

/* The kernel for dtype dt at the ctx's level (ctx->isa: the CPU's, capped by MOONGRAD_ISA). */
static const gemm_kernel *kernel_for(mg_dtype dt, int64_t m, int64_t n, int isa) {
    const gemm_kernel *simd = dt == MG_FLOAT32 || dt == MG_FLOAT64 ? simd_kernel(dt, m, n, isa) : NULL;
    return simd ? simd : &kernels[dt];
}

/* Products of at least this many flops are split between threads (see gemm_blocked). */
#ifndef GEMM_PAR_MIN
#define GEMM_PAR_MIN 8000000.0
#endif

/* The fraction of the tiles' work that is C's when kn's tiles cover an m x n C. */
static double tile_fill(const gemm_kernel *kn, int64_t m, int64_t n) {
    return (double)m / (double)round_up(m, kn->mr) * (double)n / (double)round_up(n, kn->nr);
}

/* Whether C = A B is better computed as C^T = B^T A^T (src/ops/gemm.c's transposed): when the
 * tiles cover C^T with at least a quarter less padding. The tiles run along C's rows (mr) and
 * columns (nr, the vector lanes), so a C only a few columns wide wastes most lanes: W8's and W6's
 * last layers (x W^T with 10 outputs: C 32 x 10, tiles 6 x 16 at 62 % fill, 12 x 32 on C^T at
 * 83 %). The bits do not change: every element is the same fused multiply-adds in the same order
 * along K (a b and b a are the same product), only which operand is broadcast. */
static bool transposed_pays(mg_dtype dt, int64_t m, int64_t n, int isa) {
    if ((dt != MG_FLOAT32 && dt != MG_FLOAT64) || m < 2 || n < 2 || m == n) return false;
    const gemm_kernel *kn = simd_kernel(dt, m, n, isa), *kt = simd_kernel(dt, n, m, isa);
    return kn && kt && tile_fill(kt, n, m) > 1.25 * tile_fill(kn, m, n);
}
/* Whether C = A B with A and B^T both contiguous along K (x W^T: a linear layer's forward, whose
 * packing transposes both operands) is better computed as C^T = W x^T by the direct kernels on one
 * thread: they read the larger operand, W, in place (never packed), and pack only x; a full tile
 * of C^T is stored into C a column at a time (COLUMNS_8, 8-row float32 tiles). For a batch of at
 * most two slivers of the tile (C^T's width), W is read at most twice a block of K. W6's x W1^T
 * (64 x 784 by 256 x 784): W1's 800 KB were transposed into packed panels every step. */
static bool in_place_pays(const mg_ctx *ctx, mg_dtype dt, const mg_gemm_args *p) {
    if (dt != MG_FLOAT32 || p->batch_ndim > 0 || p->csa != 1 || p->rsb != 1 || p->csc != 1 || p->m < 2 ||
        p->n <= p->m || (mg_pool_threads(ctx) > 1 && 2.0 * (double)p->m * (double)p->n * (double)p->k >= GEMM_PAR_MIN))
        return false;
    const gemm_kernel *kt = simd_kernel(dt, p->n, p->m, ctx->isa);
    return kt && kt->mr == 8 && kt->direct && p->n <= kt->mc && p->m <= 2 * kt->nr;
}
static mg_gemm_args transposed(const mg_gemm_args *p) {
    mg_gemm_args t = *p;
    t.m = p->n, t.n = p->m;
    t.a = p->b, t.rsa = p->csb, t.csa = p->rsb, t.batch_sa = p->batch_sb;
    t.b = p->a, t.rsb = p->csa, t.csb = p->rsa, t.batch_sb = p->batch_sa;
    t.rsc = p->csc, t.csc = p->rsc;
    return t;
}

/* ---- gemv: drivers ------------------------------------------------------------------------- */
typedef struct gemv_job {
    const gemv_t *v;
    gemv_fn fn;
    int64_t unit;
    float *y;
    int64_t ys;
    float *part; /* block mode: the sums of block b0 + b at part + b m */
    int64_t b0;
    watch *w;    /* NULL: not watched */
} gemv_job;

/* Outputs [i0, i1) (i0 a multiple of unit); watched, in pieces of about MG_INTERRUPT_CHUNK
 * multiply-adds: whole K for a few units of rows, or, past WATCH_K, one unit of rows at a time, the
 * first blocks of kc of K in one call (watch_first) and then one kc block per call, added to y in
 * order: the sums of the one call (tot = block 0, tot + block 1, ...). */
static void gemv_outputs(const gemv_job *j, int64_t i0, int64_t i1) {
    const gemv_t *v = j->v;
    if (!j->w) {
        j->fn(v, i0, i1, 0, v->k, j->y + i0 * j->ys, j->ys);
        return;
    }
    if (v->k <= WATCH_K) {
        int64_t rows = MG_INTERRUPT_CHUNK / v->k / j->unit * j->unit;
        if (rows < j->unit) rows = j->unit;
        for (int64_t i = i0; i < i1 && !watch_poll(j->w); i += rows)
            j->fn(v, i, min64(i + rows, i1), 0, v->k, j->y + i * j->ys, j->ys);
        return;
    }
    for (int64_t i = i0; i < i1; i += j->unit) {
        const int64_t e = min64(i + j->unit, i1);
        const int64_t first = min64(watch_first(e - i, v->kc), v->k);
        float *y = j->y + i * j->ys, part[WATCH_OUTS];
        if (watch_poll(j->w)) return;
        j->fn(v, i, e, 0, first, y, j->ys);
        for (int64_t p = first, since = 0; p < v->k; p += v->kc) {
            if ((since += v->kc * (e - i)) >= MG_INTERRUPT_CHUNK) {
                since = 0;
                if (watch_poll(j->w)) return;
            }
            j->fn(v, i, e, p, min64(p + v->kc, v->k), part, 1);
            for (int64_t r = 0; r < e - i; r++) y[r * j->ys] += part[r];
        }
    }
}

static void gemv_rows_range(void *arg, int64_t begin, int64_t end) {
    const gemv_job *j = (const gemv_job *)arg;
    gemv_outputs(j, begin * j->unit, min64(end * j->unit, j->v->m));
}
static void gemv_blocks_range(void *arg, int64_t begin, int64_t end) {
    const gemv_job *j = (const gemv_job *)arg;
    const gemv_t *v = j->v;
    const int64_t per = MG_INTERRUPT_CHUNK / (v->kc * v->m) + 1; /* blocks between looks */
    for (int64_t b = begin; b < end; b++) {
        if (j->w && (b - begin) % per == 0 && watch_poll(j->w)) return;
        const int64_t p = (j->b0 + b) * v->kc;
        j->fn(v, 0, v->m, p, min64(p + v->kc, v->k), j->part + b * v->m, 1);
    }
}

/* The most block sums (floats) the threads' block mode keeps at once: 4 MB. */
#ifndef GEMV_ROUND
#define GEMV_ROUND ((int64_t)1 << 20)
#endif
/* Products of fewer elements of A than this run on one thread (memory-bound: a few us). */
#ifndef GEMV_PAR_MIN
#define GEMV_PAR_MIN ((int64_t)1 << 17)
#endif

/* y = A x; false when this CPU has no gemv kernel (the caller takes the naive path). Watched
 * when w is not NULL (stopped: w->stop set, y partly written). */
static bool gemv_run(mg_ctx *ctx, const gemv_t *v, float *y, int64_t ys, watch *w) {
    int64_t unit;
    const gemv_fn fn = gemv_kernel(v, &unit, ctx->isa);
    if (!fn) return false;
    gemv_job job = {v, fn, unit, y, ys, NULL, 0, w};
    const int64_t units = (v->m + unit - 1) / unit, nblk = (v->k + v->kc - 1) / v->kc;
    const int nt = mg_pool_threads(ctx);
    if (nt > 1 && v->m * v->k >= GEMV_PAR_MIN) {
        if (units >= 2 * nt) {
            mg_parallel_for(ctx, units, 1, gemv_rows_range, &job);
            return true;
        }
        if (nblk >= 2 * nt) {
            /* in rounds of at most GEMV_ROUND sums (a dot of 2^40 would want 16 GB of them at once),
             * each folded into y in block order: the sums of the one-round fold */
            int64_t round = GEMV_ROUND / v->m;
            if (round < 2 * nt) round = 2 * nt;
            if (round > nblk) round = nblk;
            const size_t bytes = sizeof(float) * (size_t)(round * v->m);
            job.part = mg_alloc(ctx, bytes);
            if (job.part) {
                for (int64_t b0 = 0; b0 < nblk && !watch_stopped(w); b0 += round) {
                    const int64_t nb = min64(round, nblk - b0);
                    job.b0 = b0;
                    mg_parallel_for(ctx, nb, 1, gemv_blocks_range, &job);
                    for (int64_t i = 0; i < v->m && !watch_stopped(w); i++) {
                        float s = b0 == 0 ? job.part[i] : y[i * ys] + job.part[i];
                        for (int64_t b = 1; b < nb; b++) s += job.part[b * v->m + i];
                        y[i * ys] = s;
                    }
                }
                mg_free(ctx, job.part, bytes);
                return true;
            }
        }
    }
    gemv_outputs(&job, 0, v->m);
    return true;
}

/* ---- gemm: the unpacked product, and packing scratch --------------------------------------- */
/* The unpacked product, for C no taller than one block of A (m <= mc) on one thread: the kernel
 * reads A where it lies (kn->direct), and B too when its rows are contiguous (csb == 1), except
 * the last sliver of a panel narrower than NR, which is packed; otherwise B's panel is packed as
 * in gemm_blocked. The K blocks, their order and every sum are gemm_blocked's: the same bits, without
 * the copies.
 * pb: round_up(min(nc, n), nr) kc elements (B packed) or nr kc (B read in place), aligned. */
static bool direct_b(const gemm_kernel *kn, const product *g) { return g->csb == 1 && g->n >= kn->nr; }
static void gemm_direct(const gemm_kernel *kn, size_t es, const product *g, void *pb) {
    const bool bd = direct_b(kn, g);
    for (int64_t jc = 0; jc < g->n; jc += kn->nc) {
        const int64_t nc = min64(kn->nc, g->n - jc);
        for (int64_t pc = 0; pc < g->k; pc += kn->kc) {
            const int64_t kc = min64(kn->kc, g->k - pc);
            if (!bd) kn->pack_b(pb, at(g->b, pc * g->rsb + jc * g->csb, es), g->csb, g->rsb, nc, kc);
            for (int64_t jr = 0; jr < nc; jr += kn->nr) {
                const int64_t nr = min64(kn->nr, nc - jr);
                const void *bp = at(pb, jr * kc, es);
                int64_t ldb = kn->nr;
                if (bd) {
                    const void *src = at(g->b, pc * g->rsb + (jc + jr) * g->csb, es);
                    if (nr == kn->nr) bp = src, ldb = g->rsb;
                    else kn->pack_b(pb, src, g->csb, g->rsb, nr, kc), bp = pb;
                }
                for (int64_t ir = 0; ir < g->m; ir += kn->mr) {
                    char *c = (char *)at(g->c, ir * g->rsc + (jc + jr) * g->csc, es);
                    kn->direct(kc, at(g->a, ir * g->rsa + pc * g->csa, es), g->rsa, g->csa, bp, ldb,
                               c, g->rsc, g->csc, min64(kn->mr, g->m - ir), nr, pc == 0 && !g->accumulate);
                }
            }
        }
    }
}

/* How many blocks of kc the blocked product packs and runs on a tile at once: C's tiles are
 * loaded and stored once a GEMM_KC_BLOCKS kc of K, from L1. G (1024^3, AVX-512, 1 thread):
 * 1 block 21.4-21.9 ms, 4 blocks ~20 (the packed block of A and B's sliver then live in L2). */
#ifndef GEMM_KC_BLOCKS
#define GEMM_KC_BLOCKS 4
#endif
static int64_t pack_depth(const gemm_kernel *kn, int64_t k) { return min64(kn->kc * GEMM_KC_BLOCKS, k); }
/* Bytes of packing scratch for an M x N x K product (bounded by the block sizes), plus room to
 * align each buffer to PACK_ALIGN (the SIMD kernels load B with aligned loads). */
#define PACK_ALIGN 64
static void packed_sizes(const gemm_kernel *kn, size_t es, int64_t m, int64_t n, int64_t k,
                         size_t *a_bytes, size_t *b_bytes) {
    const int64_t kc = pack_depth(kn, k);
    *a_bytes = (size_t)(round_up(min64(kn->mc, m), kn->mr) * kc) * es + PACK_ALIGN;
    *b_bytes = (size_t)(round_up(min64(kn->nc, n), kn->nr) * kc) * es + PACK_ALIGN;
}
static void *align_up(void *p) {
    return (char *)p + ((PACK_ALIGN - (uintptr_t)p % PACK_ALIGN) % PACK_ALIGN);
}

/* ---- gemm: the blocked product, on one thread or several ------------------------------------ */
/* For each panel of B and each kc block (in order): the panel is packed, split between threads by
 * slivers (gemm_pack_panel); then C's share of this block is computed, split by whole micro-rows
 * (MR-row slivers of C, when there are enough of them) or whole micro-columns of the panel
 * (gemm_tiles): each call packs its blocks of A into the buffer of the thread running it and runs
 * the micro-kernel on its tiles. Two mg_parallel_for calls per block; their returns are the only
 * waits (no barrier inside a call: whichever thread is free takes the next range). Every C element
 * is computed by one call with the same kc blocks in the same order whatever the split: the bits
 * do not depend on the number of threads. With one slot this is the plain blocked loop. */
typedef struct gemm_job {
    const gemm_kernel *kn;
    size_t es;
    const product *g;
    char *pa;        /* thread i's buffer for blocks of A: align_up(pa + i a_bytes) */
    size_t a_bytes;
    char *pb;        /* the packed panel (aligned) */
    int64_t jc, nc;  /* the panel: columns [jc, jc + nc) of C */
    int64_t pc, kp;  /* the packed depth: [pc, pc + kp) of K (pc a multiple of kn->kc) */
    bool by_rows;
    bool one_slot;   /* pa holds one buffer (the caller may be any pool thread: mg_gemm_serial) */
    watch *w;        /* NULL: not watched */
} gemm_job;

/* Packs slivers [s0, s1) of the panel's block. */
static void gemm_pack_panel(void *arg, int64_t s0, int64_t s1) {
    const gemm_job *j = (const gemm_job *)arg;
    const gemm_kernel *kn = j->kn;
    const product *g = j->g;
    const int64_t l0 = s0 * kn->nr, l1 = min64(s1 * kn->nr, j->nc);
    if (watch_stopped(j->w)) return;
    kn->pack_b(j->pb + (size_t)(l0 * j->kp) * j->es, at(g->b, j->pc * g->rsb + (j->jc + l0) * g->csb, j->es),
               g->csb, g->rsb, l1 - l0, j->kp);
}

/* Micro-rows (or micro-columns) [u0, u1) of the panel's block of C. A packed sliver is p-major
 * (element p of it at p * mr, or p * nr), so the blocks of kc within the packed depth are runs of
 * it: each tile sums them one after the other, in order, as separate sums added to C. */
static void gemm_tiles(void *arg, int64_t u0, int64_t u1) {
    const gemm_job *j = (const gemm_job *)arg;
    const gemm_kernel *kn = j->kn;
    const product *g = j->g;
    const size_t es = j->es;
    const int64_t pc = j->pc, kp = j->kp, kc = kn->kc, jc = j->jc;
    char *pa = align_up(j->pa + (j->one_slot ? 0 : (size_t)mg_pool_thread_index() * j->a_bytes));
    int64_t r0 = 0, r1 = g->m, c0 = 0, c1 = j->nc;
    if (j->by_rows) r0 = u0 * kn->mr, r1 = min64(u1 * kn->mr, g->m);
    else c0 = u0 * kn->nr, c1 = min64(u1 * kn->nr, j->nc);
    for (int64_t ic = r0; ic < r1; ic += kn->mc) {
        const int64_t mc = min64(kn->mc, r1 - ic);
        kn->pack_a(pa, at(g->a, ic * g->rsa + pc * g->csa, es), g->rsa, g->csa, mc, kp);
        for (int64_t jr = c0; jr < c1; jr += kn->nr) {
            if (j->w && watch_poll(j->w)) return; /* once a sliver of B: at most mc nr kp multiply-adds */
            for (int64_t ir = 0; ir < mc; ir += kn->mr) {
                char *c = (char *)at(g->c, (ic + ir) * g->rsc + (jc + jr) * g->csc, es);
                for (int64_t q = 0; q < kp; q += kc)
                    kn->micro(min64(kc, kp - q), at(pa, ir * kp + q * kn->mr, es), at(j->pb, jr * kp + q * kn->nr, es),
                              c, g->rsc, g->csc, min64(kn->mr, mc - ir), min64(kn->nr, c1 - jr),
                              pc + q == 0 && !g->accumulate);
            }
        }
    }
}

/* The blocked product on up to `slots` threads; pa holds slots buffers of a_bytes each, pb one of
 * the panel (see packed_sizes). mg_parallel_for runs each call on a thread of index < slots: its
 * thread count is at most min(ctx->num_threads, units), and slots (mg_gemm) is
 * min(ctx->num_threads, the most units a panel has). */
static void gemm_blocked(mg_ctx *ctx, const gemm_kernel *kn, size_t es, const product *g, char *pa,
                         size_t a_bytes, void *pb, int64_t slots, watch *w) {
    gemm_job j = {kn, es, g, pa, a_bytes, align_up(pb), 0, 0, 0, 0, false, slots == 1, w};
    for (int64_t jc = 0; jc < g->n; jc += kn->nc) {
        const int64_t nc = min64(kn->nc, g->n - jc);
        const int64_t rows = (g->m + kn->mr - 1) / kn->mr, cols = (nc + kn->nr - 1) / kn->nr;
        j.by_rows = rows >= 2 * slots || rows >= cols;
        const int64_t units = j.by_rows ? rows : cols;
        j.jc = jc, j.nc = nc;
        for (int64_t pc = 0; pc < g->k; pc += j.kp) {
            j.pc = pc, j.kp = pack_depth(kn, g->k - pc);
            if (slots > 1) {
                mg_parallel_for(ctx, cols, 1, gemm_pack_panel, &j);
                mg_parallel_for(ctx, units, 1, gemm_tiles, &j);
            } else {
                gemm_pack_panel(&j, 0, cols);
                gemm_tiles(&j, 0, units);
            }
            if (watch_stopped(w)) return;
        }
    }
}

/* ---- the naive product, watched ------------------------------------------------------------ */
/* C's [i0, i0 + m) x [j0, j0 + n) over K's [p0, p0 + k), into c at strides rsc, csc */
static product sub_product(const product *g, size_t es, int64_t i0, int64_t m, int64_t j0, int64_t n, int64_t p0,
                           int64_t k, void *c, int64_t rsc, int64_t csc) {
    product s = *g;
    s.m = m, s.n = n, s.k = k;
    s.a = at(g->a, i0 * g->rsa + p0 * g->csa, es);
    s.b = at(g->b, p0 * g->rsb + j0 * g->csb, es);
    s.c = c, s.rsc = rsc, s.csc = csc;
    return s;
}
/* c[o * cs] += part[o], o < n, as the naive kernels add their K blocks (int64 wraps) */
static void add_part(mg_dtype dt, char *c, int64_t cs, const void *part, int64_t n) {
    for (int64_t o = 0; o < n; o++) {
        if (dt == MG_FLOAT32) ((float *)c)[o * cs] += ((const float *)part)[o];
        else if (dt == MG_FLOAT64) ((double *)c)[o * cs] += ((const double *)part)[o];
        else ((uint64_t *)c)[o * cs] += ((const uint64_t *)part)[o];
    }
}
/* kn->naive(g, kc), watched: pieces of C of about MG_INTERRUPT_CHUNK multiply-adds (each element's
 * sum does not depend on which others it is computed with); past WATCH_K, pieces of up to
 * WATCH_OUTS elements along a row (or a column, when C is taller than wide), the first blocks of kc
 * of K in one call (watch_first) and then one kc block per call, added in order: the sums of the
 * one call (int64, whose sums wrap and so do not depend on their order: pieces of about
 * MG_INTERRUPT_CHUNK multiply-adds). False when stopped. */
static bool naive_pieces(const gemm_kernel *kn, mg_dtype dt, size_t es, const product *g, int64_t kc, watch *w) {
    const int64_t k = g->k;
    if (k <= WATCH_K) {
        const int64_t per = MG_INTERRUPT_CHUNK / (k > 0 ? k : 1); /* outputs per piece, >= 1 */
        const int64_t cols = per < g->n ? (per > 0 ? per : 1) : g->n, rows = per / cols > 0 ? per / cols : 1;
        for (int64_t i = 0; i < g->m; i += rows)
            for (int64_t j = 0; j < g->n; j += cols) {
                if (watch_poll(w)) return false;
                const product s = sub_product(g, es, i, min64(rows, g->m - i), j, min64(cols, g->n - j), 0, k,
                                              (char *)at(g->c, i * g->rsc + j * g->csc, es), g->rsc, g->csc);
                kn->naive(&s, kc);
            }
        return true;
    }
    const bool along_row = g->n >= g->m;
    const int64_t outer = along_row ? g->m : g->n, inner = along_row ? g->n : g->m;
    uint64_t part[WATCH_OUTS]; /* room for WATCH_OUTS elements of any dtype */
    for (int64_t o = 0; o < outer; o++)
        for (int64_t q = 0; q < inner; q += WATCH_OUTS) {
            const int64_t cnt = min64(WATCH_OUTS, inner - q);
            const int64_t i = along_row ? o : q, j = along_row ? q : o;
            const int64_t m = along_row ? 1 : cnt, n = along_row ? cnt : 1;
            const int64_t cs = along_row ? g->csc : g->rsc;
            /* int64 (one block: kc is K) sums in any order: pieces of MG_INTERRUPT_CHUNK */
            const int64_t first = min64(watch_first(cnt, dt == MG_INT64 ? 1 : kc), k);
            const int64_t step = dt == MG_INT64 ? first : kc;
            char *c = (char *)at(g->c, i * g->rsc + j * g->csc, es);
            if (watch_poll(w)) return false;
            product s = sub_product(g, es, i, m, j, n, 0, first, c, g->rsc, g->csc);
            kn->naive(&s, kc);
            for (int64_t p = first, since = 0; p < k; p += step) {
                if ((since += step * cnt) >= MG_INTERRUPT_CHUNK) {
                    since = 0;
                    if (watch_poll(w)) return false;
                }
                /* the block's sums, contiguous in part */
                s = sub_product(g, es, i, m, j, n, p, min64(step, k - p), part, along_row ? 0 : 1, along_row ? 1 : 0);
                kn->naive(&s, kc);
                add_part(dt, c, cs, part, cnt);
            }
        }
    return true;
}


/* ---- one product on the calling thread, with the caller's scratch --------------------------- */
size_t mg_gemm_serial_bytes(mg_dtype dt, int64_t m, int64_t n, int64_t k, int isa) {
    const gemm_kernel *kn = kernel_for(dt, m, n, isa);
    if (!kn->pack_a) return 0;
    size_t a_bytes, b_bytes;
    packed_sizes(kn, mg_dtype_size(dt), m, n, k, &a_bytes, &b_bytes);
    return a_bytes + b_bytes;
}

/* mg_gemm's choice for one thread without the gemv kernels (which split work between threads
 * themselves): the unpacked path when C is no taller than a block of A, else the blocked one. */
void mg_gemm_serial(mg_dtype dt, int isa, const mg_gemm_args *p, void *scratch) {
    const gemm_kernel *kn = kernel_for(dt, p->m, p->n, isa);
    const size_t es = mg_dtype_size(dt);
    const bool vector_friendly = (p->m == 1 && (p->n == 1 || p->rsb == 1)) || (p->n == 1 && p->csa == 1);
    if (!kn->pack_a || p->k == 0 || vector_friendly) {
        kn->naive(p, kn->pack_a ? kn->kc : p->k);
        return;
    }
    size_t a_bytes, b_bytes;
    packed_sizes(kn, es, p->m, p->n, p->k, &a_bytes, &b_bytes);
    if (kn->direct && p->m <= kn->mc) gemm_direct(kn, es, p, align_up(scratch));
    else gemm_blocked(NULL, kn, es, p, (char *)scratch + b_bytes, a_bytes, scratch, 1, NULL);
}

/* ---- the entry point ----------------------------------------------------------------------- */
/* mg_gemm's body, compiled twice: unwatched (watched == false: every look folds away) and watched
 * (the products add up to MG_INTERRUPT_CHUNK multiply-adds; work: one product's, at most that). */
__attribute__((always_inline)) static inline mg_status gemm_run(mg_ctx *ctx, mg_dtype dt, const mg_gemm_args *p,
                                                                int64_t nbatch, int64_t work, bool in_place,
                                                                const bool watched) {
    product g = *p; /* this batch's product: a, b and c move, the rest stays */
    int64_t idx[MG_MAX_DIMS];
    for (int d = 0; d < p->batch_ndim; d++) idx[d] = 0;

    const gemm_kernel *kn = kernel_for(dt, g.m, g.n, ctx->isa);
    const size_t es = mg_dtype_size(dt);
    /* float32 vector products go to the gemv kernels (any layout, same bits as the gemm) */
    bool use_gemv = false;
    gemv_t gv = {0};
    int64_t gv_unit;
    if (dt == MG_FLOAT32 && (g.m == 1 || g.n == 1) && g.k > 0) {
        gv.k = g.k;
        gv.kc = kn->pack_a ? kn->kc : g.k;
        if (g.n == 1) gv.m = g.m, gv.rs = g.rsa, gv.cs = g.csa, gv.xs = g.rsb;
        else gv.m = g.n, gv.rs = g.csb, gv.cs = g.rsb, gv.xs = g.csa;
        use_gemv = gemv_kernel(&gv, &gv_unit, ctx->isa) != NULL;
    }
    /* a vector product whose dot loop walks the matrix contiguously is memory-bound: the naive
     * loop is as fast as packing, which would pad the vector to a whole micro-tile */
    const bool vector_friendly = (g.m == 1 && (g.n == 1 || g.rsb == 1)) || (g.n == 1 && g.csa == 1);
    const bool blocked = !use_gemv && kn->pack_a && g.k > 0 && !vector_friendly;
    /* C += A B: only where every element is one block added to C (see gemm.h) */
    if (p->accumulate && (!blocked || g.m < 2 || g.n < 2 || g.k > MG_GEMM_KC || nbatch != 1))
        return mg_fail(ctx, MG_EVALUE, 0, "matmul: accumulating into C takes a float product of m, n > 1 and K <= %d",
                       MG_GEMM_KC);
    /* large products are split between threads (see gemm_blocked), each with its own A buffer */
    int64_t slots = 1;
    const int threads = mg_pool_threads(ctx);
    if (blocked && threads > 1 && 2.0 * (double)g.m * (double)g.n * (double)g.k >= GEMM_PAR_MIN) {
        const int64_t rows = (g.m + kn->mr - 1) / kn->mr, cols = (min64(g.n, kn->nc) + kn->nr - 1) / kn->nr;
        slots = min64(threads, rows > cols ? rows : cols);
    }
    /* small products (below the threading threshold, C no taller than one block of A): the
     * unpacked path (gemm_direct); W6's 25 MFLOP products measured no faster there, except as
     * W x^T with W read in place (in_place: mg_gemm's in_place_pays) */
    const bool direct = blocked && slots == 1 && kn->direct && g.m <= kn->mc &&
                        (2.0 * (double)g.m * (double)g.n * (double)g.k < GEMM_PAR_MIN || in_place);
    size_t a_bytes = 0, b_bytes = 0;
    void *pa = NULL, *pb = NULL;
    if (direct) {
        const int64_t kc = min64(kn->kc, g.k);
        b_bytes = (size_t)((direct_b(kn, &g) ? kn->nr : round_up(min64(kn->nc, g.n), kn->nr)) * kc) * es +
                  PACK_ALIGN;
        pb = mg_alloc(ctx, b_bytes);
        if (!pb) return mg_fail(ctx, MG_ENOMEM, 0, "not enough memory for matmul's packing buffers (%zu bytes)", b_bytes);
    } else if (blocked) {
        packed_sizes(kn, es, g.m, g.n, g.k, &a_bytes, &b_bytes);
        pa = mg_alloc(ctx, a_bytes * (size_t)slots);
        pb = mg_alloc(ctx, b_bytes);
        if (!pa || !pb) {
            mg_free(ctx, pa, a_bytes * (size_t)slots);
            mg_free(ctx, pb, b_bytes);
            return mg_fail(ctx, MG_ENOMEM, 0, "not enough memory for matmul's packing buffers (%zu bytes)",
                           a_bytes * (size_t)slots + b_bytes);
        }
    }
    int64_t since = 0; /* multiply-adds since the batch loop last looked */
    watch wt = {ctx, 0, 0}, *w = NULL;
    if (watched) {
        wt.deadline = mg_deadline(ctx);
        w = &wt;
    }
    for (int64_t t = 0; t < nbatch; t++) {
        if (w && (since += work) >= MG_INTERRUPT_CHUNK) {
            since = 0;
            if (watch_poll(w)) break;
        }
        int64_t oa = 0, ob = 0, oc = 0; /* element offsets of this batch's matrices */
        for (int d = 0; d < p->batch_ndim; d++) {
            oa += idx[d] * p->batch_sa[d];
            ob += idx[d] * p->batch_sb[d];
            oc += idx[d] * p->batch_sc[d];
        }
        g.a = at(p->a, oa, es);
        g.b = at(p->b, ob, es);
        g.c = (char *)at(p->c, oc, es);
        if (use_gemv) {
            gv.a = (const float *)(g.n == 1 ? g.a : g.b);
            gv.x = (const float *)(g.n == 1 ? g.b : g.a);
            gemv_run(ctx, &gv, (float *)g.c, g.n == 1 ? g.rsc : g.csc, w);
        } else if (direct) gemm_direct(kn, es, &g, align_up(pb));
        else if (blocked) gemm_blocked(ctx, kn, es, &g, pa, a_bytes, pb, slots, w);
        else if (w) naive_pieces(kn, dt, es, &g, kn->pack_a ? kn->kc : g.k, w);
        else kn->naive(&g, kn->pack_a ? kn->kc : g.k);
        if (watch_stopped(w)) break;
        for (int d = p->batch_ndim - 1; d >= 0; d--) { /* next batch index, last dim fastest */
            if (++idx[d] < p->batch_size[d]) break;
            idx[d] = 0;
        }
    }
    mg_free(ctx, pa, a_bytes * (size_t)slots);
    mg_free(ctx, pb, b_bytes);
    if (!watch_stopped(w)) return MG_OK;
    /* stopped: the caller's thread takes the request and words the error */
    if (!mg_should_stop(ctx, wt.deadline)) mg_fail(ctx, MG_EINTR, 0, "interrupted");
    return MG_EINTR;
}

mg_status mg_gemm(mg_ctx *ctx, mg_dtype dt, const mg_gemm_args *p) {
    mg_gemm_args t;
    const bool in_place = in_place_pays(ctx, dt, p);
    if (in_place || transposed_pays(dt, p->m, p->n, ctx->isa)) {
        t = transposed(p);
        p = &t;
    }
    int64_t nbatch = 1, work;
    for (int d = 0; d < p->batch_ndim; d++) nbatch *= p->batch_size[d];
    /* watched when the products add up to MG_INTERRUPT_CHUNK multiply-adds (K == 0 counts as 1) */
    if (__builtin_mul_overflow(p->m, p->n, &work) || __builtin_mul_overflow(work, p->k > 0 ? p->k : 1, &work) ||
        work > MG_INTERRUPT_CHUNK)
        work = MG_INTERRUPT_CHUNK;
    if (work == MG_INTERRUPT_CHUNK || (nbatch > 1 && nbatch >= MG_INTERRUPT_CHUNK / (work > 0 ? work : 1)))
        return gemm_run(ctx, dt, p, nbatch, work, in_place, true);
    return gemm_run(ctx, dt, p, nbatch, work, in_place, false);
}

/* ---- products whose B rows lie anywhere (conv.c's unfolding without a column buffer) ----------
 * mg_gemm_rows_f32 (gemm.h): the SIMD micro-kernels reading A where it lies (as the direct ones)
 * and B row p at brow[p] + j, read in place (the rows are readable MG_GEMM_ROWS_SLACK elements past
 * n: an edge tile's lanes past n are read and dropped). One fused multiply-add per element and p, in
 * order from 0 within each block of kc along K, the blocks added in order: the sums of the gemm's
 * SIMD kernels, so the same bits as mg_gemm of the same product at AVX2 and AVX-512. */
#if MG_CPU_X86 && MG_GEMM_ISA >= 1
#define DEFINE_SIMD_ROWS(NAME, T, TARGET, VT, VL, MR, NV, SETZ, SET1, LOADU, STOREU, FMA, ADD)   \
    MG_TARGET(TARGET) static void NAME(int64_t kc, const T *a_, int64_t ars, const T *const *brow, \
                                       int64_t j0, void *c_, int64_t rsc, int64_t mr, int64_t nr, \
                                       bool first) {                                           \
        const int64_t csc = 1;                                                                 \
        const T *ar[MR];                                                                       \
        _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) ar[i] = a_ + (i < mr ? i : 0) * ars; \
        VT acc[MR][NV];                                                                        \
        SIMD_ACC_ZERO(MR, NV, SETZ);                                                           \
        for (int64_t p = 0; p < kc; p++) SIMD_ACC_STEP(VT, VL, MR, NV, SET1, LOADU, FMA, brow[p] + j0, ar[i][p]); \
        MICRO_STORE(T, VL, MR, NV, LOADU, STOREU, ADD)                                         \
    }
#if MG_GEMM_ISA >= 2
DEFINE_SIMD_ROWS(rows_f32_avx512, float, "avx512f,fma", __m512, 16, 12, 2, _mm512_setzero_ps, _mm512_set1_ps,
                 _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_add_ps)
DEFINE_SIMD_ROWS(rows_f32_avx512_8x48, float, "avx512f,fma", __m512, 16, 8, 3, _mm512_setzero_ps, _mm512_set1_ps,
                 _mm512_loadu_ps, _mm512_storeu_ps, _mm512_fmadd_ps, _mm512_add_ps)
#endif
DEFINE_SIMD_ROWS(rows_f32_avx2, float, "avx2,fma", __m256, 8, 6, 2, _mm256_setzero_ps, _mm256_set1_ps,
                 _mm256_loadu_ps, _mm256_storeu_ps, _mm256_fmadd_ps, _mm256_add_ps)
#undef DEFINE_SIMD_ROWS
#endif

bool mg_gemm_rows_f32(int isa, int64_t m, int64_t n, int64_t k, const float *a, int64_t rsa,
                      const float *const *brow, float *c, int64_t rsc) {
#if MG_CPU_X86 && MG_GEMM_ISA >= 1
    typedef void (*rows_fn)(int64_t, const float *, int64_t, const float *const *, int64_t, void *, int64_t,
                            int64_t, int64_t, bool);
    rows_fn fn;
    int64_t mr, nr;
#if MG_GEMM_ISA >= 2
    if (isa >= MG_ISA_AVX512 && m % 8 == 0 && m % 12 != 0)
        fn = rows_f32_avx512_8x48, mr = 8, nr = 48; /* 8, 16 or 32 output channels: no padded rows */
    else if (isa >= MG_ISA_AVX512)
        fn = rows_f32_avx512, mr = 12, nr = 32;
    else
#endif
    if (isa >= MG_ISA_AVX2)
        fn = rows_f32_avx2, mr = 6, nr = 16;
    else
        return false;
    const int64_t KC = kernels_avx2[MG_FLOAT32].kc; /* every SIMD kernel's kc (256): the gemm's K blocks */
    for (int64_t jr = 0; jr < n; jr += nr)
        for (int64_t pc = 0; pc < k; pc += KC) {
            const int64_t kc = min64(KC, k - pc);
            for (int64_t ir = 0; ir < m; ir += mr)
                fn(kc, a + ir * rsa + pc, rsa, brow + pc, jr, c + ir * rsc + jr, rsc, min64(mr, m - ir),
                   min64(nr, n - jr), pc == 0);
        }
    return true;
#else
    (void)isa, (void)m, (void)n, (void)k, (void)a, (void)rsa, (void)brow, (void)c, (void)rsc;
    return false;
#endif
}
