/*
 * optim.c: the fused update of each optimizer (SGD, Adam / AdamW, RMSprop, Adagrad), one pass over
 * a parameter, its gradient and its state. The math and PyTorch's order are in optim.h; each line
 * below keeps PyTorch's roundings: every in-place op of _single_tensor_<name> is one rounded
 * assignment, and a scalar argument is rounded to the parameter's dtype (`(T)` casts) as PyTorch's
 * kernels do with theirs. Step-level scalars (bias corrections, the decayed lr) are computed in
 * double, as Python does.
 *
 * Each optimizer is a DEFINE_<NAME>(name_dtype, T, SQRT) macro instantiated once per dtype (and
 * per instruction set: MG_ISA_STAMP, src/core/cpu.h), and an entry point that checks the dtype
 * and calls the ctx's level of it (MG_ISA_PICK). To add an optimizer: its options struct and entry
 * point in optim.h, its macro and two instantiation lines here, its binding in src/bind/optim.c.
 */
#include <math.h>

#include "../core/cpu.h"
#include "optim.h"
#include "scalar.h" /* MG_MAX_NAN: amsgrad's running maximum propagates NaN, as torch.maximum */

/* ---- SGD ------------------------------------------------------------------------------------- */
/* One loop per case, each branch-free so that it vectorizes; wdc is 0 without weight decay (an
 * exact add). The cases, as PyTorch: no momentum; the first step (the buffer takes d); later steps
 * (buf = momentum buf + (1 - dampening) d), plain or nesterov. */
#define DEFINE_SGD(NAME, T) MG_ISA_STAMP(SGD_LOOP, NAME, T)
#define SGD_LOOP(ISA, NAME, T)                                                                   \
    static void MG_ISA_FN(NAME, ISA)(T *restrict p, const T *restrict g, T *restrict buf,         \
                                     int64_t n, const mg_sgd_options *o) {                        \
        const T wdc = (T)o->weight_decay, mom = (T)o->momentum, damp1 = (T)(1 - o->dampening);    \
        const T neg_lr = (T)-o->lr;                                                               \
        if (!buf) {                                                                               \
            for (int64_t i = 0; i < n; i++) p[i] = p[i] + neg_lr * (g[i] + wdc * p[i]);           \
        } else if (o->first) {                                                                    \
            for (int64_t i = 0; i < n; i++) {                                                     \
                const T d = g[i] + wdc * p[i];                                                    \
                buf[i] = d;                                                                       \
                p[i] = p[i] + neg_lr * (o->nesterov ? d + mom * d : d);                           \
            }                                                                                     \
        } else if (o->nesterov) {                                                                 \
            for (int64_t i = 0; i < n; i++) {                                                     \
                const T d = g[i] + wdc * p[i];                                                    \
                const T b = buf[i] * mom + damp1 * d;                                             \
                buf[i] = b;                                                                       \
                p[i] = p[i] + neg_lr * (d + mom * b);                                             \
            }                                                                                     \
        } else {                                                                                  \
            for (int64_t i = 0; i < n; i++) {                                                     \
                const T d = g[i] + wdc * p[i];                                                    \
                const T b = buf[i] * mom + damp1 * d;                                             \
                buf[i] = b;                                                                       \
                p[i] = p[i] + neg_lr * b;                                                         \
            }                                                                                     \
        }                                                                                         \
    }
DEFINE_SGD(sgd_f32, float)
DEFINE_SGD(sgd_f64, double)

/* ---- Adam and AdamW ------------------------------------------------------------------------------ */
/* Branch-free so that it vectorizes: without weight decay wdc is 0 and decay 1, which add and
 * multiply exactly (PyTorch's update, step for step); amsgrad gets its own loop. */
#define ADAM_BODY(T, SQRT, SECOND)                                                                \
    for (int64_t i = 0; i < n; i++) {                                                             \
        const T grad = g[i] + wdc * p[i];                                                         \
        const T pi = p[i] * decay;                                                                \
        const T mi = m[i] * b1;                                                                   \
        m[i] = mi + one_b1 * grad;                                                                \
        const T vi = v[i] * b2;                                                                   \
        v[i] = vi + one_b2 * grad * grad;                                                         \
        const T denom = SQRT(SECOND) / bc2_sqrt + eps;                                            \
        p[i] = pi + neg_step_size * m[i] / denom;                                                 \
    }
#define DEFINE_ADAM(NAME, T, SQRT) MG_ISA_STAMP(ADAM_LOOP, NAME, T, SQRT)
#define ADAM_LOOP(ISA, NAME, T, SQRT)                                                             \
    static void MG_ISA_FN(NAME, ISA)(T *restrict p, const T *restrict g, T *restrict m,           \
                                     T *restrict v, T *restrict vmax, int64_t n,                  \
                                     const mg_adam_options *o) {                                  \
        const double bc1 = 1 - pow(o->beta1, (double)o->step);                                   \
        const double bc2 = 1 - pow(o->beta2, (double)o->step);                                   \
        const T neg_step_size = (T)-(o->lr / bc1), bc2_sqrt = (T)sqrt(bc2);                       \
        const T b1 = (T)o->beta1, b2 = (T)o->beta2, one_b1 = (T)(1 - o->beta1);                   \
        const T one_b2 = (T)(1 - o->beta2), eps = (T)o->eps;                                      \
        const T decay = o->decoupled ? (T)(1 - o->lr * o->weight_decay) : (T)1;                   \
        const T wdc = o->decoupled ? (T)0 : (T)o->weight_decay;                                   \
        if (vmax) {                                                                               \
            ADAM_BODY(T, SQRT, (vmax[i] = MG_MAX_NAN(vmax[i], v[i])))                                \
        } else {                                                                                  \
            ADAM_BODY(T, SQRT, v[i])                                                              \
        }                                                                                         \
    }
DEFINE_ADAM(adam_f32, float, sqrtf)
DEFINE_ADAM(adam_f64, double, sqrt)

/* ---- RMSprop ------------------------------------------------------------------------------------ */
#define DEFINE_RMSPROP(NAME, T, SQRT) MG_ISA_STAMP(RMSPROP_LOOP, NAME, T, SQRT)
#define RMSPROP_LOOP(ISA, NAME, T, SQRT)                                                          \
    static void MG_ISA_FN(NAME, ISA)(T *restrict p, const T *restrict g, T *restrict s,           \
                                     T *restrict a, T *restrict buf, int64_t n,                   \
                                     const mg_rmsprop_options *o) {                               \
        const T alpha = (T)o->alpha, one_alpha = (T)(1 - o->alpha), eps = (T)o->eps;              \
        const T wd = (T)o->weight_decay, mom = (T)o->momentum, neg_lr = (T)-o->lr;                \
        for (int64_t i = 0; i < n; i++) {                                                         \
            T grad = g[i];                                                                        \
            if (o->weight_decay != 0) grad = grad + wd * p[i];                                    \
            const T si = s[i] * alpha;                                                            \
            s[i] = si + one_alpha * grad * grad;                                                  \
            T avg;                                                                                \
            if (a) {                                                                              \
                const T ai = a[i] * alpha;                                                        \
                a[i] = ai + one_alpha * grad;                                                     \
                avg = SQRT(s[i] + (T)-1 * a[i] * a[i]);                                           \
            } else {                                                                              \
                avg = SQRT(s[i]);                                                                 \
            }                                                                                     \
            avg = avg + eps;                                                                      \
            if (buf) {                                                                            \
                const T b = buf[i] * mom;                                                         \
                buf[i] = b + grad / avg;                                                          \
                p[i] = p[i] + neg_lr * buf[i];                                                    \
            } else {                                                                              \
                p[i] = p[i] + neg_lr * grad / avg;                                                \
            }                                                                                     \
        }                                                                                         \
    }
DEFINE_RMSPROP(rmsprop_f32, float, sqrtf)
DEFINE_RMSPROP(rmsprop_f64, double, sqrt)

/* ---- Adagrad ------------------------------------------------------------------------------------ */
#define DEFINE_ADAGRAD(NAME, T, SQRT) MG_ISA_STAMP(ADAGRAD_LOOP, NAME, T, SQRT)
#define ADAGRAD_LOOP(ISA, NAME, T, SQRT)                                                          \
    static void MG_ISA_FN(NAME, ISA)(T *restrict p, const T *restrict g, T *restrict s,           \
                                     int64_t n, const mg_adagrad_options *o) {                    \
        const double clr = o->lr / (1 + (double)(o->step - 1) * o->lr_decay);                    \
        const T neg_clr = (T)-clr, wd = (T)o->weight_decay, eps = (T)o->eps;                      \
        for (int64_t i = 0; i < n; i++) {                                                         \
            T grad = g[i];                                                                        \
            if (o->weight_decay != 0) grad = grad + wd * p[i];                                    \
            s[i] = s[i] + grad * grad;                                                            \
            const T std = SQRT(s[i]) + eps;                                                       \
            p[i] = p[i] + neg_clr * grad / std;                                                   \
        }                                                                                         \
    }
DEFINE_ADAGRAD(adagrad_f32, float, sqrtf)
DEFINE_ADAGRAD(adagrad_f64, double, sqrt)

/* ---- entry points ------------------------------------------------------------------------------- */
/* Borrowed data pointer of an optional buffer. */
static void *data_or_null(const mg_tensor *t) { return t ? mg_tensor_data(t) : NULL; }

static mg_status bad_dtype(mg_ctx *ctx, const mg_tensor *param) {
    return mg_fail(ctx, MG_EDTYPE, 1, "optimizers update float32 or float64 tensors, got %s",
                   mg_dtype_name((mg_dtype)param->dtype));
}

/* Large parameters are split between the ctx's threads: every element is updated by one thread
 * with the same arithmetic, so the result does not depend on the split. */
#define OPTIM_GRAIN 32768

/* The element range [b, e) of an array of dtype dt (NULL stays NULL). */
#define AT(ptr, dt, b) ((ptr) ? (void *)((char *)(ptr) + (size_t)(b) * ((dt) == MG_FLOAT32 ? 4 : 8)) : NULL)

typedef struct sgd_job {
    mg_dtype dt;
    int isa;
    void *p, *b;
    const void *g;
    const mg_sgd_options *o;
} sgd_job;

static void sgd_range(void *arg, int64_t b, int64_t e) {
    const sgd_job *j = (const sgd_job *)arg;
    const mg_dtype dt = j->dt;
    if (dt == MG_FLOAT32)
        MG_ISA_PICK(j->isa, sgd_f32)(AT(j->p, dt, b), AT(j->g, dt, b), AT(j->b, dt, b), e - b, j->o);
    else
        MG_ISA_PICK(j->isa, sgd_f64)(AT(j->p, dt, b), AT(j->g, dt, b), AT(j->b, dt, b), e - b, j->o);
}

mg_status mg_optim_sgd(mg_ctx *ctx, mg_tensor *param, const mg_tensor *grad, mg_tensor *buf,
                       const mg_sgd_options *o) {
    if (!mg_is_floating((mg_dtype)param->dtype)) return bad_dtype(ctx, param);
    sgd_job job = {(mg_dtype)param->dtype, ctx->isa, mg_tensor_data(param), data_or_null(buf),
                   mg_tensor_data(grad), o};
    mg_parallel_for(ctx, param->numel, OPTIM_GRAIN, sgd_range, &job);
    return MG_OK;
}

typedef struct adam_job {
    mg_dtype dt;
    int isa;
    void *p, *m, *v, *vmax;
    const void *g;
    const mg_adam_options *o;
} adam_job;

static void adam_range(void *arg, int64_t b, int64_t e) {
    const adam_job *j = (const adam_job *)arg;
    const mg_dtype dt = j->dt;
    if (dt == MG_FLOAT32)
        MG_ISA_PICK(j->isa, adam_f32)(AT(j->p, dt, b), AT(j->g, dt, b), AT(j->m, dt, b), AT(j->v, dt, b),
                                      AT(j->vmax, dt, b), e - b, j->o);
    else
        MG_ISA_PICK(j->isa, adam_f64)(AT(j->p, dt, b), AT(j->g, dt, b), AT(j->m, dt, b), AT(j->v, dt, b),
                                      AT(j->vmax, dt, b), e - b, j->o);
}

mg_status mg_optim_adam(mg_ctx *ctx, mg_tensor *param, const mg_tensor *grad, mg_tensor *exp_avg,
                        mg_tensor *exp_avg_sq, mg_tensor *max_exp_avg_sq, const mg_adam_options *o) {
    if (!mg_is_floating((mg_dtype)param->dtype)) return bad_dtype(ctx, param);
    adam_job job = {(mg_dtype)param->dtype, ctx->isa, mg_tensor_data(param), mg_tensor_data(exp_avg),
                    mg_tensor_data(exp_avg_sq), data_or_null(max_exp_avg_sq), mg_tensor_data(grad), o};
    mg_parallel_for(ctx, param->numel, OPTIM_GRAIN, adam_range, &job);
    return MG_OK;
}

mg_status mg_optim_rmsprop(mg_ctx *ctx, mg_tensor *param, const mg_tensor *grad, mg_tensor *square_avg,
                           mg_tensor *grad_avg, mg_tensor *buf, const mg_rmsprop_options *o) {
    void *p = mg_tensor_data(param), *s = mg_tensor_data(square_avg);
    void *a = data_or_null(grad_avg), *b = data_or_null(buf);
    const void *g = mg_tensor_data(grad);
    switch (param->dtype) {
    case MG_FLOAT32: MG_ISA_PICK(ctx->isa, rmsprop_f32)(p, g, s, a, b, param->numel, o); return MG_OK;
    case MG_FLOAT64: MG_ISA_PICK(ctx->isa, rmsprop_f64)(p, g, s, a, b, param->numel, o); return MG_OK;
    default: return bad_dtype(ctx, param);
    }
}

mg_status mg_optim_adagrad(mg_ctx *ctx, mg_tensor *param, const mg_tensor *grad, mg_tensor *sum,
                           const mg_adagrad_options *o) {
    void *p = mg_tensor_data(param), *s = mg_tensor_data(sum);
    const void *g = mg_tensor_data(grad);
    switch (param->dtype) {
    case MG_FLOAT32: MG_ISA_PICK(ctx->isa, adagrad_f32)(p, g, s, param->numel, o); return MG_OK;
    case MG_FLOAT64: MG_ISA_PICK(ctx->isa, adagrad_f64)(p, g, s, param->numel, o); return MG_OK;
    default: return bad_dtype(ctx, param);
    }
}
