"""W1 (hand-derived gradient) and W2 (autograd): the book's loop, lr 1e-2, 5000 epochs on t_un."""
import torch

from common import median_time, result
from thermo import data, loss_fn, model

EPOCHS = 5000
t_c, t_u, t_un = data()


def manual():
    params = torch.tensor([1.0, 0.0])
    for _ in range(EPOCHS):
        w, b = params
        t_p = model(t_un, w, b)
        dloss = 2 * (t_p - t_c)
        grad = torch.stack([(dloss * t_un).mean(), dloss.mean()])
        params = params - 1e-2 * grad
    return params, None


def autograd():
    params = torch.tensor([1.0, 0.0], requires_grad=True)
    loss = None
    for _ in range(EPOCHS):
        if params.grad is not None:
            params.grad.zero_()
        loss = loss_fn(model(t_un, *params), t_c)
        loss.backward()
        with torch.no_grad():
            params -= 1e-2 * params.grad
    return params, loss


for name, fn in (("W1_thermo_manual", manual), ("W2_thermo_autograd", autograd)):
    t, (p, loss) = median_time(fn, "auto")
    nums = [p[0].item(), p[1].item()] + ([loss.item()] if loss is not None else [])
    result(name, t / EPOCHS * 1e6, "us/epoch", nums=nums, check="w=%.4f,b=%.4f" % tuple(nums[:2]))
