"""W3: the book's loop with torch.optim: SGD lr 1e-2, 5000 epochs on t_un; Adam lr 0.1, 2000
epochs on the raw t_u."""
import torch
import torch.optim as optim

from common import median_time, result
from thermo import data, loss_fn, model

t_c, t_u, t_un = data()


def training_loop(n_epochs, optimizer, params, x):
    loss = None
    for _ in range(n_epochs):
        t_p = model(x, *params)
        loss = loss_fn(t_p, t_c)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return params, loss


for name, opt, lr, epochs, x in (("W3_thermo_optim_sgd", optim.SGD, 1e-2, 5000, t_un),
                                 ("W3_thermo_optim_adam", optim.Adam, 1e-1, 2000, t_u)):
    def run():
        params = torch.tensor([1.0, 0.0], requires_grad=True)
        return training_loop(epochs, opt([params], lr=lr), params, x)

    t, (p, loss) = median_time(run, "auto")
    nums = [p[0].item(), p[1].item(), loss.item()]
    result(name, t / epochs * 1e6, "us/epoch", nums=nums, check="w=%.4f,b=%.4f" % tuple(nums[:2]))
