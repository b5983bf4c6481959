"""``rmsopt.minimize``: the scipy calling convention for the RMSprop family.

::

    res = rmsopt.minimize(fun, x0, method="rmsprop", jac=grad, options={"lr": 1e-2})
    res = scipy.optimize.minimize(fun, x0, method=rmsopt.methods.rmsprop, jac=grad,
                                  options={"lr": 1e-2})          # the same result

Each method has a worker ``_minimize_<method>(fun, x0, args, jac, bounds,
callback, **options)`` that is also a scipy custom method. Options are the
optimizer's hyperparameters (see :class:`rmsopt.RMSprop` etc.) plus the loop
options of :func:`rmsopt.loop.run`, the engine: evaluate ``f, g`` at ``x``; stop
if converged; step; project onto the bounds; repeat. This module builds the
optimizer, the objective and the arrays' steps strategy, then runs the engine.

With ``options={"backend": "cuda"}`` (or ``"auto"`` and a device ``x0``), ``x``,
the gradients and the optimizer state live on the GPU: ``fun`` and ``jac`` get
device arrays, ``res.x`` and ``res.jac`` are device arrays, and per iteration
only ``f`` and the gradient norm (reduced on the device) come to the host.
"""

import inspect

import numpy as np

from . import _config, compiled, loop
from . import backend as _backend
from . import optimizer as _opt
from .objective import Objective

#: method name -> optimizer class: the registry, :data:`rmsopt.optimizer.OPTIMIZERS`
METHODS = _opt.OPTIMIZERS

def as_x0(x0):
    """``x0`` as a fresh 1-D float32/float64 array, or a ValueError naming it."""
    try:
        x = np.array(x0)  # always a copy: x0 is never modified
    except (TypeError, ValueError) as e:
        raise ValueError(f"x0 could not be converted to an array: {e}") from e
    x = loop.x0_dtype_and_shape(x)
    if x.size == 0:
        raise ValueError("x0 is empty")
    if not np.isfinite(x).all():
        raise ValueError("x0 contains NaN or inf")
    return x


def _run(name, fun, x0, args, jac, bounds, callback, options):
    if type(x0).__module__.startswith("dask."):  # chunked parameters stay on the cluster
        from .dask import minimize_dask
        return minimize_dask(name, fun, x0, args, jac, bounds, callback, options)
    cls, hyper_kwargs, schedule, options = loop.parse_options(name, options, args)
    compiled_mode = options.pop("compiled")
    backend = _backend.resolve(hyper_kwargs.get("backend", "auto"), x0)
    hyper_kwargs["backend"] = backend
    device = _backend.cuda_kernels().DeviceArrays() if backend == "cuda" else None
    x = as_x0(x0 if device is None else device.host_copy(x0, "x0"))
    if device is not None:
        x = device.to_device(x)  # x0 is checked on the host once; x then stays on the device
    opt = cls(x, **hyper_kwargs)  # validates every hyperparameter before any evaluation
    arrays = loop.HostArrays if device is None else device
    lb_ub = loop.as_bounds(bounds, x.size, x.dtype)
    if lb_ub is not None:
        if device is not None:
            lb_ub = tuple(device.to_device(b) for b in lb_ub)
        arrays.clip(x, lb_ub)
    objective = Objective(fun, jac, options["args"], x.dtype, device,
                          keep_point=device is not None)
    if device is None:
        options["compiled_loop"] = _compiled_loop(compiled_mode, opt, x, objective, lb_ub,
                                                  options)
    elif compiled_mode:
        raise ValueError("compiled=True: the compiled loop runs on the CPU, not with "
                         "backend='cuda'")
    steps = loop.TwoBuffers(opt, x) if device is None else loop.InPlace(opt, device)
    return loop.run(opt, x, objective, lb_ub, loop.wrap_callback(callback, arrays.copy),
                    lr=schedule, steps=steps, **options)


def _compiled_loop(mode, opt, x, objective, bounds, options):
    """The compiled loop when ``mode`` allows it and the problem suits it, else None.

    By default (``mode`` None) only below :data:`rmsopt._config.COMPILED_LOOP_SIZE`
    elements: above, Python's per-iteration overhead is lost in the work, and the
    Python loop's threaded, copy-free steps are faster.
    """
    if mode is False or (mode is None and x.size >= _config.COMPILED_LOOP_SIZE):
        return None
    try:
        return compiled.prepare(opt, x, objective, bounds, return_all=options["return_all"],
                                batches=options["batch_size"] is not None)
    except compiled.NotCompilable as e:
        if mode:
            raise ValueError(f"compiled=True, but the compiled loop cannot run this problem: "
                             f"{e}") from None
        return None


def _worker(name):
    cls = METHODS[name]

    def worker(fun, x0, args=(), jac=None, hess=None, hessp=None, bounds=None,
               constraints=None, callback=None, **options):
        if constraints not in (None, (), []):
            raise ValueError(f"method {name!r} does not support constraints")
        return _run(name, fun, x0, args, jac, bounds, callback, options)

    worker.__name__ = worker.__qualname__ = f"_minimize_{name}"
    worker.__doc__ = f"""Minimize a scalar function with {cls.__name__}.

    Also a scipy custom method: ``scipy.optimize.minimize(fun, x0, method=rmsopt.methods.{name})``.

    Options
    -------
    maxiter : int
        Maximum number of iterations (steps); default 10000, or epochs x batches.
    gtol : float
        Stop when the max-norm of the gradient (projected onto the bounds, if any) is
        <= gtol (default 1e-5; ``tol`` sets it). Not applied to mini-batch gradients.
    ftol : float
        Stop when ``f_prev - f <= ftol * max(|f|, |f_prev|, 1)``; default 0 (off).
    lr : float or callable
        Learning rate, or a schedule ``lr(k)`` of the iteration (see rmsopt.schedules).
    batch_size, epochs, seed : int
        Mini-batches: the data arguments are sliced by the same shuffled indices each
        step, reshuffled every epoch by ``numpy.random.default_rng(seed)``.
    data : tuple of int
        Positions in ``args`` of the data arguments (arrays sharing a leading axis of
        samples). By default: every array whose leading axis has the length of the first
        array's (arrays of another length then warn: name the data instead).
    disp : bool
        Print a convergence report.
    progress : bool
        Show a progress bar with f and the gradient norm (needs ``tqdm``).
    return_all : bool
        Add ``allvecs`` (every iterate) and ``history`` to the result.
    history : bool
        Add ``history`` (f, gradient max-norm and elapsed time per iteration).
    compiled : bool or None
        Run the iterations in nopython mode (see rmsopt.compiled): None (default) does
        when ``fun`` and ``jac`` (or ``fun`` with ``jac=True``) are Numba ``@njit``
        functions, there are no mini-batches and x has fewer than 32768 elements
        (``rmsopt._config.COMPILED_LOOP_SIZE``; larger problems are faster in the
        Python loop); True requires it; False never. The result is the same to the
        bit; a callback is still called after every iteration, the progress bar
        between compiled chunks (about every 0.1 s).
    Other options
        The hyperparameters of :class:`rmsopt.{cls.__name__}`:

{_hyper_doc(cls)}"""
    return worker


def _hyper_doc(cls):
    """The hyperparameters of optimizer class ``cls`` as option docs: the entries of its
    docstring's Parameters section but ``params`` (or, without one, its keywords and
    defaults), indented for the worker's docstring; no examples."""
    doc = inspect.cleandoc(cls.__doc__ or "")
    _, found, rest = doc.partition("\nParameters\n----------\n")
    if not found:
        sig = inspect.signature(cls.__init__).parameters.values()
        lines = [f"{p.name} : default {p.default!r}" for p in sig
                 if p.kind is p.KEYWORD_ONLY and p.name != "lr"]
    else:
        lines, keep = [], True
        for line in rest.splitlines():
            if line and not line.startswith(" "):
                if line in ("Examples", "Notes", "References", "See Also", "Returns"):
                    break
                keep = not line.startswith(("params ", "lr "))  # lr: in the Options above
            if keep:
                lines.append(line)
    return "\n".join(("        " + line) if line else "" for line in lines).rstrip()


WORKERS = {name: _worker(name) for name in METHODS}


def minimize(fun, x0, args=(), method="rmsprop", jac=None, bounds=None, tol=None, callback=None,
             options=None):
    """Minimize ``fun`` from ``x0`` with a first-order adaptive method; scipy's signature.

    Parameters
    ----------
    fun : callable
        ``fun(x, *args) -> float``; with ``jac=True`` it returns ``(f, gradient)``.
    x0 : array_like, shape (n,)
        Starting point; never modified. float32 stays float32; integers become float64.
        A chunked ``dask.array`` keeps parameters and state on its workers (:mod:`rmsopt.dask`).
    args : tuple
        Extra arguments of ``fun`` and ``jac`` (the data, for mini-batches).
    method : str
        ``"rmsprop"`` (default) or another name in :data:`METHODS` (``"sgd"``,
        ``"adam"``, ...; case-insensitive), each the optimizer class of that name.
    jac : callable, True, "2-point", "3-point" or None
        Gradient; None means forward differences. Finite-difference calls count in nfev.
    bounds : scipy.optimize.Bounds or sequence of (low, high)
        Box constraints, enforced by projection after every step.
    tol : float
        Default for the ``gtol`` option.
    callback : callable
        ``callback(intermediate_result)`` or ``callback(xk)`` after each iteration, with
        copies; raising StopIteration ends the run with status 99.
    options : dict
        See :func:`show_options`.

    Returns
    -------
    scipy.optimize.OptimizeResult
        ``x, fun, jac, nit, nfev, njev, status, success, message``; with mini-batches also
        ``epochs`` and ``steps``; ``allvecs`` and ``history`` on request.

    Examples
    --------
    >>> import numpy as np, rmsopt
    >>> from scipy.optimize import rosen, rosen_der
    >>> res = rmsopt.minimize(rosen, np.array([-1.0, 1.5]), jac=rosen_der,
    ...                       options={"lr": 1e-3, "maxiter": 20000})
    >>> bool(np.allclose(res.x, 1.0, atol=1e-2))
    True
    """
    if not isinstance(method, str) or method.lower() not in WORKERS:
        raise ValueError(f"Unknown solver (method) {method!r}; expected one of "
                         f"{', '.join(WORKERS)}")
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"options must be a dict of option names to values, got "
                        f"{type(options).__name__}")
    options = {} if options is None else dict(options)
    if tol is not None:
        options.setdefault("gtol", tol)
    return WORKERS[method.lower()](fun, x0, args=args, jac=jac, bounds=bounds,
                                   callback=callback, **options)


def show_options(method=None, disp=True):
    """The documentation of a method's options (all methods when ``method`` is None)."""
    if method is None:
        text = "\n\n".join(f"{name}\n{'=' * len(name)}\n{inspect.cleandoc(w.__doc__)}"
                           for name, w in WORKERS.items())
    else:
        if not isinstance(method, str) or method.lower() not in WORKERS:
            raise ValueError(f"Unknown solver {method!r}")
        text = inspect.cleandoc(WORKERS[method.lower()].__doc__)
    if disp:
        print(text)
        return None
    return text
