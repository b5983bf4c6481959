"""Ratios measured side by side in one process: figures that survive a noisy machine.

An absolute time on a shared machine moves with whatever its neighbours do; a ratio of
two contenders timed in interleaved rounds (:func:`rmsopt.bench.best_interleaved`: each
round times every contender once, so a disturbance hits them alike) moves much less.

* ``StepOverFloor.track_step_over_floor``: one ``RMSprop.step`` over the same-traffic floor
  kernel (:func:`rmsopt.bench.floor_step`); 1.0 means the step runs at the memory's speed.
  ``time_step`` is the same step's absolute time, kept beside it to show the difference.
* ``TorchOverRmsopt.track_rmsopt_over_torch``: rmsopt's step over ``torch.optim.RMSprop``'s
  (below 1: rmsopt is faster); skipped where torch is not installed.
* ``MinimizeOverLoop.track_minimize_over_handwritten``: ``minimize`` at 1e6 variables over the
  hand-written ``f, g = fun(x); opt.step(g)`` loop with the same ``fun`` (Python, or ``@njit``
  for ``track_njit_minimize_over_handwritten``); 1.0 means ``minimize`` adds nothing.

Every ratio here is "rmsopt over a reference", so higher is worse, as asv's regression
detection assumes.

Peak memory (``peakmem_*``, and the extra buffers of ``minimize``) is in :mod:`bench_minimize`
(``Scale``). Everything here uses only helpers of :mod:`rmsopt.bench`, which older commits
have too; a commit that lacks one skips the benchmark instead of failing.
"""

import numpy as np

import rmsopt
from rmsopt import bench

N = 1_000_000
REPEATS = 40
BUDGET = 3.0
VARIANTS = ["plain", "centered", "momentum"]
DTYPES = ["float32", "float64"]


def _helper(name):
    """``rmsopt.bench.<name>``, or NotImplementedError (asv's skip) where this commit lacks it."""
    try:
        return getattr(bench, name)
    except AttributeError as e:
        raise NotImplementedError(f"rmsopt.bench.{name} is missing at this commit") from e


def step_contenders(variant, dtype, n=N):
    """``{"rmsopt": step, "floor": kernel}``: callables for one step of ``variant`` at ``n``.

    Parameters
    ----------
    variant : str
        A key of :data:`rmsopt.bench.VARIANTS` (``plain``, ``centered``, ``momentum``).
    dtype : str
        ``float32`` or ``float64``.
    n : int
        Number of parameters.

    Returns
    -------
    dict
        ``rmsopt``: ``RMSprop.step`` on its own arrays; ``floor``: the kernel with the
        same memory traffic on arrays of its own.
    """
    floor_step = _helper("floor_step")
    kw = _helper("VARIANTS")[variant]
    dtype = np.dtype(dtype)
    x, g = np.ones(n, dtype), np.full(n, 0.5, dtype)
    opt = rmsopt.RMSprop(x, lr=1e-3, rho=0.9, eps=1e-8, **kw)
    fx, fg = np.ones(n, dtype), np.full(n, 0.5, dtype)
    states = [np.zeros(n, dtype) for _ in range(1 + len(kw))]
    return {"rmsopt": lambda: opt.step(g), "floor": lambda: floor_step(fx, fg, states)}


def interleaved_ratio(fns, numerator, denominator, repeats=None, budget=None):
    """Best time of ``fns[numerator]`` over best time of ``fns[denominator]``, timed in rounds.

    Parameters
    ----------
    fns : dict
        Name -> callable; all of them are timed, interleaved.
    numerator, denominator : str
        Keys of ``fns``.
    repeats : int, optional
        Most rounds (default :data:`REPEATS`).
    budget : float, optional
        Seconds after which no new round starts (default :data:`BUDGET`).

    Returns
    -------
    float
        The ratio of the two minimum times.
    """
    best = _helper("best_interleaved")(fns, REPEATS if repeats is None else repeats,
                                        BUDGET if budget is None else budget)
    return best[numerator] / best[denominator]


class StepOverFloor:
    """One RMSprop step at 1e6 elements over the same-traffic floor kernel, on 1 and 2 threads
    (both run on as many threads as each other).

    On a shared 2-core machine the 1-thread ratio is the steadier one: a 2-thread kernel
    waits for whichever of its threads a neighbour's process delayed.
    """

    params = (VARIANTS, DTYPES, [1, 2])
    param_names = ["variant", "dtype", "threads"]
    timeout = 120

    def setup(self, variant, dtype, threads):
        import numba

        if threads > numba.config.NUMBA_NUM_THREADS:
            raise NotImplementedError("not enough cores")
        numba.set_num_threads(threads)
        self.fns = step_contenders(variant, dtype)
        for fn in self.fns.values():
            fn()  # compiles

    def track_step_over_floor(self, variant, dtype, threads):
        return interleaved_ratio(self.fns, "rmsopt", "floor")

    track_step_over_floor.unit = "ratio"

    def time_step(self, variant, dtype, threads):
        self.fns["rmsopt"]()


class TorchOverRmsopt:
    """rmsopt's step over ``torch.optim.RMSprop``'s at 1e6 elements; skipped without torch."""

    params = (VARIANTS, DTYPES)
    param_names = ["variant", "dtype"]
    timeout = 120

    def setup(self, variant, dtype):
        kw = _helper("VARIANTS")[variant]
        torch_step = _helper("torch_step")(N, np.dtype(dtype), kw)
        if torch_step is None:
            raise NotImplementedError("torch is not installed")
        self.fns = {"rmsopt": step_contenders(variant, dtype)["rmsopt"], "torch": torch_step}
        for fn in self.fns.values():
            fn()

    def track_rmsopt_over_torch(self, variant, dtype):
        return interleaved_ratio(self.fns, "rmsopt", "torch")

    track_rmsopt_over_torch.unit = "ratio"


class MinimizeOverLoop:
    """``minimize`` over the hand-written loop, ``ITERATIONS`` RMSprop iterations of a quadratic
    at 1e6 variables (``jac=True``), both timed whole: set-up included, about one iteration's
    worth for either, so the ratio is close to the per-iteration one without the noise of a
    difference of two times."""

    ITERATIONS = 10
    params = (DTYPES,)
    param_names = ["dtype"]
    timeout = 180

    def setup(self, dtype):
        contenders = _helper("scale_contenders")(N, np.dtype(dtype), self.ITERATIONS)
        self.runs = {k: contenders[k] for k in ("minimize", "hand-written", "minimize @njit",
                                                "hand-written @njit")}
        for run in self.runs.values():
            run()  # compiles

    def _ratio(self, suffix):
        names = ("minimize" + suffix, "hand-written" + suffix)
        return interleaved_ratio({k: self.runs[k] for k in names}, *names,
                                 repeats=min(15, REPEATS))

    def track_minimize_over_handwritten(self, dtype):
        return self._ratio("")

    def track_njit_minimize_over_handwritten(self, dtype):
        return self._ratio(" @njit")

    track_minimize_over_handwritten.unit = "ratio"
    track_njit_minimize_over_handwritten.unit = "ratio"
