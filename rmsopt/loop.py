"""The minimize engine: one loop for every method and kind of array, its options and results.

:func:`run` is the iteration (evaluate ``f, g`` at ``x``; stop if converged; step; project onto
the bounds; repeat) with scipy's statuses and results, progress, callbacks, mini-batches and
Ctrl-C. How ``x`` is evaluated, stepped, kept and restored is a *steps* strategy, an object with

* ``copy(x)``: a copy of ``x`` for the caller (``allvecs``, callbacks);
* ``evaluate(objective, x, bounds) -> (f, g, gnorm)``: ``f``, the gradient and its max-norm
  (projected onto the bounds);
* ``step(x, g, lr, bounds) -> x``: one optimizer step from ``x``, projected; the new iterate;
* ``keep(x)``: ``x`` as the previous iterate (restored on a non-finite value);
* ``restore(x, saved) -> x``: ``saved`` as the iterate again;
* ``overwrites(a, x)``: whether the next step overwrites ``a`` (the best iterate);
  ``hold(a)``: a copy of ``a`` that survives it;
* ``batches(batches)``: the mini-batch stream as the objective takes it; ``batch_types``:
  the array types that mini-batches slice.

:class:`TwoBuffers` (NumPy), :class:`InPlace` (CUDA) and :class:`rmsopt.dask.Rebinding`
implement it. :func:`rmsopt.minimize` is the scipy front door that builds the optimizer,
the objective and the strategy, then calls :func:`run`; :mod:`rmsopt.compiled` runs the
same iterations in nopython chunks with the stop test of this module (:func:`stop_test`).
"""

import inspect
import math
import numbers
import time
import warnings

import numpy as np
from numba import njit, prange

from . import _config
from . import backend as _backend
from . import optimizer as _opt
from ._kernels.cache import cached
from .hyper import count, learning_rate, real

SUCCESS, MAXITER, FTOL, NONFINITE, INTERRUPTED, EPOCHS, CALLBACK_STOP = 0, 1, 2, 3, 4, 5, 99
CONTINUE = -1  # (stop_test: no reason to stop)
STATUS_MESSAGES = {
    SUCCESS: "Optimization terminated successfully: gradient norm <= gtol.",
    MAXITER: "Maximum number of iterations has been exceeded.",
    FTOL: "Optimization terminated successfully: relative reduction of f <= ftol.",
    NONFINITE: "Stopped: the objective or its gradient became non-finite; returning the last "
               "finite iterate.",
    INTERRUPTED: "Interrupted by the user (KeyboardInterrupt); returning the best finite iterate.",
    EPOCHS: "Completed the requested number of epochs.",
    CALLBACK_STOP: "`callback` raised `StopIteration`.",
}
_SUCCESSFUL = (SUCCESS, FTOL, EPOCHS)

# Options of the loop itself (the rest belong to the optimizer).
LOOP_OPTIONS = ("maxiter", "gtol", "ftol", "disp", "return_all", "history", "batch_size",
                "epochs", "seed", "data", "tol", "progress", "compiled")


def x0_dtype_and_shape(x):
    """scipy's rules for x0, on a NumPy or dask array: integers become float64, 0-d becomes
    1-d; float16, complex, non-numeric and 2-d arrays are a ValueError naming x0."""
    if x.dtype.kind in "iub":
        x = x.astype(np.float64)
    elif x.dtype == np.float16:
        raise ValueError("x0 has dtype float16; use float32 or float64")
    elif x.dtype.kind != "f" or x.dtype.itemsize > 8:
        raise ValueError(f"x0 must be a real float or integer array, got dtype {x.dtype}")
    if x.ndim == 0:
        x = x.reshape(1)
    if x.ndim != 1:
        raise ValueError(f"'x0' must only have one dimension, got shape {x.shape}.")
    return x


def _scipy_result(**fields):
    """A ``scipy.optimize.OptimizeResult`` (scipy.optimize is imported on first use: ~0.4 s)."""
    from scipy.optimize import OptimizeResult

    return OptimizeResult(**fields)


def _bound(value, i, side):
    """One side of pair ``i`` of ``bounds`` as a float (None is open: -inf or inf)."""
    if value is None:
        return -np.inf if side == 0 else np.inf
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"bounds[{i}] must hold real numbers or None, got "
                        f"{type(value).__name__} {value!r}")
    return float(value)


def as_bounds(bounds, n, dtype):
    """``(lb, ub)`` arrays from a Bounds or a sequence of (low, high) pairs (None = open)."""
    if bounds is None:
        return None
    from scipy.optimize import Bounds

    if isinstance(bounds, Bounds):
        try:
            lb, ub = (np.asarray(b, dtype=float) for b in (bounds.lb, bounds.ub))
        except (TypeError, ValueError):
            raise ValueError(f"bounds (a Bounds) must hold real numbers; got lb={bounds.lb!r}, "
                             f"ub={bounds.ub!r}") from None
        try:
            lb, ub = np.broadcast_to(lb, (n,)), np.broadcast_to(ub, (n,))
        except ValueError:
            raise ValueError(f"bounds have shapes {np.shape(bounds.lb)} and "
                             f"{np.shape(bounds.ub)}; expected ({n},) or scalars") from None
    else:
        try:
            pairs = list(bounds)
        except TypeError:
            raise TypeError(f"bounds must be a scipy.optimize.Bounds or {n} (low, high) pairs, "
                            f"got {type(bounds).__name__}") from None
        if len(pairs) != n or not all(isinstance(p, (tuple, list, np.ndarray)) and len(p) == 2
                                      for p in pairs):
            raise ValueError(f"bounds must be {n} (low, high) pairs, one per variable (or a "
                             "scipy.optimize.Bounds)")
        lb = np.array([_bound(p[0], i, 0) for i, p in enumerate(pairs)], dtype=float)
        ub = np.array([_bound(p[1], i, 1) for i, p in enumerate(pairs)], dtype=float)
    if np.isnan(lb).any() or np.isnan(ub).any():
        raise ValueError("bounds contain NaN; use -inf/inf (or None) for an open side")
    if np.any(lb > ub):
        raise ValueError("bounds have a lower bound above its upper bound")
    if np.any(lb == np.inf) or np.any(ub == -np.inf):
        raise ValueError("bounds would pin a variable at inf or -inf (a lower bound of inf or "
                         "an upper bound of -inf)")
    return lb.astype(dtype), ub.astype(dtype)


def data_arguments(args, data, batch_size, array_types=(np.ndarray,)):
    """Which ``args`` are the data set, and its sample count: ``(indices, n_samples)``.

    ``data`` (the ``data`` option) names them by position; by default they are the
    arrays whose leading axis has the length of the first array's. Arrays of another
    leading length next to them are ambiguous (a parameter vector before the data,
    say): an OptimizeWarning says so, naming the ``data`` option. A ``batch_size``
    above the sample count is a ValueError.
    """
    arrays = [i for i, a in enumerate(args) if isinstance(a, array_types) and a.ndim >= 1]
    if data is None:
        if not arrays:
            raise ValueError("batch_size needs data: an array in args whose leading axis is "
                             "the samples")
        n_samples = args[arrays[0]].shape[0]
        chosen = [i for i in arrays if args[i].shape[0] == n_samples]
        others = [i for i in arrays if i not in chosen]
        if others:
            from scipy.optimize import OptimizeWarning

            warnings.warn(
                f"mini-batches: args[{arrays[0]}] sets the sample count {n_samples}, so "
                f"{', '.join(f'args[{i}] (shape {args[i].shape})' for i in others)} "
                f"{'is' if len(others) == 1 else 'are'} not batched; name the data "
                "arguments with options={'data': (i, ...)}", OptimizeWarning,
                stacklevel=_caller_stacklevel())
    else:
        if isinstance(data, (int, np.integer)) and not isinstance(data, bool):
            data = (data,)
        if not isinstance(data, (tuple, list)) or not data or not all(
                isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in data):
            raise TypeError(f"data must be a tuple of positions in args, got {data!r}")
        chosen = sorted({int(i) for i in data})
        for i in chosen:
            if not 0 <= i < len(args) or i not in arrays:
                raise ValueError(f"data names args[{i}], which is not an array of args "
                                 f"(args has {len(args)} entries)")
        n_samples = args[chosen[0]].shape[0]
        bad = [i for i in chosen if args[i].shape[0] != n_samples]
        if bad:
            raise ValueError("the data arguments disagree on the sample count: "
                             + ", ".join(f"args[{i}] has {args[i].shape[0]}"
                                         for i in [chosen[0], *bad]))
    if batch_size > n_samples:
        raise ValueError(f"batch_size={batch_size} exceeds the {n_samples} samples of "
                         f"args[{chosen[0]}]")
    return chosen, n_samples


def minibatches(args, batch_size, epochs, maxiter, seed, data=None, array_types=(np.ndarray,)):
    """The mini-batch plan: ``(batches, per_epoch, maxiter)``.

    ``batches`` yields ``args`` with the data arguments (:func:`data_arguments`) sliced
    by the same indices: a fresh permutation from ``numpy.random.default_rng(seed)``
    each epoch, cut into ``batch_size`` pieces.
    """
    chosen, n_samples = data_arguments(args, data, batch_size, array_types)
    rng = np.random.default_rng(seed)
    per_epoch = -(-n_samples // batch_size)
    if epochs is not None:
        maxiter = min(maxiter, epochs * per_epoch) if maxiter is not None else epochs * per_epoch

    def batches():
        while True:
            order = rng.permutation(n_samples)
            for start in range(0, n_samples, batch_size):
                idx = order[start:start + batch_size]
                yield tuple(a[idx] if i in chosen else a for i, a in enumerate(args))
    return batches(), per_epoch, maxiter


def wrap_callback(callback, copy=np.copy):
    """scipy's rule: ``callback(intermediate_result)`` if that is its only parameter name.

    ``callback(xk)`` gets ``copy(x)``.
    """
    if callback is None:
        return None
    if not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    try:
        names = set(inspect.signature(callback).parameters)
    except (TypeError, ValueError):
        names = set()
    if names == {"intermediate_result"}:
        return lambda res: callback(intermediate_result=res)
    return lambda res: callback(copy(res.x))


class HostArrays:
    """The array operations ``_run`` needs on NumPy arrays (``DeviceArrays`` on CUDA)."""

    copy = np.ndarray.copy  # np.copy costs three times as much per call

    @staticmethod
    def clip(x, bounds):
        np.clip(x, bounds[0], bounds[1], out=x)


_NO_BOUNDS = {np.dtype(np.float32): np.empty(0, np.float32),
              np.dtype(np.float64): np.empty(0, np.float64)}


@cached
@njit(inline="always")
def grad_norm(x, g, lb, ub):
    """Max-norm of the gradient, projected onto the box ``[lb, ub]`` unless that is empty.

    The projected gradient ``x - clip(x - g, lb, ub)`` (in the arrays' dtype) vanishes
    at a constrained minimum, where the gradient itself points out of the box
    (L-BFGS-B's ``pgtol`` test). A NaN anywhere gives NaN. Both minimize loops use
    this one function.
    """
    bounded = lb.size > 0
    m = 0.0
    for k in range(x.size):
        d = g[k]
        if bounded:
            y = x[k] - d
            if y > ub[k]:
                y = ub[k]
            elif y < lb[k]:
                y = lb[k]
            d = x[k] - y
        a = abs(d)
        if a != a:
            return np.nan
        if a > m:
            m = a
    return m


@cached
@njit(parallel=True, nogil=True)
def grad_norm_threaded(x, g, lb, ub, block):
    """:func:`grad_norm` with threads: the max of its value on blocks of ``block`` elements.

    The same value as :func:`grad_norm` (a maximum does not depend on the order, and a
    NaN in any block gives NaN); at n = 1e7 float64 on two threads 5.7 ms instead of 11.
    """
    blocks = (x.size + block - 1) // block
    maxima = np.empty(blocks, x.dtype)
    bounded = lb.size > 0
    for b in prange(blocks):
        lo = b * block
        hi = min(lo + block, x.size)
        if bounded:
            maxima[b] = grad_norm(x[lo:hi], g[lo:hi], lb[lo:hi], ub[lo:hi])
        else:
            maxima[b] = grad_norm(x[lo:hi], g[lo:hi], lb, ub)
    return grad_norm(maxima, maxima, lb[:0], ub[:0])


def _grad_norm(x, g, bounds):
    """Max-norm of the gradient, projected onto the bounds (:func:`grad_norm`), threaded
    from :data:`rmsopt._config.NORM_THRESHOLD` elements."""
    lb, ub = (_NO_BOUNDS[x.dtype],) * 2 if bounds is None else bounds
    if x.size >= _config.NORM_THRESHOLD:
        return grad_norm_threaded(x, g, lb, ub, _config.TASK_SIZE)
    return grad_norm(x, g, lb, ub)


class TwoBuffers:
    """How the loop evaluates, steps and keeps ``x`` on the host: in two buffers.

    Each step reads the iterate from one buffer and writes the next into the other
    (an out-of-place step moves the same bytes as one in place), so the previous
    iterate survives a step without a copy, and the objective's memo compares with
    it instead of keeping a copy. The loop's other strategies have the same methods:
    :class:`InPlace` (CUDA arrays) and :class:`rmsopt.dask.Rebinding` (dask arrays).

    Per iteration nothing the size of ``x`` is allocated or copied: the best iterate
    is copied (into a third buffer, allocated on first use) only when the step
    after an iterate that was not an improvement would overwrite it.
    """

    batch_types = (np.ndarray,)
    copy = staticmethod(np.ndarray.copy)

    def __init__(self, opt, x):
        self.opt = opt
        self.pair = (x, np.empty_like(x))
        self.targets = tuple(_backend.Buffers([b]) for b in self.pair)
        self.spare = None  # the third buffer
        self.evaluated = None  # the buffer of the last evaluation

    def other(self, x):
        """The buffer that the step from ``x`` writes."""
        return self.pair[1] if x is self.pair[0] else self.pair[0]

    def evaluate(self, objective, x, bounds):
        """``f``, the gradient and its (projected) max-norm at ``x``."""
        f, g = objective(x, last=self.evaluated)
        self.evaluated = x
        return f, g, _grad_norm(x, g, bounds)

    def step(self, x, g, rate, bounds):
        """The next iterate: one step from ``x`` with learning rate ``rate``, projected onto
        the bounds, written into the other buffer."""
        y = self.other(x)
        if g is y or g.base is y:
            raise ValueError("jac returned an array that is an earlier x (a read-only view "
                             "of minimize's buffer); return a new array or a copy")
        src = self.targets[x is self.pair[1]]
        self.opt.apply([g], rate, src, self.targets[y is self.pair[1]])
        if bounds is not None:
            HostArrays.clip(y, bounds)
        return y

    @staticmethod
    def keep(x):
        """``x``'s values as they will be after the next step: ``x`` itself."""
        return x

    def overwrites(self, a, x):
        """Whether the step from ``x`` overwrites ``a``."""
        return a is self.other(x)

    def hold(self, a):
        """``a``'s values where no step writes: a copy in the third buffer."""
        if self.spare is None:
            self.spare = np.empty_like(a)
        np.copyto(self.spare, a)
        return self.spare

    @staticmethod
    def restore(x, saved):
        """The iterate to go on from (or to return): the ``saved`` buffer."""
        return saved

    @staticmethod
    def batches(batches):
        """The mini-batches as the objective will get them."""
        return batches


class InPlace:
    """How the loop evaluates, steps and keeps ``x`` when it is updated in place (CUDA).

    ``arrays`` does the array operations (:class:`rmsopt._kernels.cuda.DeviceArrays`).
    The previous and the best iterate are copies, in buffers allocated once per run.
    Methods as :class:`TwoBuffers`.
    """

    batch_types = (np.ndarray,)

    def __init__(self, opt, arrays):
        self.opt, self.arrays, self.copy = opt, arrays, arrays.copy
        self.saved = self.best = None

    def evaluate(self, objective, x, bounds):
        f, g = objective(x)
        return f, g, self.arrays.grad_norm(x, g, bounds)

    def step(self, x, g, rate, bounds):
        self.opt.step(g, lr=rate)
        if bounds is not None:
            self.arrays.clip(x, bounds)
        return x

    def _copy_into(self, name, a):
        """``a`` copied into the buffer ``name`` (allocated by the first copy)."""
        if getattr(self, name) is None:
            setattr(self, name, self.copy(a))
        else:
            self.arrays.assign(getattr(self, name), a)
        return getattr(self, name)

    def keep(self, x):
        return self._copy_into("saved", x)

    @staticmethod
    def overwrites(a, x):
        return a is x

    def hold(self, a):
        return self._copy_into("best", a)

    def restore(self, x, saved):
        self.arrays.assign(x, saved)
        return x

    @staticmethod
    def batches(batches):
        return batches


class _Progress:
    """A tqdm bar showing f and the gradient norm, refreshed at most every 0.1 s."""

    def __init__(self, total):
        try:
            from tqdm.auto import tqdm
        except ImportError as e:
            raise ImportError("progress=True needs tqdm: pip install tqdm") from e
        self.bar = tqdm(total=total, unit="it", mininterval=0.1)
        self.last = 0.0
        self.done = 0

    def update(self, nit, f, gnorm):
        now = time.perf_counter()
        if now - self.last >= 0.1:
            self.bar.set_postfix(f=f"{f:.6g}", gnorm=f"{gnorm:.3g}", refresh=False)
            self.bar.update(nit - self.done)
            self.done, self.last = nit, now

    def close(self, nit):
        self.bar.update(nit - self.done)
        self.bar.close()


def stop_test(nit, f, f_prev, has_prev, gnorm, gtol, ftol, maxiter, minibatch):
    """The status that ends the run at iterate ``nit`` (before its step), or CONTINUE.

    Plain Python, and compiled as it is for the nopython loop (:mod:`rmsopt.compiled`):
    one stop test for both loops. ``f_prev`` is read only when ``has_prev``; with
    mini-batches (``minibatch``) only ``maxiter`` stops the run.
    """
    if not minibatch and gnorm <= gtol:
        return SUCCESS
    if not minibatch and has_prev and ftol > 0 and \
            f_prev - f <= ftol * max(abs(f), abs(f_prev), 1.0):
        return FTOL
    if nit >= maxiter:
        return MAXITER
    return CONTINUE


def stop_status(nit, f, f_prev, gnorm, *, gtol, ftol, maxiter, minibatch, epoch_steps):
    """:func:`stop_test` for the Python loop: the status, or None to go on.

    ``epoch_steps``: the steps of the requested epochs (None without ``epochs``); the run
    ends with status 5 only when they are done, with 1 when ``maxiter`` came first.
    """
    status = stop_test(nit, f, f_prev, f_prev is not None, gnorm, gtol, ftol, maxiter,
                       minibatch)
    if status == CONTINUE:
        return None
    if status == MAXITER and epoch_steps is not None and nit >= epoch_steps:
        return EPOCHS
    return status


def result(x, f, g, nit, nfev, njev, status, *, per_epoch=None, allvecs=None, trace=None,
           disp=False):
    """The OptimizeResult of a run (``trace``: lists of f, gradient norm, time), printed if disp."""
    res = _scipy_result(x=x, fun=f, jac=g, nit=nit, nfev=nfev, njev=njev,
                        status=status, success=status in _SUCCESSFUL,
                        message=STATUS_MESSAGES[status])
    if per_epoch is not None:
        res.epochs = nit / per_epoch
        res.steps = nit
    if allvecs is not None:
        res.allvecs = allvecs
    if trace is not None:
        t = np.array(trace[2])
        res.history = dict(fun=np.array(trace[0]), grad_norm=np.array(trace[1]),
                           time=t - t[0] if t.size else t)  # from the first record
    if disp:
        print(("" if res.success else "Warning: ") + res.message)
        if not res.success:  # as scipy's methods do with disp (scipy gh-1953)
            from scipy.optimize import OptimizeWarning

            warnings.warn(res.message, OptimizeWarning, stacklevel=_caller_stacklevel())
        print(f"         Current function value: {res.fun:.6f}")
        print(f"         Iterations: {res.nit}")
        print(f"         Function evaluations: {res.nfev}")
        print(f"         Gradient evaluations: {res.njev}")
    return res


def run(opt, x, objective, bounds, callback, *, maxiter, gtol, ftol, disp, return_all,
          history, batch_size, epochs, seed, lr, args, progress, data=None, steps=None,
          compiled_loop=None):
    """The iteration shared by every method and every kind of array. Returns an OptimizeResult.

    ``steps`` is the steps strategy (module docstring): :class:`TwoBuffers` for NumPy
    arrays (the default), :class:`InPlace` for CUDA arrays, :class:`rmsopt.dask.Rebinding`
    for dask arrays. With
    ``compiled_loop`` (a :class:`rmsopt.compiled.Loop`) the iterations after the
    first evaluation run in nopython chunks with the same semantics.
    """
    steps = TwoBuffers(opt, x) if steps is None else steps
    copy = steps.copy
    batches = per_epoch = epoch_steps = None
    if batch_size is not None:
        batches, per_epoch, maxiter = minibatches(args, batch_size, epochs, maxiter, seed,
                                                    data, array_types=steps.batch_types)
        batches = steps.batches(batches)
        objective.set_args(next(batches))
        epoch_steps = None if epochs is None else epochs * per_epoch
    if maxiter is None:
        maxiter = 10000

    allvecs = [copy(x)] if return_all else None
    trace_f, trace_g, trace_t = [], [], []
    best, best_f, best_g = x, np.inf, None
    status, nit, f_prev = MAXITER, 0, None
    t0 = time.perf_counter()
    f, g, gnorm = np.nan, None, np.nan
    bar = _Progress(maxiter) if progress else None
    lr0 = opt.hyper["lr"]
    try:
        f, g, gnorm = steps.evaluate(objective, x, bounds)
        if not (math.isfinite(f) and math.isfinite(gnorm)):
            status = NONFINITE
        elif compiled_loop is not None:
            best_f = f
            status, f, g, nit = compiled_loop.iterate(
                f, g, gnorm, maxiter=maxiter, gtol=gtol, ftol=ftol, lr=lr0,
                schedule=lr, callback=callback, bar=bar, allvecs=allvecs, t0=t0,
                trace=(trace_f, trace_g, trace_t) if history else None)
        else:
            best_f, best_g = f, g
            while True:
                if history:
                    trace_f.append(f), trace_g.append(gnorm), trace_t.append(time.perf_counter() - t0)
                stop = stop_status(nit, f, f_prev, gnorm, gtol=gtol, ftol=ftol, maxiter=maxiter,
                                   minibatch=batches is not None, epoch_steps=epoch_steps)
                if stop is not None:
                    status = stop
                    break
                if steps.overwrites(best, x):
                    best = steps.hold(best)
                x_prev, f_prev, g_prev = steps.keep(x), f, g
                x = steps.step(x, g, lr0 if lr is None else opt.check_lr(lr(nit)), bounds)
                nit += 1
                if batches is not None:
                    objective.set_args(next(batches))
                f, g, gnorm = steps.evaluate(objective, x, bounds)
                if not (math.isfinite(f) and math.isfinite(gnorm)):
                    x = steps.restore(x, x_prev)
                    f, g, status = f_prev, g_prev, NONFINITE
                    break
                if f < best_f:
                    best, best_f, best_g = x, f, g
                if return_all:
                    allvecs.append(copy(x))
                if bar is not None:
                    bar.update(nit, f, gnorm)
                if callback is not None:
                    try:
                        callback(_scipy_result(x=copy(x), fun=f, jac=copy(g), nit=nit))
                    except StopIteration:
                        status = CALLBACK_STOP
                        break
    except KeyboardInterrupt:
        status = INTERRUPTED
        if best_f < np.inf and compiled_loop is None:  # (the compiled loop restores its own)
            x, f, g = steps.restore(x, best), best_f, best_g
    if bar is not None:
        bar.close(nit)
    if batches is not None and status in (MAXITER, EPOCHS, CALLBACK_STOP):
        objective.set_args(args)  # report f and g on the whole data set
        f, g, _ = steps.evaluate(objective, x, bounds)
    return result(x, f, g, nit, objective.nfev, objective.njev, status, per_epoch=per_epoch,
                  allvecs=allvecs, trace=(trace_f, trace_g, trace_t) if history else None,
                  disp=disp)


# Other libraries' spellings of minimize's options (torch, optax, keras, scipy's own).
SPELLINGS = {"learning_rate": "lr", "max_iter": "maxiter", "maxiters": "maxiter",
             "max_iterations": "maxiter", "n_iter": "maxiter", "num_steps": "maxiter",
             "epsilon": "eps", "beta_1": "beta1", "beta_2": "beta2", "b1": "beta1",
             "b2": "beta2", "nesterov_momentum": "nesterov", "gtol_abs": "gtol"}


def _method_options(name):
    """The hyperparameter keywords of method ``name``'s optimizer."""
    return [p for p in inspect.signature(_opt.OPTIMIZERS[name].__init__).parameters
            if p not in ("self", "params")]


ALIASES = {"alpha": "rho", "decay": "rho"}  # torch's and optax/TF1's names for RMSprop's rho


def _did_you_mean(key, known, method):
    """A hint for an unknown option of ``method``: the rmsopt name of another library's
    spelling, the methods that do take it, or a close match."""
    import difflib

    target = SPELLINGS.get(key) or ALIASES.get(key)
    if target in known:
        return f"{key}: did you mean {target!r}?"
    others = [m for m in _opt.OPTIMIZERS if m != method and (target or key) in _method_options(m)]
    if others:
        what = key if target is None else f"{key} ({target!r})"
        return f"{what} is an option of method {', '.join(map(repr, others))}, not {method!r}"
    if target is None:  # not another library's spelling: a typo?
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
        if close:
            return f"{key}: did you mean {close[0]!r}?"
    return None


def _caller_stacklevel():
    """The ``stacklevel`` of the first frame outside rmsopt and scipy.optimize: the line
    that called ``rmsopt.minimize`` or ``scipy.optimize.minimize``."""
    import os
    import sys

    inside = (os.path.dirname(__file__), os.path.join("scipy", "optimize"))
    frame, level = sys._getframe(1), 1
    while frame is not None and any(p in frame.f_code.co_filename for p in inside):
        frame, level = frame.f_back, level + 1
    return level


def _count(name, value):
    """An iteration count: an integer >= 0, or a float with an integral value (``1e3``,
    as scipy takes it); None stays None."""
    return None if value is None else count(name, value, low=0)


def _seed(value):
    """minibatches' seed: None, an integer >= 0 or a NumPy Generator/SeedSequence."""
    if value is None or isinstance(value, (np.random.Generator, np.random.SeedSequence)):
        return value
    return count("seed", value, low=0)


def parse_options(name, options, args):
    """Validate minimize's options: ``(cls, hyperparameter keywords, schedule, loop options)``.

    ``schedule`` is the ``lr`` callable, or None (then ``lr`` is among the keywords).
    """
    cls = _opt.OPTIMIZERS[name]
    hyper_names = _method_options(name)
    known = set(hyper_names) | set(LOOP_OPTIONS) | {"lr"}
    unknown = sorted(set(options) - known)
    if unknown:
        from scipy.optimize import OptimizeWarning

        hints = [_did_you_mean(k, known, name) for k in unknown]
        warnings.warn(f"Unknown solver options: {', '.join(unknown)}"
                      + "".join(f"; {h}" for h in hints if h), OptimizeWarning,
                      stacklevel=_caller_stacklevel())
    args = args if isinstance(args, tuple) else (args,)
    o = dict(options)
    lr = o.pop("lr", None)
    schedule = lr if callable(lr) else None
    tol = o.pop("tol", None)
    gtol = real("gtol", o.pop("gtol", 1e-5 if tol is None else tol), low=0.0)
    ftol = real("ftol", o.pop("ftol", 0.0), low=0.0)
    maxiter = _count("maxiter", o.pop("maxiter", None))
    compiled_mode = o.pop("compiled", None)
    if compiled_mode not in (None, True, False):
        raise TypeError(f"compiled must be None, True or False, got {compiled_mode!r}")
    batch_size = o.pop("batch_size", None)
    epochs = o.pop("epochs", None)
    for key, v in (("batch_size", batch_size), ("epochs", epochs)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
            raise ValueError(f"Invalid {key} value: {v!r}; it must be a positive integer")
    if epochs is not None and batch_size is None:
        raise ValueError("epochs needs batch_size")
    loop = dict(maxiter=maxiter, gtol=gtol, ftol=ftol, disp=bool(o.pop("disp", False)),
                progress=bool(o.pop("progress", False)),
                return_all=bool(o.pop("return_all", False)),
                history=bool(o.pop("history", False)) or bool(options.get("return_all", False)),
                batch_size=batch_size, epochs=epochs, seed=_seed(o.pop("seed", None)),
                data=o.pop("data", None), args=args,
                compiled=compiled_mode)
    hyper_kwargs = {k: v for k, v in o.items() if k in hyper_names}
    if schedule is not None:
        learning_rate(schedule(0))
    else:
        hyper_kwargs["lr"] = lr
    return cls, hyper_kwargs, schedule, loop
