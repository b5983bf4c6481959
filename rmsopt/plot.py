"""Figures from optimizer runs (needs matplotlib: ``pip install "rmsopt[plot]"``).

Every function draws into a new :class:`matplotlib.figure.Figure` (or the ``ax`` given)
and returns the figure; pyplot is not used, so nothing depends on a GUI backend.
Runs are given as a ``{label: OptimizeResult}`` dict from :func:`rmsopt.minimize` with
``options={"history": True}`` (and ``"return_all": True`` for trajectories).

>>> import rmsopt, rmsopt.plot
>>> from rmsopt.problems import rosenbrock
>>> runs = {m: rmsopt.minimize(rosenbrock, [-1.5, 2.0], method=m, jac=True,
...                            options={"lr": 1e-3, "maxiter": 300, "return_all": True})
...         for m in ("sgd", "rmsprop")}
>>> fig = rmsopt.plot.convergence(runs)
>>> fig = rmsopt.plot.trajectories(rosenbrock, runs, xlim=(-2, 2), ylim=(-1, 3), minimum=(1, 1))
>>> fig = rmsopt.plot.distances(runs, minimum=(1, 1))
>>> fig.savefig("rosenbrock.png")  # doctest: +SKIP
"""

import numpy as np

#: Line styles cycled through by every plot, readable in greyscale too.
STYLES = ("-", "--", "-.", ":")


def _matplotlib():
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError('rmsopt.plot needs matplotlib: pip install "rmsopt[plot]" '
                          "(or pip install matplotlib)") from e
    return matplotlib, Figure


def figure_axes(ax, ncols=1, size=(6.4, 4.2)):
    """``(fig, [axes])``: the figure of the axes ``ax`` given, or a new figure of ``ncols``
    axes, each ``size`` inches (matplotlib's object API, no pyplot state)."""
    if ax is not None:
        axes = list(np.atleast_1d(ax))
        return axes[0].figure, axes
    _, Figure = _matplotlib()
    fig = Figure(figsize=(size[0] * ncols, size[1]), layout="constrained")
    return fig, list(np.atleast_1d(fig.subplots(1, ncols)))


def curve_style(i):
    """Line style of the ``i``-th curve: matplotlib's colour cycle, then dashes."""
    import matplotlib

    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    return {"color": colors[i % len(colors)], "linestyle": STYLES[(i // len(colors)) % 4]}


def _history(label, res):
    h = getattr(res, "history", None) if not isinstance(res, dict) else res.get("history")
    if h is None:
        raise ValueError(f"run {label!r} has no history: minimize with "
                         'options={"history": True}')
    return h


def curves(series, *, xlabel, ylabel, logx=False, logy=True, ax=None, title=None):
    """Lines ``{label: (x, y)}`` on one axes, log-scaled y by default.

    Non-positive values are dropped from log axes rather than bent to a floor.
    """
    fig, (ax,) = figure_axes(ax)
    for i, (label, (x, y)) in enumerate(series.items()):
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        keep = np.isfinite(y) & ((y > 0) if logy else True)
        ax.plot(x[keep], y[keep], label=label, linewidth=1.6, **curve_style(i))
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    if title:
        ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def convergence(results, *, against="iteration", fun_min=None, ax=None, title=None):
    r"""Objective and gradient max-norm against iteration or elapsed time, side by side.

    Parameters
    ----------
    results : dict of str -> OptimizeResult
        Runs with a ``history`` (``options={"history": True}``).
    against : {"iteration", "time"}
        The x axis.
    fun_min : float, optional
        The known minimum :math:`f^*`: plots :math:`f - f^*` instead of :math:`f`.
    ax : pair of Axes, optional
        Where to draw (a new figure otherwise).
    title : str, optional
        Figure title.
    """
    if against not in ("iteration", "time"):
        raise ValueError(f"against must be 'iteration' or 'time', got {against!r}")
    fig, axes = figure_axes(ax, ncols=2, size=(5.2, 4.0))
    fs, gs = {}, {}
    for label, res in results.items():
        h = _history(label, res)
        x = np.arange(len(h["fun"])) if against == "iteration" else h["time"]
        fs[label] = (x, h["fun"] - (fun_min or 0.0))
        gs[label] = (x, h["grad_norm"])
    xlabel = "iteration" if against == "iteration" else "time [s]"
    curves(fs, xlabel=xlabel, ylabel="f(x) - f*" if fun_min is not None else "f(x)",
           ax=axes[0])
    curves(gs, xlabel=xlabel, ylabel="max |gradient|", ax=axes[1])
    axes[1].get_legend().remove()
    if title:
        fig.suptitle(title)
    return fig


def trajectories(fun, results, *, xlim, ylim, minimum=None, levels=18, mark_every=None, ax=None,
                 title=None):
    """Paths of 2-D runs over log-spaced contour lines of ``fun``.

    Parameters
    ----------
    fun : callable
        ``fun(x)`` returning ``f`` or ``(f, g)``; called on an array of shape
        ``(2, ny, nx)`` if it accepts one, else point by point.
    results : dict of str -> OptimizeResult
        Runs with ``allvecs`` (``options={"return_all": True}``).
    xlim, ylim : (float, float)
        The window.
    minimum : (float, float), optional
        Marked with a star.
    mark_every : int, optional
        Put a dot on each path every this many iterations, to show its speed.
    """
    fig, (ax,) = figure_axes(ax, size=(6.4, 5.0))
    xs, ys = np.linspace(*xlim, 300), np.linspace(*ylim, 300)
    X, Y = np.meshgrid(xs, ys)
    Z = _grid_values(fun, X, Y)
    positive = Z[Z > 0]
    lo, hi = positive.min(), Z.max()
    ax.contour(X, Y, Z, levels=np.geomspace(max(lo, hi * 1e-7), hi, levels), colors="0.6",
               linewidths=0.7)
    n = len(results)
    for i, (label, res) in enumerate(results.items()):
        path = np.asarray(_allvecs(label, res))
        style = curve_style(i)
        # earlier paths drawn wider, so that paths lying on top of each other stay visible
        ax.plot(path[:, 0], path[:, 1], label=label, linewidth=1.2 + 2.4 * (n - 1 - i) / max(n, 2),
                alpha=0.9, **style)
        ax.plot(*path[-1], "o", color=style["color"], markersize=7, markeredgecolor="white")
        if mark_every:
            ax.plot(path[mark_every::mark_every, 0], path[mark_every::mark_every, 1], "o",
                    color=style["color"], markersize=3.5, markeredgecolor="white",
                    markeredgewidth=0.5)
    start = np.asarray(_first(results))
    ax.plot(*start, "ks", markersize=6, label="start")
    ax.plot([], [], "o", color="0.4", markeredgecolor="white", markersize=7, label="end")
    if mark_every:
        ax.plot([], [], "o", color="0.4", markeredgecolor="white", markersize=3.5,
                label=f"every {mark_every} iterations")
    if minimum is not None:
        ax.plot(*minimum, "k*", markersize=12, label="minimum")
    ax.set(xlim=xlim, ylim=ylim, xlabel="$x_1$", ylabel="$x_2$")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small", loc="best")
    return fig


def distances(results, minimum, *, mark_every=None, ax=None, title=None):
    r"""Distance to the minimum per iteration, :math:`\lVert x_k - x^* \rVert_2`, log-scaled.

    Paths that lie on top of each other in :func:`trajectories` separate here: a run that
    reaches :math:`10^{-16}` and one that stalls at :math:`10^{-3}` look alike on a contour
    plot and are orders of magnitude apart on this one.

    Parameters
    ----------
    results : dict of str -> OptimizeResult
        Runs with ``allvecs`` (``options={"return_all": True}``).
    minimum : array_like
        The minimiser :math:`x^*`.
    mark_every : int, optional
        Put a dot on each line every this many iterations (as on the paths).
    """
    minimum = np.asarray(minimum, dtype=float)
    series = {}
    for label, res in results.items():
        path = np.asarray(_allvecs(label, res), dtype=float)
        series[label] = (np.arange(len(path)), np.linalg.norm(path - minimum, axis=1))
    fig = curves(series, xlabel="iteration", ylabel="distance to the minimum $|x - x^*|$",
                 ax=ax, title=title)
    if mark_every:
        ax = fig.axes[0] if ax is None else np.atleast_1d(ax)[0]
        for i, (k, d) in enumerate(series.values()):
            keep = slice(mark_every, None, mark_every)
            ax.plot(k[keep], d[keep], "o", color=curve_style(i)["color"], markersize=3.5,
                    markeredgecolor="white", markeredgewidth=0.5)
    return fig


def _allvecs(label, res):
    path = getattr(res, "allvecs", None) if not isinstance(res, dict) else res.get("allvecs")
    if path is None:
        raise ValueError(f"run {label!r} has no allvecs: minimize with "
                         'options={"return_all": True}')
    return path


def _first(results):
    res = next(iter(results.values()))
    return (res.allvecs if not isinstance(res, dict) else res["allvecs"])[0]


def _grid_values(fun, X, Y):
    def value(out):
        return out[0] if isinstance(out, tuple) else out

    try:
        Z = np.asarray(value(fun(np.stack([X, Y]))), dtype=float)
        if Z.shape == X.shape:
            return Z
    except Exception:  # noqa: BLE001  not vectorised: evaluate point by point below
        pass
    return np.array([[float(value(fun(np.array([x, y])))) for x, y in zip(rx, ry)]
                     for rx, ry in zip(X, Y)])


def heatmap(values, xs, ys, *, xlabel, ylabel, title=None, ax=None, log=True, fmt="{:.2g}",
            colorbar="final loss", lower_is_better=True):
    """A grid of results (``values[i, j]`` at ``ys[i]``, ``xs[j]``), annotated, best cell boxed.

    Non-finite cells (diverged runs) are drawn grey and labelled "diverged".
    """
    matplotlib, _ = _matplotlib()
    fig, (ax,) = figure_axes(ax, size=(6.4, 4.6))
    v = np.asarray(values, dtype=float)
    finite = np.isfinite(v)
    norm = None
    if log and np.any(finite & (v > 0)):
        pos = v[finite & (v > 0)]
        norm = matplotlib.colors.LogNorm(vmin=pos.min(), vmax=pos.max())
    cmap = matplotlib.colormaps["viridis_r" if lower_is_better else "viridis"].with_extremes(
        bad="0.8")
    shown = np.where(finite & ((v > 0) if log else True), v, np.nan)
    im = ax.imshow(shown, cmap=cmap, norm=norm, aspect="auto", origin="lower")
    ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs])
    ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys])
    ax.set(xlabel=xlabel, ylabel=ylabel)
    for i in range(v.shape[0]):
        for j in range(v.shape[1]):
            text = fmt.format(v[i, j]) if finite[i, j] else "diverged"
            dark = finite[i, j] and im.norm(v[i, j]) > 0.55
            ax.text(j, i, text, ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")
    if np.any(finite):
        score = np.where(finite, v if lower_is_better else -v, np.inf)
        i, j = np.unravel_index(np.argmin(score), v.shape)
        ax.add_patch(matplotlib.patches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False,
                                                  edgecolor="red", linewidth=2))
    fig.colorbar(im, ax=ax, label=colorbar)
    if title:
        ax.set_title(title)
    return fig


def effective_lr(nu, lr, eps, labels, *, ax=None, title=None):
    r"""RMSprop's per-parameter step factor :math:`\eta / (\sqrt{\nu_t} + \epsilon)` over time.

    Parameters
    ----------
    nu : array, shape (steps, n)
        The state ``opt.state["nu"]`` after each step.
    lr, eps : float
        The optimizer's :math:`\eta` and :math:`\epsilon`.
    labels : list of str
        One per parameter.
    """
    nu = np.asarray(nu, dtype=float)
    rates = lr / (np.sqrt(nu) + eps)
    steps = np.arange(1, len(nu) + 1)
    fig = curves({lab: (steps, rates[:, k]) for k, lab in enumerate(labels)}, xlabel="step",
                 ylabel=r"effective learning rate $\eta / (\sqrt{\nu} + \epsilon)$", ax=ax,
                 title=title)
    fig.axes[0].axhline(lr, color="k", linewidth=0.8, linestyle=":")
    fig.axes[0].annotate(rf"$\eta$ = {lr:g}", (steps[-1], lr), ha="right", va="bottom",
                         fontsize="small")
    return fig


def save(fig, path, dpi=100, colors=256):
    """Write ``fig`` as a compact PNG (a palette of ``colors``, no dithering); return the path.

    A palette image of a line plot is a third of the size of the RGBA one and looks the
    same, which keeps committed gallery images small. ``colors=None`` keeps full colour
    (for smooth colour maps).
    """
    import io

    from PIL import Image  # a dependency of matplotlib

    if colors is None:
        fig.savefig(path, dpi=dpi, facecolor="white", pil_kwargs={"optimize": True})
        return path
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    buffer.seek(0)
    image = Image.open(buffer).convert("RGB")
    none = getattr(Image, "Dither", Image).NONE
    # method 2 (fast octree) keeps the few saturated line colours apart; median cut merges them
    image.quantize(colors=colors, method=2, dither=none).save(path, optimize=True)
    return path
