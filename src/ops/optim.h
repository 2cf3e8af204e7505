/*
 * optim.h: fused optimizer updates. Each kernel makes one pass over a parameter, its gradient and
 * its state buffers, with PyTorch 1.13's formulas in PyTorch's order (torch/optim/<name>.py,
 * _single_tensor_<name>), so that trajectories agree step for step.
 *
 * Contract: param, grad and every buffer given have one shape and one floating dtype (float32 or
 * float64) and are contiguous (the caller checks, and copies when needed). param and the buffers are
 * written in place; grad is only read. Hyperparameters are doubles; a float32 kernel rounds them to
 * float where PyTorch's scalar arguments would be. The kernels never allocate.
 */
#ifndef MG_OPTIM_H
#define MG_OPTIM_H

#include "../core/core.h"

/* SGD: d = g + wd p; buf = first ? d : momentum buf + (1 - dampening) d (when momentum != 0);
 * d = nesterov ? d + momentum buf : buf; p -= lr d. */
typedef struct mg_sgd_options {
    double lr, momentum, dampening, weight_decay;
    bool nesterov;
    bool first; /* the momentum buffer is new: it takes d itself (PyTorch clones d) */
} mg_sgd_options;
/* buf: NULL when momentum == 0 */
mg_status mg_optim_sgd(mg_ctx *ctx, mg_tensor *param, const mg_tensor *grad, mg_tensor *buf,
                       const mg_sgd_options *o);

/* Adam / AdamW: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g g; vmax = max(vmax, v) (amsgrad);
 * p -= lr / (1 - b1^t) * m / (sqrt(v or vmax) / sqrt(1 - b2^t) + eps).
 * Adam adds wd p to g first; AdamW (decoupled) multiplies p by 1 - lr wd first. */
typedef struct mg_adam_options {
    double lr, beta1, beta2, eps, weight_decay;
    int64_t step; /* this step's number, from 1 */
    bool decoupled;
} mg_adam_options;
/* max_exp_avg_sq: NULL unless amsgrad */
mg_status mg_optim_adam(mg_ctx *ctx, mg_tensor *param, const mg_tensor *grad, mg_tensor *exp_avg,
                        mg_tensor *exp_avg_sq, mg_tensor *max_exp_avg_sq, const mg_adam_options *o);

/* RMSprop: g += wd p; s = alpha s + (1-alpha) g g; centered: a = alpha a + (1-alpha) g and
 * avg = sqrt(s - a a), else avg = sqrt(s); avg += eps; momentum > 0: buf = momentum buf + g / avg,
 * p -= lr buf; otherwise p -= lr g / avg. */
typedef struct mg_rmsprop_options {
    double lr, alpha, eps, weight_decay, momentum;
} mg_rmsprop_options;
/* grad_avg: NULL unless centered; buf: NULL unless momentum > 0 */
mg_status mg_optim_rmsprop(mg_ctx *ctx, mg_tensor *param, const mg_tensor *grad, mg_tensor *square_avg,
                           mg_tensor *grad_avg, mg_tensor *buf, const mg_rmsprop_options *o);

/* Adagrad: g += wd p; clr = lr / (1 + (t - 1) lr_decay); s += g g; p -= clr g / (sqrt(s) + eps). */
typedef struct mg_adagrad_options {
    double lr, lr_decay, weight_decay, eps;
    int64_t step; /* this step's number, from 1 */
} mg_adagrad_options;
mg_status mg_optim_adagrad(mg_ctx *ctx, mg_tensor *param, const mg_tensor *grad, mg_tensor *sum,
                           const mg_adagrad_options *o);

#endif
