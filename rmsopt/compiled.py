"""The minimize loop in nopython mode, for Numba-compiled objectives.

When ``fun`` and ``jac`` (or ``fun`` with ``jac=True``) are ``@numba.njit``
functions, :func:`rmsopt.minimize` runs its iterations in compiled *chunks*.
A chunk is the Python loop of :func:`rmsopt.loop.run` written for
nopython mode: the same memoised evaluation and counts, stopping tests,
projection onto the bounds, non-finite stop and history, calling the same step
kernel and the same host-scalar functions, so that it returns the same bits.
Between chunks, sized to last about 0.1 s, Python runs the callback and the
progress bar and sees Ctrl-C.

``fun`` and ``jac`` enter the chunk as first-class function values typed by
their signature, so another objective with the same argument and return types
reuses the compiled chunk instead of recompiling it.
"""

import time

import numba
import numpy as np
from numba import njit, types
from numba.core.registry import CPUDispatcher
from numba.np.unsafe.ndarray import to_fixed_tuple

from . import _config, rules
from ._kernels import cpu
from ._kernels.cache import cached
from .loop import CALLBACK_STOP, CONTINUE, INTERRUPTED, NONFINITE, grad_norm, stop_test

BAD_JAC = -2  # the chunk's own status: jac returned a gradient of another size
_stop_test = njit(inline="always")(stop_test)  # the Python loop's stop test, compiled

# Slots of the chunk's float64 and int64 state arrays.
F, F_PREV, GNORM, BEST_F, F_MEMO, CARRY = range(6)
NIT, NFEV, NJEV, T, HAS_PREV, NREC, JAC_SIZE = range(7)

CHUNK_SECONDS = 0.1


class NotCompilable(Exception):
    """Why the compiled loop cannot run this problem (the Python loop can)."""


# ------------------------------------------------------------------ typing

def _signature(dispatcher, argtypes, name):
    """The compiled signature of ``dispatcher`` for ``argtypes``."""
    try:
        dispatcher.compile(argtypes)
    except Exception as e:  # a typing error: the Python loop will report it if real
        raise NotCompilable(f"{name} does not compile for {argtypes}: {e}") from e
    return dispatcher.overloads[argtypes].signature


def _is_real(t):
    return isinstance(t, (types.Float, types.Integer))


def function_types(fun, jac, x, args):
    """First-class function types of ``fun`` and ``jac`` at ``x`` and ``args``.

    Raises
    ------
    NotCompilable
        If they are not Numba ``@njit`` functions returning what minimize needs.
    """
    if not isinstance(fun, CPUDispatcher):
        raise NotCompilable("fun is not a Numba @njit function")
    if not (jac is True or isinstance(jac, CPUDispatcher)):
        raise NotCompilable("jac is neither True nor a Numba @njit function")
    try:
        argtypes = (numba.typeof(x),) + tuple(numba.typeof(a) for a in args)
    except ValueError as e:
        raise NotCompilable(f"args cannot be passed to nopython code: {e}") from e
    # Typed for a read-only x first, as minimize's first evaluation (in Python) passes it:
    # fun and jac then compile once, not twice (0.1-0.4 s each); the chunk's writable copy
    # converts. A function that writes into x compiles for a writable one.
    try:
        return _function_types(fun, jac, (argtypes[0].copy(readonly=True),) + argtypes[1:])
    except NotCompilable:
        return _function_types(fun, jac, argtypes)


def _function_types(fun, jac, argtypes):
    fsig = _signature(fun, argtypes, "fun")
    if jac is True:
        rt = fsig.return_type
        if not (isinstance(rt, types.BaseTuple) and len(rt) == 2 and _is_real(rt[0])
                and isinstance(rt[1], types.Array) and rt[1].ndim == 1
                and _is_real(rt[1].dtype)):
            raise NotCompilable(f"with jac=True fun must return (real, 1-d array), not {rt}")
        return types.FunctionType(fsig), types.FunctionType(fsig)
    if not _is_real(fsig.return_type):
        raise NotCompilable(f"fun returns {fsig.return_type}, not a real scalar")
    jsig = _signature(jac, argtypes, "jac")
    rt = jsig.return_type
    if not (isinstance(rt, types.Array) and rt.ndim == 1 and _is_real(rt.dtype)):
        raise NotCompilable(f"jac returns {rt}, not a 1-d real array")
    return types.FunctionType(fsig), types.FunctionType(jsig)


# ------------------------------------------------------------------ the chunk

@njit(inline="always")
def copy_into(dst, src):
    """``dst[:] = src`` for 1-D arrays of one length, as a plain loop (Numba's slice
    assignment costs tens of ns on the small arrays of a minimize iteration)."""
    for k in range(src.size):
        dst[k] = src[k]


@cached
@njit
def same_point(a, b):
    """``np.array_equal`` for two 1-D arrays, without its Python overhead."""
    if a.size != b.size:
        return False
    for k in range(a.size):
        if a[k] != b[k]:
            return False
    return True



def _scalars_maker(cls):
    """``make(values, row)``: namedtuple ``cls`` of ``row``'s dtype from a float64 tuple.

    ``row`` is scratch space of the fields' length; storing rounds each value to
    the dtype, as :func:`rmsopt.hyper.as_scalars` does on the host.
    """
    n = len(cls._fields)

    @njit(inline="always")
    def make(values, row):
        for i in range(n):
            row[i] = values[i]
        return cls(*to_fixed_tuple(row, n))

    return make


_make_common = _scalars_maker(rules.CommonScalars)
_chunks = {}


def _chunk_function(rule, flags, common, active, parallel, jac_true, bounded, record_x):
    """The chunk's Python source for one variant; compiled per argument types by the caller."""
    step = cpu.step_kernel(rule.kernel, flags, common, active, parallel)
    update = cpu.update_loop(rule.kernel, flags, common, active)  # inlined: small problems
    global_norm = cpu.global_norm_kernel[parallel]
    lanes = _config.REDUCE_LANES
    values, advance, common_values = rule.values, rule.advance, rules.common_values
    make_h = _scalars_maker(rule.Scalars)
    make_c = _make_common
    clip_norm = common.clip_norm

    @njit(inline="always")
    def evaluate(fun, jac, args, x, g, x_memo, fl, it):
        """f and g at x, memoised on the last point, counted as minimize counts.

        fun and jac get ``x_memo``, a copy of ``x``, so they cannot alter the iterate.
        """
        if not same_point(x, x_memo):
            copy_into(x_memo, x)
            if jac_true:
                f, gv = fun(x_memo, *args)
            else:
                f = fun(x_memo, *args)
                gv = jac(x_memo, *args)
            it[NFEV] += 1
            it[NJEV] += 1
            if gv.size != x.size:
                it[JAC_SIZE] = gv.size
                x_memo[:] = np.nan  # forget the point: its gradient was not stored
                return False
            copy_into(g, gv)
            fl[F_MEMO] = f
        fl[F] = fl[F_MEMO]
        return True

    def chunk(fun, jac, args, x, g, x_prev, g_prev, x_best, x_memo, lb, ub, layout, state, hk, ck,
              rows, lrs, limits, fl, it, hist, allx):
        # Every array the iterations touch, as a view without reference counting
        # (cpu.borrow); the Loop holds the arrays themselves.
        borrow = cpu.borrow
        x, g, x_prev, g_prev, x_best, x_memo = borrow(x), borrow(g), borrow(x_prev), \
            borrow(g_prev), borrow(x_best), borrow(x_memo)
        lb, ub, lrs, fl, it, hist, allx = borrow(lb), borrow(ub), borrow(lrs), borrow(fl), \
            borrow(it), borrow(hist), borrow(allx)
        paddr, gaddr, size, offset, tasks = borrow(layout[0]), borrow(layout[1]), \
            borrow(layout[2]), borrow(layout[3]), borrow(layout[4])
        hrow, crow = borrow(rows[0]), borrow(rows[1])
        s0, s1, s2 = borrow(state[0]), borrow(state[1]), borrow(state[2])
        maxiter, gtol, ftol, max_norm = limits
        for i in range(lrs.size):
            f = fl[F]
            r = it[NREC]
            hist[r, 0], hist[r, 1] = f, fl[GNORM]
            it[NREC] = r + 1
            stop = _stop_test(it[NIT], f, fl[F_PREV], it[HAS_PREV], fl[GNORM], gtol, ftol,
                              maxiter, False)
            if stop != CONTINUE:
                return stop
            copy_into(x_prev, x)
            copy_into(g_prev, g)
            fl[F_PREV], it[HAS_PREV] = f, 1
            lr, t = lrs[i], it[T] + 1
            clip_scale = 1.0
            if clip_norm:
                clip_scale = rules.clip_scale(global_norm(gaddr, size, tasks, g, lanes), max_norm,
                                           1.0)
            carry = advance(hk, lr, fl[CARRY])
            h = make_h(values(hk, t, lr, carry), hrow)
            c = make_c(common_values(ck, lr, clip_scale), crow)
            if parallel:
                step(paddr, paddr, gaddr, size, offset, tasks, s0, s1, s2, c, h,
                     it.ctypes.data + T * 8)  # the kernel counts into it[T]
            else:  # x is the optimizer's only array: the same element loop, without a call
                update(x, x, g, s0, s1, s2, c, h)
            it[T], fl[CARRY] = t, carry
            if bounded:
                for k in range(x.size):
                    if x[k] > ub[k]:
                        x[k] = ub[k]
                    elif x[k] < lb[k]:
                        x[k] = lb[k]
            it[NIT] += 1
            if not evaluate(fun, jac, args, x, g, x_memo, fl, it):
                return BAD_JAC
            fl[GNORM] = grad_norm(x, g, lb, ub)
            if not (np.isfinite(fl[F]) and np.isfinite(fl[GNORM])):
                copy_into(x, x_prev)
                copy_into(g, g_prev)  # the result's jac is the gradient at the iterate returned
                fl[F] = fl[F_PREV]
                return NONFINITE
            if fl[F] < fl[BEST_F]:
                fl[BEST_F] = fl[F]
                copy_into(x_best, x)
            if record_x:
                allx[i, :] = x
        return CONTINUE

    return chunk


def _compiled_chunk(key, argtypes):
    """The chunk for a variant ``key`` compiled for ``argtypes`` (memoised)."""
    if (key, argtypes) not in _chunks:
        chunk = cached(njit(**cpu.JIT)(_chunk_function(*key)), key)
        chunk.compile(argtypes)
        _chunks[key, argtypes] = chunk
    return _chunks[key, argtypes]


# ------------------------------------------------------------------ the driver

class Loop:
    """The compiled iteration of one minimize call.

    Built by :func:`prepare` (which raises :class:`NotCompilable` when the
    problem needs the Python loop); :meth:`iterate` then runs chunk after chunk.
    """

    def __init__(self, opt, x, objective, bounds, fun_type, jac_type, record_x):
        self.opt, self.x, self.objective, self.record_x = opt, x, objective, record_x
        self.jac_true = objective.jac is True
        self.fun = objective.fun
        self.jac = objective.fun if self.jac_true else objective.jac
        self.args = objective.args
        dtype = x.dtype
        if bounds is None:
            self.lb = self.ub = np.empty(0, dtype)
        else:
            self.lb, self.ub = bounds
        layout, variant, h = opt.layout, opt.variant, opt.hyper
        self.g = np.empty_like(x)
        self.layout = (layout.paddr, layout.gaddr([self.g]), layout.size, layout.offset,
                       layout.tasks)
        self.key = (*variant, layout.parallel, self.jac_true, bounds is not None, record_x)
        self.hk = opt.rule.constants(h)
        self.ck = rules.common_constants(h)
        self.rows = (np.empty(len(opt.rule.Scalars._fields), dtype),
                     np.empty(len(rules.CommonScalars._fields), dtype))
        self.fun_type, self.jac_type = fun_type, jac_type
        self._entry = None

    def _chunk(self, lrs, limits, fl, it, hist, allx):
        args = (self.fun, self.jac, self.args, self.x, self.g, self.x_prev, self.g_prev,
                self.x_best, self.x_memo, self.lb, self.ub, self.layout, self.opt.buffers,
                self.hk, self.ck, self.rows, lrs, limits, fl, it, hist, allx)
        if self._entry is None:  # the argument types are the same for every chunk of a run
            argtypes = (self.fun_type, self.jac_type) + tuple(numba.typeof(a) for a in args[2:])
            dispatcher = _compiled_chunk(self.key, argtypes)
            self._entry = dispatcher.overloads[argtypes].entry_point
        return self._entry(*args)

    def iterate(self, f, g, gnorm, *, maxiter, gtol, ftol, lr, schedule, callback, bar,
                trace, allvecs, t0):
        """Iterate from the evaluated point ``(f, g)`` until a status; see ``_loop``.

        Returns ``(status, f, g, nit)``; ``x`` (and the optimizer) are updated in
        place, and ``trace`` (f, gnorm, time lists) and ``allvecs`` extended.
        """
        x, opt, objective = self.x, self.opt, self.objective
        self.g[:] = g
        self.x_prev, self.x_best, self.x_memo = x.copy(), x.copy(), x.copy()
        self.g_prev = self.g.copy()
        fl = np.array([f, np.nan, gnorm, f, f, opt.carry], dtype=np.float64)
        it = np.array([0, objective.nfev, objective.njev, opt.t, 0, 0, 0], dtype=np.int64)
        limits = (np.int64(maxiter), float(gtol), float(ftol),
                  float(opt.hyper["clip_norm"] or 0.0))
        n, status = (1 if callback is not None else 8), CONTINUE
        try:
            while status == CONTINUE:
                passes = min(n, maxiter - int(it[NIT]) + 1)
                nit0 = int(it[NIT])
                if schedule is None:
                    lrs = np.full(passes, lr, dtype=np.float64)
                else:  # the rates of the steps this chunk can take: none at k = maxiter
                    lrs = np.full(passes, np.nan)
                    lrs[:min(passes, maxiter - nit0)] = [
                        opt.check_lr(schedule(k))  # as Optimizer.step checks lr
                        for k in range(nit0, min(nit0 + passes, maxiter))]
                hist = np.empty((passes + 1, 2))
                allx = np.empty((passes if self.record_x else 0, x.size), x.dtype)
                it[NREC] = 0
                start = time.perf_counter()
                status = self._chunk(lrs, limits, fl, it, hist, allx)
                stop = time.perf_counter()
                nrec, nit = int(it[NREC]), int(it[NIT])
                if trace is not None:
                    trace[0].extend(hist[:nrec, 0].tolist())
                    trace[1].extend(hist[:nrec, 1].tolist())
                    trace[2].extend(np.linspace(start, stop, nrec) - t0)
                if allvecs is not None:  # a non-finite iteration is undone, not recorded
                    allvecs.extend(a.copy() for a in allx[:nit - nit0 - (status == NONFINITE)])
                if status == BAD_JAC:
                    raise ValueError(f"jac returned an array of shape ({int(it[JAC_SIZE])},); "
                                     f"expected {x.shape} (the shape of x)")
                if bar is not None:
                    bar.update(nit, fl[F], fl[GNORM])
                if callback is not None and nit > nit0 and status != NONFINITE:
                    try:
                        callback(_intermediate(x, fl[F], self.g, nit))
                    except StopIteration:
                        status = CALLBACK_STOP
                # the next chunk lasts about CHUNK_SECONDS (growth bounded against noise);
                # with a callback, one iteration: it is called after every iteration
                n = 1 if callback is not None else \
                    int(min(max(passes * CHUNK_SECONDS / max(stop - start, 1e-9), 1), 8 * passes))
        except KeyboardInterrupt:
            status = INTERRUPTED
            x[...] = self.x_best
            fl[F] = fl[BEST_F]
        finally:
            objective.nfev, objective.njev = int(it[NFEV]), int(it[NJEV])
            opt.t, opt.carry = int(it[T]), fl[CARRY]
        return status, float(fl[F]), self.g.copy(), int(it[NIT])


def _intermediate(x, f, g, nit):
    from scipy.optimize import OptimizeResult

    return OptimizeResult(x=x.copy(), fun=float(f), jac=g.copy(), nit=nit)


def prepare(opt, x, objective, bounds, *, return_all, batches):
    """A :class:`Loop` for this problem, or :class:`NotCompilable` saying why not."""
    if batches:
        raise NotCompilable("mini-batches run in the Python loop")
    if opt.backend != "cpu":
        raise NotCompilable(f"backend {opt.backend!r} has no compiled loop")
    fun_type, jac_type = function_types(objective.fun, objective.jac, x, objective.args)
    return Loop(opt, x, objective, bounds, fun_type, jac_type, record_x=return_all)
