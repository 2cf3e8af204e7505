/*
 * iter.c: one walker for every elementwise kernel. Operands are aligned to the output's shape
 * (missing or size-1 dims get stride 0, which is how broadcasting and scalars cost nothing), then
 * dims that are contiguous with each other in every operand are merged, so a contiguous tensor of
 * any rank becomes one run of numel elements and the kernel's inner loop sees long vectors.
 */
#include "core.h"

void mg_iter_init(mg_iter *it, int nops, const mg_tensor *const *ops) {
    const mg_tensor *out = ops[0];
    int64_t size[MG_MAX_DIMS], stride[MG_MAX_OPERANDS][MG_MAX_DIMS];
    const int nd = out->ndim;
    if (out->numel == 0) { /* nothing to walk; an empty tensor's other dims may be huge, and their
                            * strides in bytes would overflow */
        it->ndim = 1;
        it->nops = nops;
        it->size[0] = 0;
        for (int k = 0; k < nops; k++) it->data[k] = (char *)mg_tensor_data(ops[k]), it->stride[k][0] = 0;
        return;
    }
    for (int k = 0; k < nops; k++) {
        const mg_tensor *t = ops[k];
        const int64_t item = (int64_t)mg_dtype_size((mg_dtype)t->dtype);
        it->data[k] = (char *)mg_tensor_data(t);
        for (int i = 0; i < nd; i++) {
            const int j = i - (nd - t->ndim);
            stride[k][i] = (j < 0 || t->size[j] == 1) ? 0 : t->stride[j] * item;
        }
    }
    /* drop size-1 dims, then merge neighbours: dim i-1 folds into i when, for every operand,
     * stride[i-1] == stride[i] * size[i] */
    int n = 0;
    for (int i = 0; i < nd; i++) {
        if (out->size[i] == 1) continue;
        if (n > 0) {
            bool mergeable = true;
            for (int k = 0; k < nops; k++)
                if (stride[k][n - 1] != stride[k][i] * out->size[i]) { mergeable = false; break; }
            if (mergeable) {
                size[n - 1] *= out->size[i];
                for (int k = 0; k < nops; k++) stride[k][n - 1] = stride[k][i];
                continue;
            }
        }
        size[n] = out->size[i];
        for (int k = 0; k < nops; k++) stride[k][n] = stride[k][i];
        n++;
    }
    if (n == 0) { /* a single element */
        size[0] = 1;
        for (int k = 0; k < nops; k++) stride[k][0] = 0;
        n = 1;
    }
    it->ndim = n;
    it->nops = nops;
    for (int i = 0; i < n; i++) {
        it->size[i] = out->numel == 0 ? 0 : size[i];
        for (int k = 0; k < nops; k++) it->stride[k][i] = stride[k][i];
    }
}

void mg_iter_run(const mg_iter *it, mg_inner_fn inner, const void *extra) {
    const int nd = it->ndim, nops = it->nops, last = nd - 1;
    for (int i = 0; i < nd; i++)
        if (it->size[i] == 0) return;
    int64_t inner_stride[MG_MAX_OPERANDS];
    for (int k = 0; k < nops; k++) inner_stride[k] = it->stride[k][last];
    if (nd == 1) {
        char *data[MG_MAX_OPERANDS];
        for (int k = 0; k < nops; k++) data[k] = it->data[k];
        inner(data, inner_stride, it->size[0], extra);
        return;
    }
    /* an odometer over the outer dims */
    int64_t index[MG_MAX_DIMS] = {0};
    char *base[MG_MAX_OPERANDS];
    for (int k = 0; k < nops; k++) base[k] = it->data[k];
    for (;;) {
        char *data[MG_MAX_OPERANDS];
        for (int k = 0; k < nops; k++) data[k] = base[k];
        inner(data, inner_stride, it->size[last], extra);
        int d = last - 1;
        for (; d >= 0; d--) {
            for (int k = 0; k < nops; k++) base[k] += it->stride[k][d];
            if (++index[d] < it->size[d]) break;
            for (int k = 0; k < nops; k++) base[k] -= it->stride[k][d] * it->size[d];
            index[d] = 0;
        }
        if (d < 0) return;
    }
}

/* ---- splitting the walk between threads ----------------------------------------------------- */
typedef struct split_job {
    const mg_iter *it;
    mg_inner_fn inner;
    const void *extra;
} split_job;

/* Runs rows [begin, end) of the outermost dim (or elements, for a single run). */
static void run_range(void *arg, int64_t begin, int64_t end) {
    const split_job *job = (const split_job *)arg;
    mg_iter sub = *job->it;
    for (int k = 0; k < sub.nops; k++) sub.data[k] += begin * sub.stride[k][0];
    sub.size[0] = end - begin;
    mg_iter_run(&sub, job->inner, job->extra);
}

void mg_iter_run_parallel(mg_ctx *ctx, const mg_iter *it, mg_inner_fn inner, const void *extra) {
    int64_t total = 1;
    for (int i = 0; i < it->ndim; i++) total *= it->size[i];
    if (total < 2 * MG_GRAIN_ELEMENTWISE || ctx->num_threads <= 1 || it->size[0] < 2) {
        mg_iter_run(it, inner, extra);
        return;
    }
    /* each output element belongs to one chunk: any split gives the same bits */
    const int64_t per_row = total / it->size[0];
    const int64_t grain = per_row >= MG_GRAIN_ELEMENTWISE ? 1 : MG_GRAIN_ELEMENTWISE / per_row;
    split_job job = {it, inner, extra};
    mg_parallel_for(ctx, it->size[0], grain, run_range, &job);
}
