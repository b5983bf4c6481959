"""The objective as minimize sees it: value and gradient at x, counted and memoised.

``jac`` may be a callable ``jac(x, *args)``, ``True`` (``fun`` returns
``(f, g)``), or ``"2-point"``/``"3-point"``/``None`` for finite differences
(``None`` means ``"2-point"``, as in scipy). Every call of ``fun`` counts in
``nfev`` (finite-difference calls too), every call of ``jac`` in ``njev``; with
``jac=True`` one call counts in both. The last point is remembered, so ``fun``
is never evaluated twice at the same ``x`` with the same data. On the host,
``fun`` and ``jac`` get a read-only view of ``x`` (no copy; see
:class:`Objective` for a function that writes into it).

With ``device`` (:class:`rmsopt._kernels.cuda.DeviceArrays`), ``x`` is a CUDA
device array: ``fun``/``jac`` get a device copy (in a buffer reused from call to
call), gradients are kept on the device, and finite differences are not offered
(one launch per element).
"""

import numpy as np

from .compiled import same_point

FD_METHODS = ("2-point", "3-point")


def scalar_value(f):
    """``f`` as a Python float, with scipy's wording for non-scalars."""
    if type(f) is float or type(f) is np.float64:
        return float(f)  # the common case, without the checks below
    if isinstance(f, (str, bytes)) or f is None:
        raise TypeError(f"The objective function must return a real scalar, got "
                        f"{type(f).__name__} {f!r}")
    if isinstance(f, tuple) and len(f) == 2:
        raise TypeError("The objective function returned a pair, not a scalar; if it "
                        "returns (f, gradient), pass jac=True")
    a = np.asarray(f)
    if a.size != 1:
        raise ValueError("The user-provided objective function must return a scalar value.")
    if a.dtype.kind not in "fiub":
        raise TypeError(f"The objective function must return a real scalar, got dtype {a.dtype}")
    return float(a.reshape(()))


def checked_gradient(g, shape):
    """``jac``'s value as a host array (not a copy) of the shape of x, or a clear error."""
    if g is None:
        raise TypeError(f"jac returned None; it must return the gradient, an array of shape "
                        f"{shape} (the shape of x)")
    try:
        g = np.asarray(g)
    except ValueError as e:
        raise ValueError(f"jac returned something that is not an array (a ragged nested "
                         f"sequence?): {e}") from None
    if g.shape != shape:
        raise ValueError(f"jac returned an array of shape {g.shape}; expected {shape} "
                         "(the shape of x)")
    if g.dtype.kind not in "fiub":
        raise TypeError(f"jac must return a real array, got dtype {g.dtype}")
    return g


def _owner(a):
    """The array that owns ``a``'s memory (NumPy collapses ``base`` to it), or ``a``."""
    return a if a.base is None else a.base


def _wrote_to_readonly(e):
    """Whether exception ``e`` says a read-only array was written (NumPy, Numba)."""
    text = str(e)
    return "read-only" in text or "readonly" in text


class Objective:
    """``fun`` and its gradient at a point, with evaluation counts.

    Parameters
    ----------
    fun : callable
        ``fun(x, *args) -> float`` (or ``(float, array)`` with ``jac=True``).
    jac : callable, True, "2-point", "3-point" or None
    args : tuple
        Extra arguments; :meth:`set_args` swaps them (mini-batches).
    dtype : numpy dtype
        Gradients are returned in this dtype.
    device : DeviceArrays, optional
        The device operations, when ``x`` is a CUDA device array.
    keep_point : bool
        Keep a copy of the last point for the memo (in a buffer allocated once).
        False when the caller says where the last point is (``last`` of
        :meth:`__call__`), as minimize's two-buffer loop does.

    Notes
    -----
    Nothing proportional to ``x`` is allocated per call on the host. ``fun`` and
    ``jac`` get a read-only view of ``x``, valid during the call (scipy passes a
    fresh copy; copy it to keep it). A function that writes into its argument
    fails on that view; the call is then repeated, not counted twice, with a
    writable copy, and so is every later call (in a buffer allocated once). The
    gradient returned is the function's own array when it is a C-contiguous array
    of ``dtype``; otherwise, and when the function returns the same array again
    (a buffer it reuses), it is converted or copied into one of two buffers of
    this object, so that the previous gradient survives the next call (from the
    second call on: the first gradient of a function that reuses its array is
    overwritten by the second call).
    """

    def __init__(self, fun, jac, args, dtype, device=None, keep_point=True):
        if not callable(fun):
            raise TypeError(f"fun must be callable, got {type(fun).__name__}")
        if not (callable(jac) or jac is True or jac is None or jac is False
                or (isinstance(jac, str) and jac in FD_METHODS)):
            raise ValueError(f"Invalid jac {jac!r}; expected a callable, True, "
                             "'2-point', '3-point' or None")
        if device is not None and not (callable(jac) or jac is True):
            raise ValueError(f"jac={jac!r}: with x on a CUDA device, jac must be a callable or "
                             "True (finite differences would need a launch per element)")
        self.fun, self.jac, self.dtype = fun, jac, np.dtype(dtype)
        self.device = device
        self.args = tuple(args)
        self.nfev = self.njev = 0
        self.keep_point = keep_point
        self._point = None  # the memo's copy of the last point (keep_point)
        self._memo = None  # (f, g) at the last point, or None
        self._views = {}  # read-only views of the arrays passed, by id
        self._private = None  # a writable copy for a function that writes into x
        self._own = []  # up to two gradient buffers of ours, used in turn
        self._turn = 0
        self._returned = None  # the function's last gradient array, to see it reused
        self._h = self._xh = None  # finite differences: steps and the moved point

    def set_args(self, args):
        """Use other extra arguments (a new mini-batch); forgets the memo."""
        self.args = tuple(args)
        self._memo = None

    def _argument(self, x):
        """What ``fun``/``jac`` get for ``x``: a read-only view, or a private copy."""
        if self.device is not None:
            if self._private is None:
                self._private = self.device.copy(x)
            else:
                self.device.assign(self._private, x)
            return self._private
        if self._private is not None:
            np.copyto(self._private, x)
            return self._private
        entry = self._views.get(id(x))
        if entry is None or entry[0] is not x:
            if len(self._views) > 8:
                self._views.clear()
            view = x.view()
            view.flags.writeable = False
            entry = self._views[id(x)] = (x, view)
        return entry[1]

    def _call(self, fn, x):
        """``fn(x, *args)``, repeated with a writable copy if ``fn`` wrote into ``x``."""
        if self._private is None and self.device is None:
            try:
                return fn(self._argument(x), *self.args)
            except Exception as e:
                if not _wrote_to_readonly(e):
                    raise
                self._private = np.empty_like(x)
        return fn(self._argument(x), *self.args)

    def _value(self, x):
        self.nfev += 1
        f = self._call(self.fun, x)
        return scalar_value(f) if self.device is None else self.device.scalar(f, scalar_value)

    def _buffer(self, x):
        """The next of this object's two gradient buffers."""
        if not self._own:  # allocated once, both at once
            self._own = [np.empty(x.shape, self.dtype), np.empty(x.shape, self.dtype)]
        self._turn ^= 1
        return self._own[self._turn]

    def _gradient(self, g, x):
        if self.device is not None:  # a host gradient checked here, then copied over
            host = not self.device.is_device_array(g)
            return self.device.gradient(checked_gradient(g, x.shape) if host else g, x,
                                        self.dtype)
        if type(g) is np.ndarray and g.dtype == self.dtype and g.shape == x.shape \
                and g.flags.c_contiguous:
            last, self._returned = self._returned, g
            if last is not None and _owner(g) is _owner(last):
                # a buffer the function reuses: ours keep the values from call to call
                out = self._buffer(x)
                np.copyto(out, g)
                return out
            return g
        g = checked_gradient(g, x.shape)  # or the error that says what is wrong
        out = self._buffer(x)
        np.copyto(out, g, casting="unsafe")
        return out

    def _same_point(self, x, last):
        if self._memo is None:
            return False
        if last is None:
            if self._point is None:
                return False
            last = self._point
        if self.device is not None:
            return self.device.equal(x, last)
        return x is last or same_point(x, last)

    def __call__(self, x, last=None):
        """``(f, g)`` at ``x``; ``g`` is an array of the objective's dtype: read it, do not
        modify it.

        ``last``, when given, is an array that still holds the point of the previous
        call unchanged: the memo compares ``x`` with it, and keeps no copy of its own.
        """
        if self._same_point(x, last):
            return self._memo
        if self.jac is True:
            self.nfev += 1
            self.njev += 1
            out = self._call(self.fun, x)
            if not isinstance(out, tuple) or len(out) != 2:
                raise TypeError("with jac=True, fun must return a tuple (f, gradient)")
            f = scalar_value(out[0]) if self.device is None else \
                self.device.scalar(out[0], scalar_value)
            g = self._gradient(out[1], x)
        elif callable(self.jac):
            f = self._value(x)
            self.njev += 1
            g = self._gradient(self._call(self.jac, x), x)
        else:
            f = self._value(x)
            g = self._finite_differences(x, f)
        if self.keep_point:
            if self._point is None:
                self._point = x.copy() if self.device is None else self.device.copy(x)
            elif self.device is None:
                np.copyto(self._point, x)
            else:
                self.device.assign(self._point, x)
        self._memo = (f, g)
        return f, g

    def _finite_differences(self, x, f0):
        """Forward (``"2-point"``, default) or central (``"3-point"``) differences.

        Relative steps :math:`h_i = \\epsilon^{1/2} \\max(1, |x_i|)` (forward) or
        :math:`\\epsilon^{1/3} \\max(1, |x_i|)` (central), with :math:`\\epsilon` of
        x's dtype; the step actually taken is ``(x + h) - x``, exact in floating point.
        """
        central = self.jac == "3-point"
        eps = np.finfo(x.dtype).eps
        if self._xh is None:
            self._h, self._xh = np.empty_like(x), np.empty_like(x)
        h, xh = self._h, self._xh
        np.abs(x, out=h)
        np.maximum(h, 1.0, out=h)
        h *= eps ** (1 / 3) if central else eps ** 0.5
        g = self._buffer(x)
        np.copyto(xh, x)
        for i in range(x.size):
            xi = x[i]
            xh[i] = xi + h[i]
            up = xh[i] - xi
            f_up = self._value(xh)
            if central:
                xh[i] = xi - h[i]
                down = xi - xh[i]
                g[i] = (f_up - self._value(xh)) / (up + down)
            else:
                g[i] = (f_up - f0) / up
            xh[i] = xi
        return g
