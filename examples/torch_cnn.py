"""A small CNN on the 8x8 digits in PyTorch: rmsopt.torch's optimizers next to torch.optim's.

    python examples/torch_cnn.py [--quick] [--out DIR]

``rmsopt.torch.RMSprop``, ``Adam`` and ``SGD`` are ``torch.optim.Optimizer`` subclasses, so the
training loop is torch's own. Each optimizer trains the network twice, from the same initial
weights on the same mini-batches: once as ``rmsopt.torch.<Name>``, once as
``torch.optim.<Name>``, with the same arguments. In float64 the losses agree to rounding.
"""

import copy

import _cli
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

import rmsopt.plot
import rmsopt.torch
from rmsopt.problems import digits, digits_cnn

args = _cli.parse(__doc__)
torch.set_num_threads(1)  # a small model: torch's threads cost more than they give
X, y, X_test, y_test = (torch.as_tensor(a) for a in digits())   # float64 pixels, int labels
initial = digits_cnn(seed=0)                                    # float64 weights
epochs = 1 if args.quick else 10
rng = np.random.default_rng(0)
batches = [idx for _ in range(epochs)
           for idx in np.array_split(rng.permutation(len(y)), -(-len(y) // 64))]
optimizers = {"RMSprop": {"lr": 1e-3}, "Adam": {"lr": 1e-3}, "SGD": {"lr": 3e-2, "momentum": 0.9}}

losses, gaps = {}, {}
for name, kwargs in optimizers.items():
    for library in (rmsopt.torch, torch.optim):
        model = copy.deepcopy(initial)
        opt = getattr(library, name)(model.parameters(), **kwargs)
        curve = losses[name, library.__name__] = []
        for idx in batches:
            opt.zero_grad()
            loss = F.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
            curve.append(loss.item())
        with torch.no_grad():
            accuracy = (model(X_test).argmax(1) == y_test).double().mean().item()
        print(f"{name:<8} {library.__name__:<13} last batch loss {curve[-1]:.4f}, "
              f"test accuracy {100 * accuracy:.1f} %")
    gaps[name] = np.abs(np.subtract(losses[name, "rmsopt.torch"], losses[name, "torch.optim"]))
    print(f"{name:<8} largest loss difference over {len(batches)} steps: {gaps[name].max():.1e}")

steps = np.arange(1, len(batches) + 1)
fig = Figure(figsize=(10.4, 4.0), layout="constrained")
left, right = fig.subplots(1, 2)
rmsopt.plot.curves({f"{name}, rmsopt.torch": (steps, losses[name, "rmsopt.torch"])
                    for name in optimizers}, xlabel="step", ylabel="mini-batch cross-entropy",
                   ax=left, title="Digits CNN, float64")
rmsopt.plot.curves({name: (steps, gap) for name, gap in gaps.items()}, xlabel="step",
                   ylabel="|loss(rmsopt.torch) - loss(torch.optim)|", ax=right,
                   title="Difference per step (zeros not drawn)")
print("wrote", rmsopt.plot.save(fig, args.out / "torch_cnn.png"))
