"""``python -m rmsopt demo``: what the RMSprop family is for, end to end, with pictures.

Eight scenarios, each a function of this module with a short script of its own in
``examples/``:

1. :func:`two_d`: Rosenbrock and an ill-conditioned ravine; trajectories on contours and
   RMSprop's effective per-parameter learning rate.
2. :func:`high_dim`: an ill-conditioned quadratic with 1e5 unknowns, convergence per method.
3. :func:`linear_regression`: ``y = 4 + 3x + noise``, RMSprop against the closed form.
4. :func:`digits`: a small neural network on scikit-learn's bundled digits, mini-batches
   through :func:`rmsopt.minimize`, test accuracy per method.
5. :func:`factorisation`: low-rank matrix factorisation of sparse ratings, trained with
   sparse row updates (:meth:`rmsopt.Optimizer.step_rows`) against dense steps.
6. :func:`sensitivity`: final loss over a grid of ``lr`` and ``rho`` (heatmaps).
7. :func:`torch_cnn`: a small PyTorch CNN on the digits, ``rmsopt.torch``'s RMSprop, Adam and
   SGD next to ``torch.optim``'s from the same initial weights: float64 losses that agree to
   rounding, and (without ``--quick``) torch's centered RMSprop turning NaN in float32.
8. :func:`torch_rnn`: a PyTorch GRU on the adding problem, the same comparison for RMSprop,
   and the float32 centered case where torch's RMSprop turns NaN and rmsopt's stays finite.

Every scenario prints a table (method, learning rate, final loss, iterations, time) and,
when matplotlib is installed, writes PNG figures. Times are wall-clock seconds of the
optimisation alone: each method first runs one step so that Numba compiles its kernel,
and that one-off compilation is reported separately. Learning rates are fixed per method
and problem: the best final loss over the grid 1e-4, 3e-4, ..., 1 for the demo's budget
(scenarios 7 and 8, which compare two implementations of one method, use common values). The
PyTorch scenarios are skipped, with a note, when torch is not installed.
"""

import sys
import time
from pathlib import Path

import numpy as np

from . import optimizer, problems, schedules
from .minimize import minimize

#: The methods compared: label -> (minimize method, options besides lr).
METHODS = {
    "SGD": ("sgd", {}),
    "SGD momentum": ("sgd", {"momentum": 0.9}),
    "AdaGrad": ("adagrad", {}),
    "AdaDelta": ("adadelta", {}),
    "RMSprop": ("rmsprop", {}),
    "RMSprop centered": ("rmsprop", {"centered": True}),
    "RMSprop momentum": ("rmsprop", {"momentum": 0.9}),
    "Adam": ("adam", {}),
}

# Learning rate per problem and method: the best final loss over 1e-4, 3e-4, ..., 1 with
# the full demo's budget (AdaDelta's lr multiplies its own step; 1 is its usual value).
LR = {
    "rosenbrock": {"SGD": 1e-3, "SGD momentum": 1e-3, "AdaGrad": 1.0, "AdaDelta": 0.1,
                   "RMSprop": 3e-3, "RMSprop centered": 3e-4, "RMSprop momentum": 3e-4,
                   "Adam": 3e-2},
    "ravine": {"SGD": 0.3, "SGD momentum": 0.3, "AdaGrad": 1.0, "AdaDelta": 1.0,
               "RMSprop": 3e-2, "RMSprop centered": 1e-2, "RMSprop momentum": 1e-2,
               "Adam": 0.3},
    "quadratic": {"SGD": 1e-4, "SGD momentum": 3e-4, "AdaGrad": 1.0, "AdaDelta": 1.0,
                  "RMSprop": 1e-2, "RMSprop centered": 1e-3, "RMSprop momentum": 1e-3,
                  "Adam": 0.3},
    "digits": {"SGD": 1.0, "SGD momentum": 0.3, "AdaGrad": 0.1, "AdaDelta": 1.0,
               "RMSprop": 1e-2, "RMSprop centered": 1e-2, "RMSprop momentum": 1e-3,
               "Adam": 1e-2},
}

SCENARIOS = ("2d", "highdim", "linreg", "digits", "factorisation", "sensitivity",
             "torch-cnn", "torch-rnn")


class Demo:
    """Shared plumbing: options, timing, tables and figures.

    Parameters
    ----------
    out : str or Path
        Directory for the PNG figures (created when needed).
    quick : bool
        Smaller problems and budgets (seconds instead of a minute or two).
    plots : bool
        Write figures; turned off, with a note, when matplotlib is missing.
    stream : file
        Where tables and notes go.
    """

    def __init__(self, out="rmsopt-demo", quick=False, plots=True, stream=None):
        self.out, self.quick, self.stream = Path(out), quick, stream or sys.stdout
        self.figures, self.compile_s, self.notes, self.results = [], 0.0, [], {}
        self.plots = plots and _have("matplotlib")
        if plots and not self.plots:
            self.note('matplotlib is not installed: tables only (pip install "rmsopt[plot]" '
                      "for the figures)")

    def say(self, text=""):
        print(text, file=self.stream, flush=True)

    def note(self, text):
        self.notes.append(text)
        self.say(f"note: {text}")

    def minimize(self, fun, x0, method, options, args=()):
        """``(result, seconds)``: one untimed step to compile, then the timed run."""
        t0 = time.perf_counter()
        minimize(fun, x0, args=args, method=method, jac=True,
                 options={**options, "maxiter": 1})  # the same variant as the timed run
        t1 = time.perf_counter()
        res = minimize(fun, x0, args=args, method=method, jac=True, options=options)
        t2 = time.perf_counter()
        self.compile_s += t1 - t0
        return res, t2 - t1

    def table(self, title, rows, extra=None):
        """Print rows ``(method, lr, final loss, iterations, seconds[, extra])``."""
        self.say(f"\n{title}")
        width = max([22] + [len(row[0]) for row in rows])
        head = (f"  {'method':<{width}} {'lr':>7} {'final loss':>11} {'iterations':>10} "
                f"{'time [s]':>9}")
        self.say(head + (f" {extra:>14}" if extra else ""))
        for row in rows:
            name, lr, loss, nit, sec = row[:5]
            lr = f"{lr:7.0e}" if isinstance(lr, float) else f"{lr:>7}"
            line = f"  {name:<{width}} {lr} {loss:11.3e} {nit:10d} {sec:9.3f}"
            self.say(line + (f" {row[5]:>14}" if extra else ""))

    def figure(self, name, fig, colors=256):
        """Save ``fig`` as ``out/name.png`` (see :func:`rmsopt.plot.save`)."""
        from . import plot

        self.out.mkdir(parents=True, exist_ok=True)
        path = plot.save(fig, self.out / f"{name}.png", colors=colors)
        self.figures.append(path)
        return path


def _have(module):
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _split(results, names):
    return {k: v for k, v in results.items() if k in names}


GD_FAMILY = ("SGD", "SGD momentum", "AdaGrad", "AdaDelta")
RMS_FAMILY = ("RMSprop", "RMSprop centered", "RMSprop momentum", "Adam")


# ----------------------------------------------------------------- 1. two dimensions

def two_d(demo):
    """Rosenbrock and the ravine: every method's path, and RMSprop's per-parameter rate."""
    problems_2d = [
        ("rosenbrock", problems.rosenbrock, problems.ROSENBROCK_START, (1.0, 1.0),
         600 if demo.quick else 3000, dict(xlim=(-2.0, 2.0), ylim=(-1.0, 3.0),
                                           mark_every=100 if demo.quick else 500)),
        ("ravine", problems.ravine, problems.RAVINE_START, (0.0, 0.0), 300,
         dict(xlim=(-10.0, 2.0), ylim=(-2.5, 2.5), mark_every=50)),
    ]
    runs = {}
    for part, (name, fun, x0, minimum, maxiter, window) in zip("ab", problems_2d):
        results, rows = {}, []
        for label, (method, extra) in METHODS.items():
            lr = LR[name][label]
            res, sec = demo.minimize(fun, x0, method, {"lr": lr, "maxiter": maxiter, "gtol": 1e-8,
                                                       "return_all": True, **extra})
            results[label] = res
            rows.append((label, lr, res.fun, res.nit, sec))
        runs[name] = results
        demo.table(f"1{part}. {name} from {x0}, {maxiter} iterations (minimum 0 at {minimum})",
                   rows)
        if demo.plots:
            from . import plot

            fig, axes = plot.figure_axes(None, ncols=3, size=(5.2, 4.8))
            for ax, names, title in ((axes[0], GD_FAMILY, "SGD, AdaGrad, AdaDelta"),
                                     (axes[1], RMS_FAMILY, "RMSprop and Adam")):
                plot.trajectories(fun, _split(results, names), minimum=minimum, ax=ax,
                                  title=title, **window)
            # the RMSprop paths end on top of each other: their distances do not
            plot.distances(_split(results, RMS_FAMILY), minimum, ax=axes[2],
                           mark_every=window["mark_every"],
                           title=f"RMSprop and Adam: distance to {minimum}")
            fig.suptitle(f"{name.capitalize()}: {maxiter} iterations from {x0}")
            demo.figure(f"2d_{name}_paths", fig)
    if demo.plots:
        from . import plot

        fig, axes = plot.figure_axes(None, ncols=2, size=(5.2, 4.0))
        for ax, name in zip(axes, runs):
            plot.curves({k: (np.arange(len(r.history["fun"])), r.history["fun"])
                         for k, r in runs[name].items()},
                        xlabel="iteration", ylabel="f(x) - f*  (f* = 0)", ax=ax,
                        title=name.capitalize())
        demo.figure("2d_convergence", fig)
        demo.figure("2d_effective_lr", effective_lr_figure(demo))
    return runs


def effective_lr_figure(demo, steps=300, lr=3e-2):
    """RMSprop on the ravine, recording its state: the step factor of each coordinate."""
    from . import plot

    x = np.array(problems.RAVINE_START)
    opt = optimizer.RMSprop(x, lr=lr)
    nu = []
    for _ in range(steps):
        opt.step(problems.ravine(x)[1])
        nu.append(opt.state["nu"].copy())
    fig = plot.effective_lr(np.array(nu), lr, opt.hyper["eps"],
                            ["$x_1$ (flat direction, curvature 0.02)",
                             "$x_2$ (steep direction, curvature 4)"],
                            title="RMSprop on the ravine: per-parameter step factor")
    ax = fig.axes[0]
    ax.axhline(2 / 4.0, color="C3", linewidth=0.8, linestyle="--")
    ax.annotate("2 / 4: the largest stable rate along $x_2$ (and SGD's limit for both)",
                (0, 0.5), xytext=(4, 4), textcoords="offset points", ha="left", va="bottom",
                fontsize="small", color="C3")
    return fig


# ------------------------------------------------------------- 2. high dimension

def high_dim(demo):
    """An ill-conditioned diagonal quadratic with n >= 1e5: convergence of every method."""
    n, maxiter = (20_000, 100) if demo.quick else (100_000, 500)
    q = problems.Quadratic(n, cond=1e4)
    f0 = q(q.start())[0]
    runs = {label: (method, LR["quadratic"][label], {"lr": LR["quadratic"][label], **extra})
            for label, (method, extra) in METHODS.items()}
    runs["RMSprop, cosine lr"] = ("rmsprop", "cos 0.1",
                                  {"lr": schedules.cosine(0.1, maxiter)})
    results, rows = {}, []
    for label, (method, lr, options) in runs.items():
        res, sec = demo.minimize(q, q.start(), method, {"maxiter": maxiter, "gtol": 1e-10,
                                                        "history": True, **options})
        results[label] = res
        rows.append((label, lr, res.fun, res.nit, sec))
    demo.table(f"2. quadratic, n = {n:,}, condition number 1e4, {maxiter} iterations "
               f"(f(x0) = {f0:.2e}, minimum 0)", rows)
    if demo.plots:
        from . import plot

        fig = plot.convergence(results, title=f"Diagonal quadratic, n = {n:,}, condition 1e4")
        demo.figure("highdim_convergence", fig)
    return results


# ------------------------------------------------------------ 3. linear regression

def linear_regression(demo):
    """``y = 4 + 3x + noise``: RMSprop, full batch and mini-batch, against least squares."""
    X, y = problems.linear_data(1000)
    w_star = problems.least_squares(X, y)
    f_star = problems.mse(w_star, X, y)[0]
    runs = {  # label: (method, lr as printed, options)
        "RMSprop, full batch": ("rmsprop", 3e-2, {"lr": 3e-2, "maxiter": 1000}),
        "RMSprop, cosine lr": ("rmsprop", "cos 3e-2",
                               {"lr": schedules.cosine(3e-2, 1000), "maxiter": 1000}),
        "RMSprop, batches of 32": ("rmsprop", 1e-2, {"lr": 1e-2, "batch_size": 32,
                                                     "epochs": 20, "seed": 0}),
        "SGD, full batch": ("sgd", 0.1, {"lr": 0.1, "maxiter": 1000}),
    }
    results, rows = {}, []
    for label, (method, lr, options) in runs.items():
        res, sec = demo.minimize(problems.mse, np.zeros(2), method,
                                 {"gtol": 1e-6, "return_all": True, **options}, args=(X, y))
        results[label] = res
        rows.append((label, lr, res.fun, res.nit, sec, f"{np.abs(res.x - w_star).max():.1e}"))
    rows.append(("closed form (lstsq)", "-", f_star, 0, 0.0, "0"))
    demo.table(f"3. linear regression y = 4 + 3x + noise, 1000 samples: closed form "
               f"w* = ({w_star[0]:.3f}, {w_star[1]:.3f})", rows, extra="max |w - w*|")
    if demo.plots:
        from . import plot

        fig, axes = plot.figure_axes(None, ncols=3, size=(5.0, 4.4))
        ax = axes[0]
        ax.plot(X[:, 1], y, ".", color="0.7", markersize=3, label="data")
        grid = np.linspace(0, 2, 2)
        ax.plot(grid, w_star[0] + w_star[1] * grid, "k-", linewidth=3, label="closed form")
        for i, (label, res) in enumerate(results.items()):
            ax.plot(grid, res.x[0] + res.x[1] * grid, linewidth=1.5, label=label,
                    **plot.curve_style(i))
        ax.set(xlabel="x", ylabel="y", title="Fitted lines")
        ax.legend(fontsize="small")
        A = X.T @ X / y.size

        def excess(w):  # f(w) - f*, for arrays of points too
            d0, d1 = w[0] - w_star[0], w[1] - w_star[1]
            return 0.5 * (A[0, 0] * d0 * d0 + 2 * A[0, 1] * d0 * d1 + A[1, 1] * d1 * d1)

        plot.trajectories(excess, results, xlim=(-0.5, 5.5), ylim=(-0.5, 4.5),
                          minimum=w_star, ax=axes[1], title="Paths of (intercept, slope)")
        axes[1].set(xlabel="intercept $w_0$", ylabel="slope $w_1$")
        plot.distances(results, w_star, ax=axes[2], title="Distance to the closed form $w^*$")
        demo.figure("linreg", fig)
    return results


# ------------------------------------------------------------------- 4. digits

def digits(demo):
    """A 64-32-10 tanh network on the 8x8 digits: mini-batches, test accuracy per method."""
    try:
        X, y, X_test, y_test = problems.digits()
    except ImportError as e:
        demo.note(f"scenario 4 skipped: {e}")
        return None
    net = problems.MLP(64, 32, 10)
    epochs, batch = (5, 64) if demo.quick else (30, 64)
    results, rows, accuracy = {}, [], {}
    for label, (method, extra) in METHODS.items():
        lr = LR["digits"][label]
        res, sec = demo.minimize(net.loss, net.init(0), method,
                                 {"lr": lr, "batch_size": batch, "epochs": epochs, "seed": 0,
                                  "history": True, **extra}, args=(X, y))
        results[label] = res
        accuracy[label] = net.accuracy(res.x, X_test, y_test)
        rows.append((label, lr, res.fun, res.nit, sec, f"{100 * accuracy[label]:.1f} %"))
    demo.table(f"4. digits: {net.n} weights, {len(y)} training / {len(y_test)} test images, "
               f"batches of {batch}, {epochs} epochs (final loss on the whole training set)",
               rows, extra="test accuracy")
    if demo.plots:
        from . import plot

        per_epoch = -(-len(y) // batch)
        fig, axes = plot.figure_axes(None, ncols=2, size=(5.4, 4.2))
        series = {}
        for label, res in results.items():
            f = res.history["fun"][1:]
            k = len(f) // per_epoch
            series[label] = (np.arange(1, k + 1), f[:k * per_epoch].reshape(k, -1).mean(axis=1))
        plot.curves(series, xlabel="epoch", ylabel="mean mini-batch loss (cross-entropy)",
                    ax=axes[0], title="Training loss")
        axes[0].xaxis.get_major_locator().set_params(integer=True)
        ax = axes[1]  # a dot plot: no bars, so the axis need not start at zero
        names = list(accuracy)
        for i, k in enumerate(names):
            ax.plot(100 * accuracy[k], i, "o", markersize=9, **plot.curve_style(i))
            ax.annotate(f"{100 * accuracy[k]:.1f} %", (100 * accuracy[k], i), xytext=(9, 0),
                        textcoords="offset points", va="center", fontsize="small")
        low = min(100 * min(accuracy.values()), 90.0)
        ax.set_yticks(range(len(names)), names)
        ax.invert_yaxis()
        ax.set(xlabel=f"test accuracy [%] on {len(y_test)} held-out images", xlim=(low - 1, 100),
               title="Test accuracy")
        ax.grid(True, axis="x", alpha=0.3)
        demo.figure("digits", fig)
    return results


# --------------------------------------------------------- 5. matrix factorisation

def factorisation(demo):
    """Low-rank factorisation of sparse ratings: sparse row updates against dense steps."""
    if demo.quick:
        n_users, n_items, density, epochs = 1000, 500, 0.1, 3
    else:
        n_users, n_items, density, epochs = 4000, 2000, 0.025, 6
    rank, batch, l2 = 8, 1024, 1e-3
    train, test = problems.ratings(n_users, n_items, rank=5, density=density, seed=0)
    runs = {  # label: (optimizer, options, sparse rows?)
        "RMSprop, step_rows": (optimizer.RMSprop, {"lr": 3e-2}, True),
        "RMSprop, dense step": (optimizer.RMSprop, {"lr": 3e-2}, False),
        "AdaGrad, step_rows": (optimizer.AdaGrad, {"lr": 0.3}, True),
        "Adam, step_rows": (optimizer.Adam, {"lr": 3e-2}, True),
        "SGD, step_rows": (optimizer.SGD, {"lr": 100.0}, True),
    }
    rows, curves = [], {}
    for label, (cls, kw, sparse) in runs.items():
        history, sec, steps = train_factors(cls, kw, sparse, train, test, n_users, n_items,
                                            rank, batch, epochs, l2, demo)
        curves[label] = history
        rows.append((label, kw["lr"], history["loss"][-1], steps, sec,
                     f"{history['rmse'][-1]:.3f}"))
    demo.table(f"5. matrix factorisation: {n_users:,} users x {n_items:,} items, "
               f"{len(train[0]):,} ratings, rank {rank}, batches of {batch}, {epochs} epochs "
               f"(test RMSE of predicting the mean: {np.std(test[2]):.3f}, noise 0.1)",
               rows, extra="test RMSE")
    n_rows, width = (20_000, 32) if demo.quick else (200_000, 32)
    dense_ms, rows_ms = step_rows_benchmark(n_rows, width, batch, np.float32,
                                            repeats=10 if demo.quick else 50)
    demo.say(f"  one RMSprop update of a {n_rows:,} x {width} float32 embedding table, "
             f"{batch} rows per batch: dense step {dense_ms:.3f} ms, step_rows {rows_ms:.3f} ms "
             f"({dense_ms / rows_ms:.1f}x)")
    if demo.plots:
        from . import plot

        fig, axes = plot.figure_axes(None, ncols=2, size=(5.2, 4.0))
        plot.curves({k: (h["epoch"], h["rmse"]) for k, h in curves.items()}, xlabel="epoch",
                    ylabel="test RMSE", ax=axes[0], logy=False, title="Held-out ratings")
        plot.curves({k: (h["time"], h["rmse"]) for k, h in curves.items()},
                    xlabel="training time [s]", ylabel="test RMSE", ax=axes[1], logy=False,
                    title="Against training time")
        axes[1].get_legend().remove()
        axes[0].xaxis.get_major_locator().set_params(integer=True)
        for ax in axes:
            ax.axhline(0.1, color="k", linewidth=0.8, linestyle=":")
            ax.annotate("noise level", (0, 0.1), xytext=(2, 3), textcoords="offset points",
                        fontsize="small")
        fig.suptitle(f"Matrix factorisation, {n_users:,} x {n_items:,}, "
                     f"{len(train[0]):,} ratings")
        demo.figure("factorisation", fig)
    return curves


def train_factors(cls, kw, sparse, train, test, n_users, n_items, rank, batch, epochs, l2,
                  demo=None, seed=0, init=0.3):
    """Train ``U, V`` with one optimizer each; RMSE on ``test`` after every epoch.

    ``sparse`` uses :meth:`~rmsopt.Optimizer.step_rows` on the rows a batch touches; else
    the dense gradient (zeros elsewhere) goes through :meth:`~rmsopt.Optimizer.step`.
    Time covers training only, not the evaluations.
    """
    rng = np.random.default_rng(seed)
    U = init * rng.standard_normal((n_users, rank))
    V = init * rng.standard_normal((n_items, rank))
    opt_u, opt_v = cls(U, **kw), cls(V, **kw)
    users, items, values = train
    m = users.size
    history = {"epoch": [0], "time": [0.0], "rmse": [problems.rmse(U, V, *test)],
               "loss": [problems.factor_loss(U, V, *train, l2=l2)]}
    # compile outside the clock: one step of each kind on throwaway copies
    t0 = time.perf_counter()
    for p in (U.copy(), V.copy()):
        o = cls(p, **kw)
        o.step_rows([0], np.zeros((1, rank))) if sparse else o.step(np.zeros_like(p))
    if demo is not None:
        demo.compile_s += time.perf_counter() - t0
    elapsed, steps = 0.0, 0
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        order = rng.permutation(m)
        for start in range(0, m, batch):
            idx = order[start:start + batch]
            u, i = users[idx], items[idx]
            gu, gv = problems.factor_grad_rows(U, V, u, i, values[idx], l2)
            if sparse:
                opt_u.step_rows(u, gu)
                opt_v.step_rows(i, gv)
            else:
                opt_u.step(problems.dense_rows(U.shape, u, gu))
                opt_v.step(problems.dense_rows(V.shape, i, gv))
            steps += 1
        elapsed += time.perf_counter() - t0
        history["epoch"].append(epoch)
        history["time"].append(elapsed)
        history["rmse"].append(problems.rmse(U, V, *test))
        history["loss"].append(problems.factor_loss(U, V, *train, l2=l2))
    return history, elapsed, steps


def step_rows_benchmark(n_rows, width, batch, dtype=np.float64, repeats=100, seed=0):
    """Milliseconds per RMSprop update of a ``(n_rows, width)`` table: dense against rows.

    Both are measured side by side on the same table, best of ``repeats``: the dense
    :meth:`~rmsopt.Optimizer.step` with a full gradient, and
    :meth:`~rmsopt.Optimizer.step_rows` with ``batch`` random rows (duplicates included),
    gradients prepared beforehand.
    """
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((n_rows, width)).astype(dtype)
    dense_g = rng.standard_normal((n_rows, width)).astype(dtype)
    rows = rng.integers(0, n_rows, batch)
    rows_g = rng.standard_normal((batch, width)).astype(dtype)
    opt = optimizer.RMSprop(table, lr=1e-4)
    opt.step(dense_g)
    opt.step_rows(rows, rows_g)
    best = [np.inf, np.inf]
    for _ in range(repeats):
        for k, call in enumerate((lambda: opt.step(dense_g), lambda: opt.step_rows(rows, rows_g))):
            t0 = time.perf_counter()
            call()
            best[k] = min(best[k], time.perf_counter() - t0)
    return 1e3 * best[0], 1e3 * best[1]


# ------------------------------------------------------------------ 6. sensitivity

LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
RHOS = (0.5, 0.8, 0.9, 0.95, 0.99, 0.999)


def sensitivity(demo):
    """Final loss of RMSprop over lr x rho: on Rosenbrock and on the digits network."""
    steps = 500 if demo.quick else 2000
    lrs, rhos = (LRS[::2], RHOS[::2]) if demo.quick else (LRS, RHOS)
    t0 = time.perf_counter()
    rosen = np.full((len(rhos), len(lrs)), np.nan)
    for i, rho in enumerate(rhos):
        for j, lr in enumerate(lrs):
            x = np.array(problems.ROSENBROCK_START)
            opt = optimizer.RMSprop(x, lr=lr, rho=rho)
            for _ in range(steps):
                opt.step(problems.rosenbrock(x)[1])
            rosen[i, j] = problems.rosenbrock(x)[0]
    sec = time.perf_counter() - t0
    grids = {"rosenbrock": (rosen, f"Rosenbrock, {steps} steps: f(x)")}
    rows = [("RMSprop", f"{len(lrs) * len(rhos)} runs", np.nanmin(rosen), steps, sec)]
    best = np.unravel_index(np.nanargmin(rosen), rosen.shape)
    report = [f"Rosenbrock best lr={lrs[best[1]]:g}, rho={rhos[best[0]]:g}"]
    try:
        X, y, _, _ = problems.digits()
    except ImportError as e:
        demo.note(f"scenario 6 without the digits network: {e}")
    else:
        net = problems.MLP(64, 32, 10)
        epochs = 2 if demo.quick else 5
        t0 = time.perf_counter()
        loss = np.full_like(rosen, np.nan)
        for i, rho in enumerate(rhos):
            for j, lr in enumerate(lrs):
                res = minimize(net.loss, net.init(0), args=(X, y), method="rmsprop", jac=True,
                               options={"lr": lr, "rho": rho, "batch_size": 64,
                                        "epochs": epochs, "seed": 0})
                loss[i, j] = res.fun
        grids["digits"] = (loss, f"Digits network, {epochs} epochs: training loss")
        best = np.unravel_index(np.nanargmin(loss), loss.shape)
        rows.append(("RMSprop (digits)", f"{loss.size} runs", np.nanmin(loss), res.nit,
                     time.perf_counter() - t0))
        report.append(f"digits best lr={lrs[best[1]]:g}, rho={rhos[best[0]]:g}")
    demo.table("6. sensitivity of RMSprop to lr and rho (best cell of each grid; time for "
               "the whole grid)", rows)
    demo.say("  " + "; ".join(report))
    if demo.plots:
        from . import plot

        fig, axes = plot.figure_axes(None, ncols=len(grids), size=(5.6, 4.4))
        for ax, (values, title) in zip(axes, grids.values()):
            plot.heatmap(values, lrs, rhos, xlabel="learning rate lr", ylabel="rho (decay)",
                         title=title, ax=ax)
        demo.figure("sensitivity", fig, colors=None)
    return grids


# ------------------------------------------------------- 7 and 8. PyTorch training loops

#: The optimizers run side by side in :func:`torch_cnn`: label -> (class name, as in both
#: ``rmsopt.torch`` and ``torch.optim``, and the arguments given to both).
TORCH_OPTIMIZERS = {
    "RMSprop": ("RMSprop", {"lr": 1e-3}),
    "Adam": ("Adam", {"lr": 1e-3}),
    "SGD momentum": ("SGD", {"lr": 3e-2, "momentum": 0.9}),
}

#: Centered RMSprop with a large ``eps`` (as DQN's; Mnih et al. 2015) and ``alpha`` 0.9
#: (Keras' and TensorFlow's default decay): full-batch float32 training with it gives a
#: gradient coordinate that drifts so slowly that ``square_avg - grad_avg**2``, its
#: variance estimate, falls below its rounding error and comes out negative.
CENTERED = {"lr": 1e-3, "alpha": 0.9, "eps": 1e-2, "centered": True}


def torch_batches(X, y, batch, epochs, seed=0, dtype=None):
    """Mini-batches ``[(X_b, y_b), ...]`` as tensors, shuffled afresh every epoch.

    The list is made once, so that every optimizer trained on it sees the same batches in
    the same order. Integer targets (class labels) stay integer (int64).

    Parameters
    ----------
    X, y : ndarray
        Samples along axis 0.
    batch : int or None
        Samples per batch; None: the whole set each step (full batch, ``epochs`` steps).
    epochs : int
        Passes over the data.
    seed : int
        Seed of the shuffling.
    dtype : torch.dtype, optional
        Of the float arrays (default ``torch.float64``).
    """
    import torch

    dtype = torch.float64 if dtype is None else dtype

    def tensor(a):
        return torch.as_tensor(a, dtype=dtype if a.dtype.kind == "f" else torch.int64)

    if batch is None:
        full = (tensor(X), tensor(y))
        return [full] * epochs
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(epochs):
        order = rng.permutation(len(y))
        batches += [(tensor(X[idx]), tensor(y[idx]))
                    for idx in np.array_split(order, -(-len(y) // batch))]
    return batches


def torch_train(model, make_optimizer, batches, loss_fn, stop_at_nan=False, demo=None):
    """Train a copy of ``model``: one optimizer step per batch.

    Parameters
    ----------
    model : torch.nn.Module
        The initial weights; it is not changed (each run trains its own deep copy, so that
        runs compared side by side start from the same weights).
    make_optimizer : callable
        ``make_optimizer(parameters)`` returns the optimizer.
    batches : list of (inputs, targets)
        As :func:`torch_batches` makes them.
    loss_fn : callable
        ``loss_fn(model(inputs), targets)``, a scalar tensor.
    stop_at_nan : bool
        Check the parameters after every step and stop at the first step that leaves one
        of them NaN or infinite.
    demo : Demo, optional
        Its ``compile_s`` gets the time of a first, untimed step on a throwaway copy (Numba
        compiling rmsopt's kernel, or loading it from the cache).

    Returns
    -------
    dict
        ``loss``: the batch loss before each step (ndarray); ``nan_step``: the first step
        (from 1) after which a parameter was not finite, or None (always None without
        ``stop_at_nan``); ``seconds``: time of the loop; ``model``, ``optimizer``: the
        trained copy and its optimizer.
    """
    import copy

    import torch

    t0 = time.perf_counter()
    warm = copy.deepcopy(model)
    for p in warm.parameters():
        p.grad = torch.zeros_like(p)
    make_optimizer(warm.parameters()).step()
    if demo is not None:
        demo.compile_s += time.perf_counter() - t0
    model = copy.deepcopy(model)
    opt = make_optimizer(model.parameters())
    params = list(model.parameters())
    losses, nan_step = [], None
    t0 = time.perf_counter()
    for step, (inputs, targets) in enumerate(batches, 1):
        opt.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if stop_at_nan and not all(bool(torch.isfinite(p).all()) for p in params):
            nan_step = step
            break
    return {"loss": np.array(losses), "nan_step": nan_step,
            "seconds": time.perf_counter() - t0, "model": model, "optimizer": opt}


def side_by_side(model, name, kwargs, batches, loss_fn, demo=None, stop_at_nan=False):
    """:func:`torch_train` with ``rmsopt.torch.<name>`` and ``torch.optim.<name>``, the same
    arguments, initial weights and batches: ``{"rmsopt.torch": run, "torch.optim": run}``."""
    import torch

    from . import torch as rmsopt_torch

    return {lib: torch_train(model, lambda ps, cls=getattr(module, name): cls(ps, **kwargs),
                             batches, loss_fn, stop_at_nan=stop_at_nan, demo=demo)
            for lib, module in (("rmsopt.torch", rmsopt_torch), ("torch.optim", torch.optim))}


def largest_difference(runs):
    """``(loss, parameters)``: the largest absolute differences between the two runs of
    :func:`side_by_side`, over the steps both took and over the final parameters."""
    a, b = runs["rmsopt.torch"], runs["torch.optim"]
    n = min(len(a["loss"]), len(b["loss"]))
    loss = float(np.max(np.abs(a["loss"][:n] - b["loss"][:n]))) if n else 0.0
    params = max(float((p - q).detach().abs().max()) for p, q in
                 zip(a["model"].parameters(), b["model"].parameters()))
    return loss, params


def nan_cause(run):
    """Where a run of ``torch.optim.RMSprop(centered=True)`` (or rmsopt.torch's) turned a
    parameter NaN: ``(parameter name, index, square_avg - grad_avg**2 there)``, the
    variance estimate computed as torch does (``addcmul``, then ``sqrt``), or None if every
    parameter is finite."""
    import torch

    opt = run["optimizer"]
    for name, p in run["model"].named_parameters():
        bad = (~torch.isfinite(p)).nonzero()
        if len(bad):
            state = opt.state[p]
            var = torch.addcmul(state["square_avg"], state["grad_avg"], state["grad_avg"],
                                value=-1)
            index = tuple(bad[0].tolist())
            return name, index, float(var[index])
    return None


def centered_constant_gradient(steps, dtype=None, n=64):
    """Centered RMSprop (torch's defaults otherwise) under a constant gradient: ``n``
    coordinates with gradients log-spaced over 1e-3 ... 1e3, ``steps`` steps.

    The minimal case of :data:`CENTERED`'s failure: ``square_avg`` and ``grad_avg**2`` both
    tend to ``g**2``, their difference to 0, and rounding makes it negative for some
    values of ``g``. Returns ``{"rmsopt.torch": first NaN step or None, "torch.optim":
    ...}``.
    """
    import torch

    from . import torch as rmsopt_torch

    dtype = torch.float32 if dtype is None else dtype
    grad = torch.logspace(-3, 3, n, dtype=dtype)
    first = {}
    for lib, cls in (("rmsopt.torch", rmsopt_torch.RMSprop),
                     ("torch.optim", torch.optim.RMSprop)):
        p = torch.nn.Parameter(torch.zeros(n, dtype=dtype))
        opt = cls([p], centered=True)
        first[lib] = None
        for step in range(1, steps + 1):
            p.grad = grad.clone()
            opt.step()
            if not bool(torch.isfinite(p).all()):
                first[lib] = step
                break
    return first


class _OneTorchThread:
    """Run torch on one thread inside the block, then restore its thread count.

    These models are small: torch's per-operation threading costs more than it gains
    (measured on 2 cores, the digits CNN at full batch: 23 ms a step on one thread, 34 ms on
    two, and 195-260 ms on two while other processes kept the cores busy: its OpenMP
    workers spin waiting for work).
    """

    def __enter__(self):
        import torch

        self.before = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        import torch

        torch.set_num_threads(self.before)


def _torch_note(demo, number):
    """True if torch can be imported; otherwise a note that scenario ``number`` is skipped."""
    if _have("torch"):
        return True
    demo.note(f"scenario {number} skipped: PyTorch is not installed (pip install "
              '"rmsopt[torch]"; the CPU build is enough)')
    return False


def _centered_rows(runs):
    rows = []
    for lib, run in runs.items():
        nan = run["nan_step"]
        rows.append((f"centered, {lib}", CENTERED["lr"], run["loss"][-1], len(run["loss"]),
                     run["seconds"], f"NaN at {nan}" if nan else "finite"))
    return rows


def _say_nan(demo, runs, steps):
    torch_run = runs["torch.optim"]
    if torch_run["nan_step"] is None:
        demo.say(f"  torch.optim stayed finite for {steps} steps here (no variance estimate "
                 "rounded below zero)")
        return
    name, index, var = nan_cause(torch_run)
    demo.say(f"  torch.optim: step {torch_run['nan_step']} made {name}{list(index)} NaN: "
             f"square_avg - grad_avg**2 = {var:.2g} < 0 there, and torch takes its sqrt "
             "unclamped; rmsopt.torch clamps it at 0 and "
             + ("stays finite" if runs["rmsopt.torch"]["nan_step"] is None
                else f"also failed at step {runs['rmsopt.torch']['nan_step']}")
             + f" ({len(runs['rmsopt.torch']['loss'])} steps)")


def _figure(ncols, size=(5.0, 4.0)):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size[0] * ncols, size[1]), layout="constrained")
    return fig, list(np.atleast_1d(fig.subplots(1, ncols)))


def _pair_curves(ax, series, ylabel, title, logy=True):
    """Each optimizer's two runs in one colour: torch.optim a thick pale line, rmsopt.torch
    a thin dark one on top (they coincide where the implementations agree)."""
    for i, (label, runs) in enumerate(series.items()):
        color = f"C{i}"
        for lib, width, alpha in (("torch.optim", 4.0, 0.35), ("rmsopt.torch", 1.2, 1.0)):
            y = runs[lib]["loss"]
            ax.plot(np.arange(1, len(y) + 1), y, color=color, linewidth=width, alpha=alpha,
                    label=f"{label}, {lib}")
    ax.set(xlabel="step", ylabel=ylabel, title=title)
    if logy:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


def _difference_panel(ax, series, dtype_name):
    for i, (label, runs) in enumerate(series.items()):
        a, b = runs["rmsopt.torch"]["loss"], runs["torch.optim"]["loss"]
        d = np.abs(a - b)
        steps = np.arange(1, len(d) + 1)
        keep = d > 0
        ax.plot(steps[keep], d[keep], ".", markersize=3, color=f"C{i}", label=label)
        if not keep.all():
            ax.plot(steps[~keep], np.full((~keep).sum(), 1e-18), "|", color=f"C{i}")
    ax.set_yscale("log")
    ax.set_ylim(5e-19, None)
    ax.set(xlabel="step", ylabel="|loss(rmsopt.torch) - loss(torch.optim)|",
           title=f"Difference per step ({dtype_name}; bottom ticks: 0)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


def _centered_panel(ax, runs, title):
    for lib, color, width, alpha in (("torch.optim", "C3", 4.0, 0.45),
                                     ("rmsopt.torch", "C0", 1.2, 1.0)):
        y = runs[lib]["loss"]
        ax.plot(np.arange(1, len(y) + 1), y, color=color, linewidth=width, alpha=alpha,
                label=lib)
    nan = runs["torch.optim"]["nan_step"]
    if nan:
        ax.axvline(nan, color="C3", linewidth=0.8, linestyle="--")
        ax.annotate(f"torch.optim: NaN\nafter step {nan}", (nan, 1), xycoords=("data",
                    "axes fraction"), xytext=(-4, -4), textcoords="offset points", ha="right",
                    va="top", fontsize="small", color="C3")
    ax.set(xlabel="step", ylabel="loss (full batch)", title=title)
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="lower left")


def _torch_cnn(demo):
    try:
        X, y, X_test, y_test = problems.digits()
    except ImportError as e:
        demo.note(f"scenario 7 skipped: {e}")
        return None
    import torch
    import torch.nn.functional as F

    epochs = 1 if demo.quick else 10
    model = problems.digits_cnn(seed=0)
    batches = torch_batches(X, y, 64, epochs, seed=0)
    results, rows = {}, []
    for label, (name, kwargs) in TORCH_OPTIMIZERS.items():
        runs = side_by_side(model, name, kwargs, batches, F.cross_entropy, demo=demo)
        results[label] = runs
        for lib, run in runs.items():
            with torch.no_grad():
                scores = run["model"](torch.as_tensor(X_test))
            run["accuracy"] = float((scores.argmax(1).numpy() == y_test).mean())
            rows.append((f"{label}, {lib}", kwargs["lr"], run["loss"][-1], len(run["loss"]),
                         run["seconds"], f"{100 * run['accuracy']:.1f} %"))
    demo.table(f"7a. PyTorch CNN on the digits ({sum(p.numel() for p in model.parameters()):,} "
               f"weights), float64, batches of 64, {epochs} epoch{'s' if epochs > 1 else ''}: "
               "rmsopt.torch next to torch.optim, the same initial weights and batches "
               "(final loss: the last batch's)", rows, extra="test accuracy")
    for label, runs in results.items():
        loss, params = largest_difference(runs)
        demo.say(f"  {label}: largest difference over {len(batches)} steps: loss {loss:.1e}, "
                 f"parameters at the end {params:.1e}")
    centered = None
    if demo.quick:
        demo.say("  7b (float32, full batch, centered RMSprop: torch's NaN) runs without --quick")
    else:
        steps = 1000
        model32 = problems.digits_cnn(seed=0, dtype=torch.float32)
        full = torch_batches(X, y, None, steps, dtype=torch.float32)
        centered = side_by_side(model32, "RMSprop", CENTERED, full, F.cross_entropy, demo=demo,
                                stop_at_nan=True)
        demo.table(f"7b. the same CNN, float32, full batch ({len(y)} images), up to {steps} "
                   f"steps of centered RMSprop {CENTERED}", _centered_rows(centered),
                   extra="parameters")
        _say_nan(demo, centered, steps)
    if demo.plots:
        fig, axes = _figure(2 if centered is None else 3)
        _pair_curves(axes[0], results, "mini-batch loss (cross-entropy)",
                     "Digits CNN, float64")
        _difference_panel(axes[1], results, "float64")
        if centered is not None:
            _centered_panel(axes[2], centered, "float32, full batch, centered RMSprop")
        demo.figure("torch_cnn", fig)
    return {"float64": results, "centered": centered}


def _torch_rnn(demo):
    import torch
    import torch.nn.functional as F

    length = 10
    X, y = problems.adding_problem(1024, length, seed=0)
    model = problems.adding_rnn(hidden=16, seed=0)
    epochs = 1 if demo.quick else 20
    batches = torch_batches(X, y, 32, epochs, seed=0)
    results = {"RMSprop": side_by_side(model, "RMSprop", {"lr": 1e-3}, batches, F.mse_loss,
                                       demo=demo)}
    rows = [(f"RMSprop, {lib}", 1e-3, run["loss"][-1], len(run["loss"]), run["seconds"])
            for lib, run in results["RMSprop"].items()]
    demo.table(f"8a. PyTorch GRU on the adding problem (sequences of {length}, "
               f"{sum(p.numel() for p in model.parameters()):,} weights), float64, batches of "
               f"32, {epochs} epoch{'s' if epochs > 1 else ''} (MSE; predicting the mean: "
               f"{y.var():.3f})", rows)
    loss, params = largest_difference(results["RMSprop"])
    demo.say(f"  RMSprop: largest difference over {len(batches)} steps: loss {loss:.1e}, "
             f"parameters at the end {params:.1e}")
    steps = 300 if demo.quick else 1500
    model32 = problems.adding_rnn(hidden=16, seed=0, dtype=torch.float32)
    full = torch_batches(X[:64], y[:64], None, steps, dtype=torch.float32)
    centered = side_by_side(model32, "RMSprop", CENTERED, full, F.mse_loss, demo=demo,
                            stop_at_nan=True)
    demo.table(f"8b. the same GRU, float32, full batch (64 sequences), up to {steps} steps of "
               f"centered RMSprop {CENTERED}", _centered_rows(centered),
               extra="parameters")
    _say_nan(demo, centered, steps)
    constant_steps = 1500 if demo.quick else 10_000
    t0 = time.perf_counter()
    constant = centered_constant_gradient(constant_steps)
    demo.say(f"  the minimal case: a constant gradient (64 values from 1e-3 to 1e3), float32, "
             f"torch's defaults with centered=True, {constant_steps} steps: torch.optim NaN at "
             f"step {constant['torch.optim']}, rmsopt.torch "
             + ("finite" if constant["rmsopt.torch"] is None
                else f"NaN at step {constant['rmsopt.torch']}")
             + f" ({time.perf_counter() - t0:.1f} s)")
    if demo.plots:
        fig, axes = _figure(3)
        _pair_curves(axes[0], results, "mini-batch loss (MSE)",
                     "Adding problem, GRU, float64")
        axes[0].axhline(y.var(), color="k", linewidth=0.8, linestyle=":")
        axes[0].annotate("predicting the mean", (0, y.var()), xycoords=("axes fraction", "data"),
                         xytext=(3, 3), textcoords="offset points", fontsize="small")
        _difference_panel(axes[1], results, "float64")
        _centered_panel(axes[2], centered, "float32, full batch, centered RMSprop")
        demo.figure("torch_rnn", fig)
    return {"float64": results, "centered": centered, "constant": constant}


def torch_cnn(demo):
    """A small CNN on the digits with ``rmsopt.torch`` next to ``torch.optim``.

    (a) float64 mini-batches, RMSprop, Adam and SGD with momentum, each from the same
    initial weights and batches in both libraries: the losses agree to rounding. (b),
    without ``--quick``: full-batch float32 training with :data:`CENTERED`, where torch's
    centered RMSprop turns NaN and rmsopt's stays finite. Returns ``{"float64": {label:
    runs}, "centered": runs or None}`` (runs as :func:`side_by_side` returns them), or None
    when torch or scikit-learn is missing.
    """
    if not _torch_note(demo, 7):
        return None
    with _OneTorchThread():
        return _torch_cnn(demo)


def torch_rnn(demo):
    """A GRU on the adding problem with ``rmsopt.torch`` next to ``torch.optim``.

    (a) float64 mini-batches with RMSprop: the losses agree to rounding. (b) float32, full
    batch, :data:`CENTERED`: torch's centered RMSprop turns NaN, rmsopt's stays finite;
    and the minimal case behind it, :func:`centered_constant_gradient`. Returns
    ``{"float64": {"RMSprop": runs}, "centered": runs, "constant": first NaN steps}``, or
    None without torch.
    """
    if not _torch_note(demo, 8):
        return None
    with _OneTorchThread():
        return _torch_rnn(demo)


RUNNERS = {"2d": two_d, "highdim": high_dim, "linreg": linear_regression, "digits": digits,
           "factorisation": factorisation, "sensitivity": sensitivity, "torch-cnn": torch_cnn,
           "torch-rnn": torch_rnn}


def run(out="rmsopt-demo", quick=False, only=None, plots=True, stream=None):
    """Run the scenarios (all, or those named in ``only``), print tables, write figures.

    Returns the :class:`Demo` (its ``figures`` lists the PNG paths written).
    """
    names = list(SCENARIOS) if not only else list(only)
    unknown = [n for n in names if n not in RUNNERS]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; choose from "
                         f"{', '.join(SCENARIOS)}")
    demo = Demo(out, quick=quick, plots=plots, stream=stream)
    t0 = time.perf_counter()
    for name in names:
        demo.results[name] = RUNNERS[name](demo)
    total = time.perf_counter() - t0
    demo.say(f"\nTotal {total:.1f} s, of which {demo.compile_s:.1f} s compiling kernels "
             "(first use of each method; not in the times above).")
    if demo.figures:
        demo.say(f"{len(demo.figures)} figures in {demo.out.resolve()}:")
        for path in demo.figures:
            demo.say(f"  {Path(path).name}")
    return demo
