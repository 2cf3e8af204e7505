/*
 * gemm.h: the matrix-product engine under matmul (src/ops/linalg.c): C = A B for float32,
 * float64 and int64, one product or a strided batch of them. It knows nothing of tensors, shapes
 * or autograd; the kernels, their choice for this CPU and the threading are inside (gemm.c).
 */
#ifndef MG_GEMM_H
#define MG_GEMM_H

#include "../core/core.h"

/* C(M,N) = A(M,K) B(K,N), for every index of a batch.
 * Layout: element (i,p) of A is at a + i rsa + p csa, (p,j) of B at b + p rsb + j csb, (i,j) of
 * C at c + i rsc + j csc. Strides are in elements, any of them 0 or not contiguous: transposed
 * and expanded views multiply without a copy. The sizes may be 0 (K == 0: C = 0).
 * Batch: batch_ndim (<= MG_MAX_DIMS) dims of sizes batch_size[d] (0: one product). The product of batch
 * index (t_0, ..., t_{n-1}) reads A at a + sum_d t_d batch_sa[d] (elements), B and C likewise
 * with batch_sb and batch_sc; a stride of 0 repeats an operand across that dim. The last dim
 * varies fastest. The arrays are read during the call only. */
typedef struct mg_gemm_args {
    int64_t m, n, k;
    const void *a;
    int64_t rsa, csa;
    const void *b;
    int64_t rsb, csb;
    void *c;
    int64_t rsc, csc;
    int batch_ndim;
    const int64_t *batch_size, *batch_sa, *batch_sb, *batch_sc;
    /* C += A B instead of C = A B: float32 / float64, m and n above 1, K at most MG_GEMM_KC (one
     * block of the sums), no batch: every element is then C + (its sum), rounded as an add after
     * the product would round it (mg_gemm fails MG_EVALUE otherwise). A weight's gradient summed
     * straight into its .grad (src/ops/functional.c). */
    bool accumulate;
} mg_gemm_args;

/* The length of each sum along K: every product sums blocks of MG_GEMM_KC from 0 and adds them to
 * C in order (the bits of every kernel, path and thread count). */
#define MG_GEMM_KC 256

/* Runs the products of p, all elements of type dt (MG_FLOAT32, MG_FLOAT64 or MG_INT64; int64
 * wraps on overflow as PyTorch does). Every element of C is written (added to with accumulate).
 * Ownership: A and B are only read, and no pointer is kept after the call; C must not overlap A
 * or B, nor one C of the batch another (they would be written in an unspecified order).
 * Scratch (packing buffers) comes from ctx's allocator and is freed before returning.
 * Threads: large products are split over ctx->num_threads threads (mg_parallel_for).
 * Results: float32 accumulates in float32, float64 in float64, in an order fixed by the sizes
 * alone: bit-identical from run to run, for any number of threads and any strides of A and B,
 * and whichever kernel this CPU gets (AVX-512 and AVX2 give the same bits; the portable kernel,
 * used on CPUs without FMA, rounds the multiply and the add separately).
 * Interrupts: products of MG_INTERRUPT_CHUNK multiply-adds or more (all batches together) look at
 * the interrupt request and the time limit (core.h) about every MG_INTERRUPT_CHUNK multiply-adds, on
 * every thread, and stop; the bits of a product that runs to its end do not depend on it.
 * Errors: MG_ENOMEM (scratch), C untouched; MG_EINTR (interrupted), C partly written. Scratch is
 * freed either way. */
mg_status mg_gemm(mg_ctx *ctx, mg_dtype dt, const mg_gemm_args *p);

/* One product (p's batch fields are not read) on the calling thread, for callers that split
 * their work between threads themselves (conv.c: a product a sample, inside mg_parallel_for).
 * scratch: at least mg_gemm_serial_bytes(dt, m, n, k, isa) bytes for products of at most m x n x k
 * (0: none needed); no allocation, no error. isa: the ctx's level (ctx->isa). The same bits as
 * mg_gemm of the same product. */
size_t mg_gemm_serial_bytes(mg_dtype dt, int64_t m, int64_t n, int64_t k, int isa);
void mg_gemm_serial(mg_dtype dt, int isa, const mg_gemm_args *p, void *scratch);

/* C(m,n) (rows rsc apart, contiguous) = A(m,k) (rows rsa apart, contiguous) B, float32, where row p of
 * B is brow[p][0..n) (any addresses: a convolution's input planes read in place, src/ops/conv.c),
 * each readable MG_GEMM_ROWS_SLACK elements past n (read, their sums dropped). On the calling
 * thread, no scratch. The same bits as mg_gemm of the same product at AVX2 and AVX-512; false
 * (nothing done) at the baseline level (isa: the ctx's), whose portable kernel the caller runs
 * instead (a call with m, n or k 0 asks only that). */
#define MG_GEMM_ROWS_SLACK 48
bool mg_gemm_rows_f32(int isa, int64_t m, int64_t n, int64_t k, const float *a, int64_t rsa,
                      const float *const *brow, float *c, int64_t rsc);

#endif
