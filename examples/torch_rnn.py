"""A GRU on the adding problem in PyTorch: rmsopt.torch.RMSprop next to torch.optim.RMSprop.

    python examples/torch_rnn.py [--quick] [--out DIR]

Both optimizers train the same network from the same initial weights. In float64, on the same
mini-batches, their losses agree to rounding. In float32, full batch, with centered RMSprop
(``alpha=0.9``, ``eps=1e-2``), torch's variance estimate ``square_avg - grad_avg**2`` of a
slowly drifting gradient rounds below zero and its square root turns a weight NaN;
rmsopt.torch clamps the estimate at zero and trains on.
"""

import copy

import _cli
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

import rmsopt.plot
import rmsopt.torch
from rmsopt.problems import adding_problem, adding_rnn

args = _cli.parse(__doc__)
torch.set_num_threads(1)  # a small model: torch's threads cost more than they give
X, y = adding_problem(1024, length=10, seed=0)   # target: the sum of two marked values


def train(initial, optimizer, batches):
    """Train a copy of ``initial``; the loss of each step, up to a step that leaves a NaN."""
    model = copy.deepcopy(initial)
    opt = optimizer(model.parameters())
    curve = []
    for inputs, targets in batches:
        opt.zero_grad()
        loss = F.mse_loss(model(inputs), targets)
        loss.backward()
        opt.step()
        curve.append(loss.item())
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            break
    return curve


# (a) float64, mini-batches of 32: the same curve twice
rng = np.random.default_rng(0)
orders = [rng.permutation(1024) for _ in range(1 if args.quick else 20)]   # epochs
batches = [(torch.as_tensor(X[idx]), torch.as_tensor(y[idx]))
           for order in orders for idx in np.array_split(order, 32)]
initial = adding_rnn(hidden=16, seed=0)
same = {library.__name__: train(initial, lambda ps, lib=library: lib.RMSprop(ps, lr=1e-3), batches)
        for library in (rmsopt.torch, torch.optim)}
gap = np.abs(np.subtract(same["rmsopt.torch"], same["torch.optim"])).max()
print(f"float64: loss {same['torch.optim'][0]:.3f} -> {same['torch.optim'][-1]:.3f} in "
      f"{len(batches)} steps (predicting the mean: {y.var():.3f}); largest loss difference "
      f"rmsopt.torch - torch.optim {gap:.1e}")

# (b) float32, full batch, centered: torch's variance estimate rounds negative
full = [(torch.as_tensor(X[:64], dtype=torch.float32),
         torch.as_tensor(y[:64], dtype=torch.float32))] * (300 if args.quick else 1500)
initial32 = adding_rnn(hidden=16, seed=0, dtype=torch.float32)
centered = {}
for library in (rmsopt.torch, torch.optim):
    curve = centered[library.__name__] = train(
        initial32, lambda ps, lib=library: lib.RMSprop(ps, lr=1e-3, alpha=0.9, eps=1e-2,
                                                       centered=True), full)
    ends = "a NaN weight" if len(curve) < len(full) else "finite weights"
    print(f"float32, centered: {library.__name__:<13} {len(curve)} steps, loss "
          f"{curve[-1]:.4f}, then {ends}")

fig = Figure(figsize=(10.4, 4.0), layout="constrained")
left, right = fig.subplots(1, 2)
rmsopt.plot.curves({k: (np.arange(1, len(v) + 1), v) for k, v in same.items()}, xlabel="step",
                   ylabel="mini-batch MSE", ax=left, title="float64: the two curves coincide")
rmsopt.plot.curves({k: (np.arange(1, len(v) + 1), v) for k, v in centered.items()},
                   xlabel="step", ylabel="full-batch MSE", ax=right,
                   title="float32, centered: torch.optim stops at its NaN")
print("wrote", rmsopt.plot.save(fig, args.out / "torch_rnn.png"))
