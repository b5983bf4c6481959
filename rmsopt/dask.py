"""Dask: parameters and optimizer state as chunked dask arrays, on a cluster or in threads.

``rmsopt.minimize`` hands a ``dask.array`` ``x0`` to :func:`minimize_dask`; the stateful
optimizers of this module (:class:`RMSprop`, :class:`Adam`, ...) take a dask array as
parameters. Either way:

* Parameters and state stay chunked where they are computed (the workers of a
  ``dask.distributed`` cluster). Each step is one ``blockwise`` task per chunk that runs the
  CPU kernel of :mod:`rmsopt._kernels.cpu` (serially: Dask parallelises over chunks) on the
  chunk of the parameters, gradient and state, and returns new chunks; the results are
  persisted, so the graph never grows beyond one step.
* Only scalars reach the client: ``f``, the gradient's max-norm (for ``gtol``) and, with
  ``clip_norm``, one float64 partial sum of squares per 16384 elements.
* The kernel is element-wise, so chunking changes no bits: the iterates equal those of the
  in-memory run given the same gradients. The global norm of ``clip_norm`` adds the same
  partial sums in the same order as the in-memory kernel when every chunk but the last has a
  multiple of ``rmsopt._config.TASK_SIZE`` (16384) elements; with other chunks it may differ
  in the last bits. ``f`` is whatever the objective computes (a Dask sum rounds differently
  from NumPy's), which matters only for ``ftol``.

The workers hold only the current chunks (and those the loop keeps: the previous and the best
iterate). Dask's scheduler, though, keeps the provenance of persisted chunks as task records
without data, so that lost chunks can be recomputed: a few per chunk and iteration (1 + the
active slots + 1 for the step, plus the objective's own tasks), forgotten when the result is
released (dask/distributed#809). Prefer few, large chunks (they also cut the per-task overhead)
for runs of many thousands of iterations.

Dask arrays are immutable, so a stateful optimizer cannot update its parameters in place:
:meth:`Optimizer.step` returns the new parameters, which are also ``opt.params``::

    opt = rmsopt.dask.RMSprop(w, lr=1e-3)     # w: a chunked dask array
    for batch in batches:
        w = opt.step(grad(w, batch))          # the new, persisted parameters

Importing :mod:`rmsopt` does not import Dask; this module does (``pip install rmsopt[dask]``).

Examples
--------
>>> import dask.array as da, numpy as np, rmsopt
>>> x0 = da.from_array(np.array([1.0, -2.0, 3.0, 0.5]), chunks=2)
>>> res = rmsopt.minimize(lambda x: 0.5 * (x**2).sum(), x0, jac=lambda x: x, method="sgd",
...                       options={"lr": 0.5})
>>> type(res.x).__name__, res.x.chunks, res.status
('Array', ((2, 2),), 0)
"""

import operator
import threading

import numpy as np
from scipy.optimize import Bounds

try:
    import dask
    import dask.array as da
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("rmsopt.dask needs Dask: pip install 'rmsopt[dask]'") from e

from . import _config, hyper, rules
from . import backend as _backend
from . import optimizer as _optimizer
from ._kernels import cpu
from .loop import as_bounds, parse_options, run, wrap_callback, x0_dtype_and_shape
from .objective import FD_METHODS, scalar_value

__all__ = ["Optimizer", "minimize_dask",
           *(cls.__name__ for cls in _optimizer.OPTIMIZERS.values())]


# ------------------------------------------------------------ work done on the workers

def _update_block(p, g, *blocks, rule, flags, common, active, c, h, bounds):
    """One step of one chunk: ``(p, *active state)`` from ``p, g, *active state[, lb, ub]``."""
    rest = list(blocks)
    state = [rest.pop(0) if used else None for used in active]
    p, state = _backend.block_step(rules.RULES[rule], flags, common, active, p, g, state, c, h)
    if bounds is not None:
        lb, ub = rest if bounds == "blocks" else bounds
        np.clip(p, lb, ub, out=p)
    return (p, *(s for s in state if s is not None))


def _block_partials(g):
    """A chunk's partial sums of squares, one per kernel task (see ``cpu.task_sums_of_squares``)."""
    return cpu.task_sums_of_squares(np.ascontiguousarray(g).reshape(-1), _config.TASK_SIZE,
                                    _config.REDUCE_LANES)


# ------------------------------------------------------------------------- helpers

def _meta(a):
    return np.empty((0,) * a.ndim, dtype=a.dtype)


def _check_chunked(a, name):
    """Checks that need no computation: a dask array with known chunks, not empty."""
    if not isinstance(a, da.Array):
        raise TypeError(f"{name} must be a dask array, got {type(a).__name__}")
    if any(np.isnan(c) for chunks in a.chunks for c in chunks):
        raise ValueError(f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes()")
    if a.size == 0:
        raise ValueError(f"{name} is empty")


def _check_finite(a, name):
    if not bool(da.isfinite(a).all().compute()):
        raise ValueError(f"{name} contains NaN or inf")


def _as_gradient(g, like, name, kinds="fiub"):
    """``g`` as a dask array of ``like``'s dtype and chunks, checked before any update
    (dtype kinds as in memory: ``jac``'s value may be boolean, a step's gradient not)."""
    if not isinstance(g, da.Array):
        g = np.asarray(g)
    if g.shape != like.shape:
        raise ValueError(f"{name} has shape {g.shape}; expected {like.shape} (the shape of the "
                         "parameters)")
    if g.dtype.kind not in kinds or g.dtype.itemsize > 8:
        raise TypeError(f"{name} must be a real array, got dtype {g.dtype}")
    if not isinstance(g, da.Array):
        g = da.from_array(g, chunks=like.chunks)
    return g.astype(like.dtype).rechunk(like.chunks)


def _global_norm_parts(g):
    """Delayed partial sums of squares of every chunk, in element order for 1-D ``g``."""
    part = dask.delayed(_block_partials, pure=True)
    return [part(b) for b in g.to_delayed().ravel()]


def _global_norm(parts):
    """L2 norm from the partial sums, added in order as :func:`rmsopt._kernels.cpu.global_norm`
    (whose overflow fallback for float64 elements above ~1e154 Dask does not repeat)."""
    total = 0.0
    for chunk in parts:
        for v in chunk.tolist():
            total += v
    return np.sqrt(total)


def _project(x, bounds):
    """``np.clip(x, lb, ub)`` chunk by chunk (bounds: dtype scalars or arrays chunked as x)."""
    return da.map_blocks(np.clip, x, *bounds, meta=_meta(x))


# ----------------------------------------------------------------- stateful optimizers

class Optimizer:
    """Base class: an optimizer over one chunked dask array (any shape, float32/float64).

    Subclasses name the in-memory class (:attr:`optimizer`) whose keywords they take; it
    validates them and supplies the rule's flags and per-step scalars, exactly as in memory.

    Attributes
    ----------
    params : dask.array.Array
        The current parameters (persisted; replaced, not modified, by each step).
    t : int
        Number of steps taken.
    state : dict of str -> dask.array.Array
        The active state slots, chunked like the parameters.

    Examples
    --------
    >>> import dask.array as da, numpy as np, rmsopt.dask
    >>> w = da.from_array(np.array([1.0, -2.0, 3.0]), chunks=2)
    >>> opt = rmsopt.dask.RMSprop(w, lr=0.1)
    >>> for _ in range(100):
    ...     w = opt.step(2 * w)           # gradient of sum(w**2); the new parameters
    >>> bool(abs(w).max().compute() < 0.1), w is opt.params, sorted(opt.state)
    (True, True, ['nu'])
    """

    optimizer: type = None

    def __init__(self, params, **options):
        if self.optimizer is None:
            raise TypeError("use a subclass of rmsopt.dask.Optimizer (RMSprop, Adam, ...)")
        if any(grouped.takes(params) for grouped in _optimizer.GROUPS):
            raise TypeError("the Dask optimizers take one dask array, no param groups; param "
                            "groups (a list of dicts) are for the in-memory optimizers "
                            "(rmsopt.RMSprop([{'params': ...}, ...]))")
        _check_chunked(params, "params")
        if params.dtype not in (np.float32, np.float64):
            raise ValueError(f"params has dtype {params.dtype}; expected float32 or float64 "
                             "(convert with .astype(np.float64))")
        self._setup(params.persist(), options)
        _check_finite(self.params, "params")

    @classmethod
    def _for_checked(cls, params, options):
        """An optimizer over ``params`` already validated (and persisted) by the caller."""
        self = cls.__new__(cls)
        self._setup(params, options)
        return self

    def _setup(self, params, options):
        options = dict(options)
        backend = options.pop("backend", "auto")
        if _backend.resolve(backend) != "cpu":
            raise ValueError(f"backend={backend!r}: the Dask optimizers run the CPU kernel on "
                             "every chunk; use backend='auto' or 'cpu'")
        # A one-element in-memory optimizer validates the hyperparameters (with the messages
        # of the in-memory classes) and gives the variant and host scalars of every step.
        self._probe = self.optimizer(np.zeros(1, dtype=params.dtype), **options)
        self._lock = threading.Lock()
        self.params = params
        self.t = 0
        initial = self._probe.rule.initial(self._probe.hyper)
        self._state = [da.full(params.shape, params.dtype.type(value), dtype=params.dtype,
                               chunks=params.chunks) if used else None
                       for used, value in zip(self._probe.variant.active, initial)]

    @property
    def hyper(self):
        return self._probe.hyper

    @property
    def dtype(self):
        return self.params.dtype

    @property
    def state(self):
        return {name: s for name, s in zip(self._probe.rule.slots, self._state) if s is not None}

    def __repr__(self):
        shown = ", ".join(f"{k}={v!r}" for k, v in self._probe.hyper.items())
        return (f"rmsopt.dask.{type(self).__name__}({shown}, chunks={self.params.chunks}, "
                f"t={self.t})")

    def step(self, grad, lr=None):
        """Take one step with gradient ``grad``; return the new parameters.

        Parameters
        ----------
        grad : dask.array.Array or array_like
            The parameters' shape; rechunked to their chunks and cast to their dtype.
        lr : float, optional
            Learning rate for this step only, instead of ``hyper["lr"]`` (or of the
            schedule given as ``lr``, called with ``t``).

        Returns
        -------
        dask.array.Array
            The new parameters, persisted, also stored as :attr:`params`. The arrays given
            (old parameters, ``grad``) are unchanged, as Dask arrays are immutable. With
            ``clip_norm`` the step first gathers the gradient's partial sums of squares.

        Notes
        -----
        As in memory, a step is all or nothing: the new chunks are computed first and then
        parameters, state and ``t`` are replaced together (a Ctrl-C meanwhile either stops the
        step before anything changed or is held until all three are replaced). Steps from
        several threads take turns (a lock), each computed from the result of the one before.
        """
        with self._lock:
            g = _as_gradient(grad, self.params, "grad", kinds="fiu")
            schedule = self._probe.schedule
            lr = self._probe.hyper["lr"] if lr is None and schedule is None else \
                self.check_lr(schedule(self.t) if lr is None else lr)
            norm = None
            if self._probe.hyper["clip_norm"] is not None:
                g = g.persist()
                norm = _global_norm(dask.compute(*_global_norm_parts(g)))
            return self.apply(g, lr, norm)

    def check_lr(self, lr):
        """A learning rate given for one step, checked as the in-memory optimizer checks it."""
        return self._probe.check_lr(lr)

    def apply(self, g, lr, norm, bounds=None):
        """The step proper, for engines: ``g`` a checked gradient (chunked as the parameters),
        ``lr`` a checked rate, ``norm`` the gradient's global norm (used with clip_norm),
        ``bounds`` None or ``(lb, ub)`` (dtype scalars, or dask arrays chunked as ``params``)
        applied to the new parameters."""
        probe, t = self._probe, self.t + 1
        clip = probe.hyper["clip_norm"]
        clip_scale = 1.0 if clip is None else hyper.clip_scale(norm, clip)
        carry = probe.advance_carry(lr)  # the rule's carried value (LaProp's), on the probe
        c, h = probe.host_scalars(t, lr, clip_scale, carry)
        variant = probe.variant
        index = "abcdefghijklmnopqrstuvwxyz"[:self.params.ndim]
        arrays = [self.params, g, *(s for s in self._state if s is not None)]
        n_out = len(arrays) - 1
        if bounds is not None and isinstance(bounds[0], da.Array):
            arrays += list(bounds)
            bounds = "blocks"
        meta = _meta(self.params)
        steps = da.blockwise(_update_block, index, *(x for a in arrays for x in (a, index)),
                             meta=meta, rule=variant.rule.name, flags=variant.flags,
                             common=variant.common, active=variant.active, c=c, h=h,
                             bounds=bounds)
        out = dask.persist(*(steps.map_blocks(operator.getitem, k, meta=meta)
                             for k in range(n_out)))
        rest = iter(out[1:])
        state = [None if s is None else next(rest) for s in self._state]
        with _optimizer.interrupts_deferred():  # parameters, state and t: all or none
            self.params, self._state, self.t, probe.carry = out[0], state, t, carry
        return self.params


def _dask_class(cls):
    """The Dask optimizer of in-memory class ``cls``: same name and keywords."""
    doc = f":class:`rmsopt.{cls.__name__}` over a chunked dask array (same keywords)."
    return type(cls.__name__, (Optimizer,), {"optimizer": cls, "__doc__": doc,
                                             "__module__": __name__})


#: in-memory class -> its Dask class, one per registered optimizer (rmsopt.optimizer.OPTIMIZERS)
_FOR_CLASS = {cls: _dask_class(cls) for cls in _optimizer.OPTIMIZERS.values()}
globals().update({c.__name__: c for c in _FOR_CLASS.values()})


# ------------------------------------------------------------------------ minimize

def _as_x0(x0):
    """``x0`` as a 1-D float32/float64 dask array (no computation), or a clear error."""
    _check_chunked(x0, "x0")
    return x0_dtype_and_shape(x0)


def _as_bounds(bounds, x):
    """Bounds as dtype scalars (a Bounds of scalars) or arrays chunked like ``x``."""
    if bounds is None:
        return None
    if isinstance(bounds, Bounds) and np.ndim(bounds.lb) == 0 and np.ndim(bounds.ub) == 0:
        lb, ub = (np.asarray(b, dtype=float).astype(x.dtype)[()] for b in (bounds.lb, bounds.ub))
        if lb > ub:
            raise ValueError("bounds have a lower bound above its upper bound")
        return lb, ub
    # per-variable bounds are built on the client (as in memory), then chunked like x
    lb, ub = as_bounds(bounds, x.size, x.dtype)
    return dask.persist(da.from_array(lb, chunks=x.chunks), da.from_array(ub, chunks=x.chunks))


class _Objective:
    """``fun``/``jac`` at a dask ``x``: lazy ``f`` and ``g``, with scipy's evaluation counts."""

    def __init__(self, fun, jac, args):
        if not callable(fun):
            raise TypeError(f"fun must be callable, got {type(fun).__name__}")
        if jac is None or jac is False or (isinstance(jac, str) and jac in FD_METHODS):
            raise ValueError(f"jac={jac!r}: finite differences would evaluate fun once per "
                             "variable; with a dask x0 give jac as a callable or True")
        if not (callable(jac) or jac is True):
            raise ValueError(f"Invalid jac {jac!r}; expected a callable or True")
        self.fun, self.jac = fun, jac
        self.args = tuple(args)
        self.nfev = self.njev = 0

    def set_args(self, args):
        self.args = tuple(args)

    def __call__(self, x):
        if self.jac is True:
            out = self.fun(x, *self.args)
            self.nfev += 1
            self.njev += 1
            if not isinstance(out, tuple) or len(out) != 2:
                raise TypeError("with jac=True, fun must return a tuple (f, gradient)")
            f, g = out
        else:
            f = self.fun(x, *self.args)
            self.nfev += 1
            g = self.jac(x, *self.args)
            self.njev += 1
        if isinstance(f, da.Array) and f.size != 1:  # scipy's error, without computing f
            scalar_value(np.broadcast_to(np.zeros((), f.dtype), f.shape))
        return f, _as_gradient(g, x, "jac's return value")


def minimize_dask(name, fun, x0, args, jac, bounds, callback, options):
    """:func:`rmsopt.minimize` for a dask-array ``x0`` (``rmsopt.minimize`` calls it).

    The loop of :func:`rmsopt.loop.run` with chunked arrays: each iteration persists
    ``f`` and the gradient, gathers ``f`` and the gradient's max-norm (and, with
    ``clip_norm``, its partial sums of squares) in one ``dask.compute``, then persists the
    blockwise step. ``fun`` and ``jac`` get the dask array ``x`` (immutable, so not a copy)
    and may return dask or NumPy values; ``jac`` must be a callable or True. ``res.x`` and
    ``res.jac`` are dask arrays with ``x0``'s chunks. Mini-batches slice NumPy and dask arrays
    in ``args`` with the index draws of the in-memory run.
    """
    x = _as_x0(x0)
    cls, hyper_kwargs, schedule, loop = parse_options(name, options, args)
    args = loop.pop("args")
    if loop.pop("compiled"):
        raise ValueError("compiled=True: the compiled loop runs in memory, not on Dask arrays")
    objective = _Objective(fun, jac, args)
    opt = _FOR_CLASS[cls]._for_checked(x, hyper_kwargs)  # validates the hyperparameters
    x = x.persist()
    _check_finite(x, "x0")
    lb_ub = _as_bounds(bounds, x)
    if lb_ub is not None:
        x = _project(x, lb_ub).persist()
    opt.params = x
    return run(opt, x, objective, lb_ub, wrap_callback(callback, copy=lambda a: a),
                 lr=schedule, args=args, steps=Rebinding(opt), **loop)


class Rebinding:
    """How :func:`rmsopt.loop.run` evaluates, steps and restores a dask ``x``.

    Dask arrays are immutable: a step returns new persisted parameters, which the
    loop rebinds, and a "copy" (``copy``, ``keep``, ``hold``) is the array itself. An
    evaluation persists ``f`` and the gradient and gathers ``f``, the gradient's
    max-norm and (clip_norm) its partial sums of squares in one ``dask.compute``; the
    norm is kept for the step.
    """

    batch_types = (np.ndarray, da.Array)

    def __init__(self, opt):
        self.opt = opt
        self.clip = opt.hyper["clip_norm"] is not None
        self.norm = None

    @staticmethod
    def copy(x):
        return x

    def evaluate(self, objective, x, bounds):
        f, g = dask.persist(*objective(x))
        gnorm = abs(g if bounds is None else x - _project(x - g, bounds)).max()
        f, gnorm, parts = dask.compute(f, gnorm, _global_norm_parts(g) if self.clip else [])
        self.norm = _global_norm(parts) if self.clip else None
        return scalar_value(f), g, float(gnorm)

    def step(self, x, g, rate, bounds):
        return self.opt.apply(g, rate, self.norm, bounds)

    def restore(self, x, saved):
        self.opt.params = saved
        return saved

    @staticmethod
    def keep(x):
        return x

    @staticmethod
    def overwrites(a, x):
        return False

    @staticmethod
    def hold(a):
        return a

    @staticmethod
    def batches(batches):
        return (dask.persist(*batch) for batch in batches)  # shared by fun and jac
