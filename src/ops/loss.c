/* loss.c: the fused functional kernels of mg.F (losses, softmax, ...) and their backward rules. */
#include "../core/autograd.h"

mg_status mg_loss_backward(mg_ctx *ctx, const mg_backward_args *a, int i, mg_tensor *gin) {
    (void)a;
    (void)i;
    (void)gin;
    return mg_fail(ctx, MG_EVALUE, 0, "no backward rule yet");
}
