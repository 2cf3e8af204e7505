/* grad.c: the dispatch from a graph node to its family's backward rule, and helpers rules share. */
#include "grad.h"
#include "ops.h"
#include "reduce.h"

typedef mg_status (*family_rule)(mg_ctx *, const mg_backward_args *, int, mg_tensor *);
#define RULE(FAMILY, name, rule) rule,
static const family_rule rules[MG_NFAMILIES] = {MG_FAMILIES(RULE)};
#define NAME(FAMILY, name, rule) #name,
static const char *const names[MG_NFAMILIES] = {MG_FAMILIES(NAME)};

const char *mg_family_name(mg_family family) { return names[family]; }

mg_status mg_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    return rules[a->node->family](ctx, a, i, gin);
}

bool mg_backward_into(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *acc, mg_status *st) {
    return a->node->family == MG_FAM_FUNCTIONAL && mg_functional_backward_into(ctx, a, i, acc, st);
}

bool mg_backward_uniform(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *one, mg_status *st) {
    return a->node->family == MG_FAM_REDUCE && mg_reduce_backward_uniform(ctx, a, i, one, st);
}

bool mg_backward_reads_elementwise(const mg_node *n) {
    if (n->family == MG_FAM_UNARY) return true;
    if (n->family != MG_FAM_BINARY) return false;
    switch ((mg_binary_op)n->op) {
    case MG_BIN_MUL:
    case MG_BIN_DIV:
    case MG_BIN_POW:
    case MG_BIN_MAXIMUM:
    case MG_BIN_MINIMUM: return true;
    default: return false;
    }
}

bool mg_backward_is_identity(const mg_node *n, int i) {
    return n->family == MG_FAM_BINARY && (n->op == MG_BIN_ADD || (n->op == MG_BIN_SUB && i == 0));
}

mg_status mg_scratch_as(mg_ctx *ctx, const mg_tensor *t, mg_dtype dt, mg_scratch *sc,
                        const mg_tensor **out) {
    sc->s.data = NULL;
    *out = t;
    if (t->dtype == dt) return MG_OK;
    mg_status st = mg_scratch_new(ctx, sc, dt, t->ndim, t->size);
    if (st == MG_OK) st = mg_copy(ctx, &sc->t, t);
    *out = &sc->t;
    return st;
}

mg_status mg_sum_to(mg_ctx *ctx, mg_tensor *out, const mg_tensor *in) {
    if (mg_same_shape(out, in)) return mg_copy(ctx, out, in);
    const int lead = in->ndim - out->ndim;
    uint32_t dims = 0;
    for (int i = 0; i < in->ndim; i++)
        if (i < lead || (out->size[i - lead] == 1 && in->size[i] != 1)) dims |= 1u << i;
    if (out->dtype == in->dtype && mg_is_contiguous(out))
        return mg_reduce(ctx, MG_RED_SUM, out, NULL, in, dims, NULL);
    mg_scratch sc;
    mg_status st = mg_scratch_new(ctx, &sc, (mg_dtype)in->dtype, out->ndim, out->size);
    if (st != MG_OK) return st;
    st = mg_reduce(ctx, MG_RED_SUM, &sc.t, NULL, in, dims, NULL);
    if (st == MG_OK) st = mg_copy(ctx, out, &sc.t);
    mg_scratch_free(ctx, &sc);
    return st;
}
