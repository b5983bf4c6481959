"""CUDA kernels and launchers: indexing plus one call of a rule from :mod:`rmsopt.rules`.

Imported only when ``backend="cuda"`` is asked for (``import rmsopt`` never
loads ``numba.cuda``). Parameters, gradients and state stay on the device;
parameters and gradients are any C-contiguous float32/float64 device arrays
(Numba device arrays, or objects with ``__cuda_array_interface__``: CuPy
arrays, PyTorch CUDA tensors), updated in place.

Many arrays, one launch
    Like the CPU kernels, a step is one launch over a *task table*: row ``t``
    says "elements ``lo:hi`` of array ``j``". The kernel reaches array ``j``
    through a device table of addresses (``paddr``, ``gaddr``) and the
    intrinsics :func:`_load` / :func:`_store`. We chose this over a flat
    parameter buffer (which would need a gather and a scatter per step, three
    times the memory traffic, or would take the arrays' ownership from the
    caller) and over one launch per array (a launch costs more than a small
    array's update). The address table of the parameters is uploaded once;
    that of the gradients only when their addresses change. The optimizer
    state is one flat device buffer per slot, array ``j`` at ``offset[j]``.

Launch shape
    A block takes ``CUDA_TASK_SIZE`` elements of one array at a time, its
    threads striding over them (coalesced loads); at most ``CUDA_MAX_BLOCKS``
    blocks stride over the tasks (:mod:`rmsopt._config`). The update is
    elementwise, so the shape does not change any result.

Global-norm clipping
    Reduced on the device in the fixed order of
    :func:`rmsopt._kernels.cpu.task_sum_squares` (one thread per lane, lanes
    combined by pairwise halving in shared memory, task partials added in task
    order by one thread), in float64; the clip scale
    :func:`rmsopt.rules.clip_scale` is computed on the device too and read by
    the step kernel, so a clipped step has no host round trip. These two
    kernels are float64 by design (accumulation); the step kernels of float32
    arrays contain no float64 arithmetic.

The simulator (``NUMBA_ENABLE_CUDASIM=1``) runs the kernels as Python. There
the rules run as Python too (:func:`_python_rules`), with NumPy scalars, so
its results equal the CPU backend's bit for bit; compiled for a GPU, NVVM
contracts multiply-adds into FMAs, which moves results by a few ULP.
"""

import ctypes
import math
import types as pytypes

import numpy as np
from numba import cuda, njit
from numba.core.dispatcher import Dispatcher

from .. import _config, rules
from . import cpu
from .devices import is_device_array
from .layout import Layout

SIMULATOR = bool(cuda.config.ENABLE_CUDASIM)
JIT = dict(fastmath=_config.FASTMATH)


def available():
    """Whether kernels can run here: a CUDA GPU, or the simulator."""
    return SIMULATOR or cuda.is_available()


def require():
    """Raise a RuntimeError that says what is missing when no GPU can be used."""
    if not available():
        raise RuntimeError(
            "backend='cuda' found no usable CUDA GPU (numba.cuda.is_available() is False): "
            "it needs an NVIDIA driver and GPU, and numba-cuda built for that CUDA version "
            "(pip install 'rmsopt[cuda]'). Without a GPU, set NUMBA_ENABLE_CUDASIM=1 before "
            "importing numba to run the kernels in Numba's simulator (slow), or use "
            "backend='cpu'.")


# ------------------------------------------------------------ element access

def _python_rules():
    """:mod:`rmsopt.rules` as plain Python functions, for the simulator.

    Each rule's ``py_func`` is rebound to a namespace in which the other rules
    are Python functions as well and ``sqrt`` is ``np.sqrt``: Python's
    ``math.sqrt`` returns a double, NumPy's keeps float32 as compiled code
    does. Calling the compiled rules instead would box float32 results as
    Python floats and promote the next step to float64.
    """
    namespace = dict(vars(rules))
    namespace["sqrt"] = np.sqrt
    for name, obj in vars(rules).items():
        if isinstance(obj, Dispatcher):
            f = obj.py_func
            namespace[name] = pytypes.FunctionType(f.__code__, namespace, name, f.__defaults__,
                                                   f.__closure__)
    return pytypes.SimpleNamespace(**namespace)


if SIMULATOR:
    R = _python_rules()

    def _host_view(address, n, dtype):
        buffer = (ctypes.c_char * (int(n) * dtype.itemsize)).from_address(int(address))
        return np.frombuffer(buffer, dtype)

    def _load(ref, address, index):
        """Element ``index`` of the ``ref.dtype`` array at ``address``."""
        return _host_view(address, index + 1, ref.dtype)[index]

    def _store(ref, address, index, value):
        """Write ``value`` (as ``ref.dtype``) to element ``index`` of the array at ``address``."""
        _host_view(address, index + 1, ref.dtype)[index] = value

else:
    from numba.cuda import types
    from numba.cuda.extending import intrinsic

    R = rules

    def _element_pointer(context, builder, dtype, address, index):
        base = builder.inttoptr(address, context.get_value_type(dtype).as_pointer())
        return builder.gep(base, [index])

    @intrinsic
    def _load(typingctx, ref, address, index):
        """Element ``index`` of the ``ref.dtype`` array at ``address`` (an int64)."""
        if not (isinstance(address, types.Integer) and isinstance(index, types.Integer)):
            return None

        def codegen(context, builder, sig, args):
            return builder.load(_element_pointer(context, builder, ref.dtype, args[1], args[2]))

        return ref.dtype(ref, address, index), codegen

    @intrinsic
    def _store(typingctx, ref, address, index, value):
        """Write ``value`` (as ``ref.dtype``) to element ``index`` of the array at ``address``."""
        if not (isinstance(address, types.Integer) and isinstance(index, types.Integer)):
            return None

        def codegen(context, builder, sig, args):
            v = context.cast(builder, args[3], sig.args[3], ref.dtype)
            builder.store(v, _element_pointer(context, builder, ref.dtype, args[1], args[2]))
            return context.get_dummy_value()

        return types.void(ref, address, index, value), codegen


# ------------------------------------------------------------------ kernels

_step_kernels = {}


def step_kernel(rule, flags, common, active):
    """The CUDA step for one rule variant (built once, then memoised).

    Same arguments as :func:`rmsopt._kernels.cpu.step_kernel`, without
    ``parallel``. The kernel compiles once per dtype.
    """
    key = (rule, flags, common, active)
    if key not in _step_kernels:
        _step_kernels[key] = _build_step(rule, flags, common, active)
    return _step_kernels[key]


def _build_step(rule, flags, common, active):
    use0, use1, use2 = active
    rule = getattr(R, rule.py_func.__name__)
    prepare, decay, scalars = R.prepare_gradient, R.decay_parameter, rules.CommonScalars

    @cuda.jit(**JIT)
    def step(paddr, gaddr, offset, tasks, s0, s1, s2, c, h, scale):
        if common.clip_norm:  # the clip scale comes from the device reduction
            c = scalars(scale[0], scale[1], c.clip, c.neg_clip, c.wd, c.decay)
        for t in range(cuda.blockIdx.x, tasks.shape[0], cuda.gridDim.x):
            j = tasks[t, 0]
            pa, ga, base = paddr[j], gaddr[j], offset[j]
            for k in range(tasks[t, 1] + cuda.threadIdx.x, tasks[t, 2], cuda.blockDim.x):
                pk = _load(scale, pa, k)
                gk = prepare(pk, _load(scale, ga, k), c, common)
                pk = decay(pk, c, common)
                i = base + k
                # An unused slot (an empty array) gets a placeholder that the rule ignores.
                a = s0[i] if use0 else gk
                b = s1[i] if use1 else gk
                d = s2[i] if use2 else gk
                pk, a, b, d = rule(pk, gk, a, b, d, h, flags)
                _store(scale, pa, k, pk)
                if use0:
                    s0[i] = a
                if use1:
                    s1[i] = b
                if use2:
                    s2[i] = d

    return step


_sum_squares_kernels = {}


def sum_squares_kernel(lanes):
    """The partial sums of squares with ``lanes`` threads per block (memoised)."""
    if lanes not in _sum_squares_kernels:
        _sum_squares_kernels[lanes] = _build_sum_squares(lanes)
    return _sum_squares_kernels[lanes]


def _build_sum_squares(lanes_n):
    @cuda.jit(**JIT)
    def sum_squares_partials(gaddr, tasks, ref, partial):
        """``partial[t]``: sum of squares of task ``t`` in float64, in the CPU kernel's order."""
        lanes = cuda.shared.array(lanes_n, np.float64)
        lane = cuda.threadIdx.x
        for t in range(cuda.blockIdx.x, tasks.shape[0], cuda.gridDim.x):
            ga, lo, hi = gaddr[tasks[t, 0]], tasks[t, 1], tasks[t, 2]
            acc = np.float64(0)
            for k in range(lo + lane, hi, lanes_n):
                x = np.float64(_load(ref, ga, k))
                acc += x * x
            lanes[lane] = acc
            cuda.syncthreads()
            w = lanes_n // 2
            while w > 0:  # cpu.tree_sum, one thread per lane
                if lane < w:
                    lanes[lane] += lanes[lane + w]
                cuda.syncthreads()
                w //= 2
            if lane == 0:
                partial[t] = lanes[0]
            cuda.syncthreads()

    return sum_squares_partials


# The host's split_scale is a plain function that CPU code inlines (rules.host_and_kernel);
# the device calls it compiled (the simulator as Python).
_split_scale = R.split_scale if SIMULATOR else njit(inline="always")(rules.split_scale)


@cuda.jit(**JIT)
def _clip_scale(gaddr, tasks, ref, partial, clip_norm, scale):
    """``scale[:2]``: the clip scale of the global norm (split by
    :func:`rmsopt.rules.split_scale`), the partials added in task order.

    One block of a warp (the usual path is one thread's sum, the other rare).
    If the sum of squares overflows (float64 elements above about 1.3e154, no
    NaN), the block redoes the norm as the CPU kernel does
    (:func:`rmsopt._kernels.cpu.global_norm`): each task's largest magnitude
    ``m``, then each task's sum of ``(g / m)**2`` in element order (one thread
    per task), the tasks added in order: ``norm = m * sqrt(total)``. The
    partials are overwritten on that path only.
    """
    shared = cuda.shared.array(1, np.float64)
    lane, ntasks = cuda.threadIdx.x, partial.shape[0]
    if lane == 0:
        total = np.float64(0)
        for t in range(ntasks):
            total += partial[t]
        shared[0] = total
    cuda.syncthreads()
    total = shared[0]  # the same in every thread: the branches below are uniform
    if total != np.inf:  # finite, or NaN: the usual case
        norm = math.sqrt(total)
    else:
        for t in range(lane, ntasks, cuda.blockDim.x):
            ga, m = gaddr[tasks[t, 0]], np.float64(0)
            for k in range(tasks[t, 1], tasks[t, 2]):
                a = abs(np.float64(_load(ref, ga, k)))
                if a > m:
                    m = a
            partial[t] = m
        cuda.syncthreads()
        if lane == 0:
            m = np.float64(0)
            for t in range(ntasks):
                if partial[t] > m:
                    m = partial[t]
            shared[0] = m
        cuda.syncthreads()
        m = shared[0]
        if m == np.inf:  # an infinite element: the norm is inf
            norm = m
        else:
            for t in range(lane, ntasks, cuda.blockDim.x):
                ga, acc = gaddr[tasks[t, 0]], np.float64(0)
                for k in range(tasks[t, 1], tasks[t, 2]):
                    x = np.float64(_load(ref, ga, k)) / m
                    acc += x * x
                partial[t] = acc
            cuda.syncthreads()
            total = np.float64(0)
            for t in range(ntasks):
                total += partial[t]
            norm = m * math.sqrt(total)
    if lane == 0:
        scale[0], scale[1] = _split_scale(R.clip_scale(norm, clip_norm, np.float64(1)))


@cuda.jit(**JIT)
def _find_nonfinite(addr, tasks, ref, flag):
    """``flag[0] = 1`` if any element of the arrays is NaN or infinite."""
    for t in range(cuda.blockIdx.x, tasks.shape[0], cuda.gridDim.x):
        a = addr[tasks[t, 0]]
        for k in range(tasks[t, 1] + cuda.threadIdx.x, tasks[t, 2], cuda.blockDim.x):
            if not math.isfinite(_load(ref, a, k)):
                flag[0] = 1


# ------------------------------------------------------------- device arrays

def interface(a):
    """The ``__cuda_array_interface__`` of a device array (the simulator's: its host memory)."""
    iface = getattr(a, "__cuda_array_interface__", None)
    if iface is None and SIMULATOR and is_device_array(a):
        iface = a.__array_interface__
    return iface


def _contiguous(shape, strides, itemsize):
    if strides is None:
        return True
    expected = itemsize
    for n, s in zip(reversed(shape), reversed(strides)):
        if n > 1 and s != expected:
            return False
        expected *= n
    return True


class _Array:
    """What the launchers need of one device array: address, shape, dtype, byte range."""

    __slots__ = ("obj", "address", "shape", "dtype", "size", "nbytes", "readonly", "contiguous",
                 "stream")

    def __init__(self, obj, iface):
        self.obj = obj
        self.address, self.readonly = int(iface["data"][0]), bool(iface["data"][1])
        self.shape = tuple(int(n) for n in iface["shape"])
        self.dtype = np.dtype(iface["typestr"])
        self.size = math.prod(self.shape)
        self.nbytes = self.size * self.dtype.itemsize
        self.contiguous = _contiguous(self.shape, iface.get("strides"), self.dtype.itemsize)
        self.stream = iface.get("stream")

    def overlaps(self, other):
        return (self.address < other.address + other.nbytes
                and other.address < self.address + self.nbytes)


def _describe(a, name, what):
    """``a`` as an :class:`_Array`, or a TypeError naming it when it is not on the device."""
    if not is_device_array(a):
        kind = "a host (NumPy) array" if isinstance(a, np.ndarray) else type(a).__name__
        raise TypeError(
            f"{name} is {kind}, but backend='cuda' {what} device arrays (a Numba device array, "
            "or any object with __cuda_array_interface__: CuPy, PyTorch CUDA tensors); copy it "
            "with numba.cuda.to_device(...), cupy.asarray(...) or tensor.cuda()")
    return _Array(a, interface(a))


def _synchronize(arr):
    """Wait for the stream an array's producer names (``__cuda_array_interface__`` v3)."""
    if not SIMULATOR and arr.stream not in (None, 0, 1, 2):  # 0-2: the default streams
        cuda.external_stream(arr.stream).synchronize()


def as_device_view(arr):
    """A Numba device array sharing ``arr``'s memory (for copies to and from the host)."""
    obj = arr.obj
    if hasattr(obj, "copy_to_host"):  # a Numba device array (or the simulator's)
        return obj
    if SIMULATOR:  # an object with only __cuda_array_interface__ (the tests'): host memory
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        return FakeCUDAArray(_host_view(arr.address, arr.size, arr.dtype).reshape(arr.shape))
    return cuda.as_cuda_array(obj)


def param_arrays(params):
    """Validate device ``params``; return ``(arrays, single)`` as :class:`_Array` records.

    Checked before anything is allocated: device residence, dtype (float32 or
    float64, one for all), C-contiguity, writability, size, no overlap, and
    finite values (one reduction on the device).
    """
    single = not isinstance(params, (list, tuple))
    objs = [params] if single else list(params)
    if not objs:
        raise ValueError("params is an empty list")
    arrays = []
    for i, a in enumerate(objs):
        name = "params" if single else f"params[{i}]"
        arr = _describe(a, name, "updates")
        if arr.dtype not in (np.float32, np.float64):
            raise ValueError(f"{name} has dtype {arr.dtype}; an optimizer updates float32 or "
                             "float64 arrays in place (convert on the device first)")
        if arr.dtype != arrays[0].dtype if arrays else False:
            raise ValueError(f"{name} has dtype {arr.dtype} but params[0] has "
                             f"{arrays[0].dtype}; all parameter arrays must share one dtype")
        if arr.readonly:
            raise ValueError(f"{name} is read-only; the optimizer updates it in place")
        if not arr.contiguous:
            raise ValueError(f"{name} is not C-contiguous; pass a contiguous copy (e.g. "
                             "cupy.ascontiguousarray(...)) and keep a reference to it")
        if arr.size == 0:
            raise ValueError(f"{name} is empty")
        for k, other in enumerate(arrays):
            if arr.overlaps(other):
                raise ValueError(f"params[{i}] and params[{k}] share memory")
        arrays.append(arr)
    for i, arr in enumerate(arrays):
        _synchronize(arr)
        if not all_finite(arr):
            raise ValueError(f"{'params' if single else f'params[{i}]'} contains NaN or inf")
    return arrays, single


def grad_arrays(grad, params, single):
    """Validate one step's device gradients against ``params``; return :class:`_Array` records."""
    if single:
        grads, names = [grad], ["grad"]
    else:
        if not isinstance(grad, (list, tuple)) or len(grad) != len(params):
            raise ValueError(f"grad must be a list of {len(params)} arrays, one per parameter "
                             f"array; got {type(grad).__name__}"
                             + (f" of length {len(grad)}" if isinstance(grad, (list, tuple))
                                else ""))
        grads, names = list(grad), [f"grad[{i}]" for i in range(len(grad))]
    out = []
    for g, p, name in zip(grads, params, names):
        arr = _describe(g, name, "takes")
        if arr.dtype != p.dtype:
            raise ValueError(f"{name} has dtype {arr.dtype} but the parameters have {p.dtype}; "
                             "on the device, gradients must have the parameters' dtype "
                             "(convert with .astype(...))")
        if arr.shape != p.shape:
            raise ValueError(f"{name} has shape {arr.shape} but its parameter has shape "
                             f"{p.shape}")
        if not arr.contiguous:
            raise ValueError(f"{name} is not C-contiguous; pass a contiguous copy")
        if arr.overlaps(p):
            raise ValueError(f"{name} shares memory with its parameter array; pass a copy")
        _synchronize(arr)
        out.append(arr)
    return out


def full(n, value, dtype):
    """A new device array of ``n`` elements equal to ``value``."""
    return cuda.to_device(np.full(n, value, dtype=dtype))


def to_host(a):
    """A host copy of a device array or of an array given by its CUDA array interface."""
    return (as_device_view(a) if isinstance(a, _Array) else a).copy_to_host()


# ------------------------------------------------------------------ launches


def _grid(rows, threads):
    return max(1, min(rows, _config.CUDA_MAX_BLOCKS)), threads


def all_finite(arr):
    """Whether every element of the device array ``arr`` is finite (one flag back to the host)."""
    tasks = cpu.task_table([arr.size], _config.CUDA_TASK_SIZE)
    flag = cuda.to_device(np.zeros(1, dtype=np.int32))
    ref = cuda.device_array(0, dtype=arr.dtype)
    _find_nonfinite[_grid(tasks.shape[0], _config.CUDA_THREADS_PER_BLOCK)](
        cuda.to_device(np.array([arr.address], dtype=np.int64)), cuda.to_device(tasks), ref, flag)
    return not flag.copy_to_host()[0]


class DeviceLayout(Layout):
    """Where each device parameter array lives in the flat state, and the device tables.

    ``size``, ``offset``, ``tasks`` (the reduction's task table: the CPU kernels' rows, for
    the same order) and ``n`` as :class:`rmsopt._kernels.layout.Layout`; the step's and the
    reduction's grids and the tables they read, on the device.
    """

    parallel = False

    def __init__(self, arrays):
        super().__init__(arrays)
        step_tasks = cpu.task_table(self.size.tolist(), _config.CUDA_TASK_SIZE)
        self.step_grid = _grid(step_tasks.shape[0], _config.CUDA_THREADS_PER_BLOCK)
        self.lanes = _config.REDUCE_LANES
        self.reduce_grid = _grid(self.tasks.shape[0], self.lanes)
        self.d_tasks = cuda.to_device(self.tasks)
        self.d_step_tasks = cuda.to_device(step_tasks)
        self.d_offset = cuda.to_device(self.offset)
        self.d_paddr = cuda.to_device(np.array([a.address for a in arrays], dtype=np.int64))


class _Addresses:
    """A device table of gradient addresses, uploaded only when they change."""

    def __init__(self, count):
        self.host = None
        self.device = cuda.device_array(count, dtype=np.int64)

    def __call__(self, grads):
        addresses = tuple(g.address for g in grads)
        if addresses != self.host:
            self.device.copy_to_device(np.array(addresses, dtype=np.int64))
            self.host = addresses
        return self.device


def step_function(rule, flags, common, active, layout, dtype, state, clip_norm):
    """``step(grads, c, h)`` for fixed parameters, state and variant (the per-step path).

    ``grads`` are validated :class:`_Array` records. With ``clip_norm`` the
    clip scale is reduced on the device first; ``c.clip_scale`` is then ignored.
    """
    kernel = step_kernel(rule.kernel, flags, common, active)
    reduce = sum_squares_kernel(layout.lanes)
    gaddr = _Addresses(len(layout.size))
    scale = cuda.to_device(np.ones(2, dtype=dtype))
    partial = cuda.device_array(layout.tasks.shape[0], dtype=np.float64)
    clip = np.float64(clip_norm or 0.0)
    s0, s1, s2 = state

    def step(grads, c, h):
        d_gaddr = gaddr(grads)
        if common.clip_norm:
            reduce[layout.reduce_grid](d_gaddr, layout.d_tasks, scale, partial)
            _clip_scale[1, 32](d_gaddr, layout.d_tasks, scale, partial, clip, scale)
        kernel[layout.step_grid](layout.d_paddr, d_gaddr, layout.d_offset, layout.d_step_tasks,
                                 s0, s1, s2, c, h, scale)

    return step


# ------------------------------------------------- minimize: x on the device
# The loop of rmsopt.minimize with x, gradients and state on the device: copies stay on the
# device, and per iteration only scalars come back (f from fun, the gradient norm).

@cuda.jit(device=True)
def _nanmax(m, v):
    """``max(m, v)`` for ``v >= 0`` that keeps a NaN once seen (as ``np.max`` propagates it)."""
    return v if (not v <= m) and m == m else m


_max_abs_kernels = {}


def _max_abs_kernel(threads):
    """Per block, the max of ``|g|`` (or of the projected gradient, with bounds) (memoised)."""
    if threads not in _max_abs_kernels:
        @cuda.jit(**JIT)
        def max_abs(x, g, lb, ub, bounded, partial):
            best = cuda.shared.array(threads, np.float64)
            lane = cuda.threadIdx.x
            m = np.float64(0)
            for k in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
                v = g[k]
                if bounded:  # x - clip(x - g, lb, ub), as np.clip computes it
                    t = x[k] - g[k]
                    if t < lb[k]:
                        t = lb[k]
                    if t > ub[k]:
                        t = ub[k]
                    v = x[k] - t
                m = _nanmax(m, np.float64(abs(v)))
            best[lane] = m
            cuda.syncthreads()
            w = threads // 2
            while w > 0:
                if lane < w:
                    best[lane] = _nanmax(best[lane], best[lane + w])
                cuda.syncthreads()
                w //= 2
            if lane == 0:
                partial[cuda.blockIdx.x] = best[0]

        _max_abs_kernels[threads] = max_abs
    return _max_abs_kernels[threads]


@cuda.jit(**JIT)
def _max_of(partial, out):
    if cuda.grid(1) == 0:
        m = np.float64(0)
        for b in range(partial.shape[0]):
            m = _nanmax(m, partial[b])
        out[0] = m


@cuda.jit(**JIT)
def _clip_into(x, lb, ub):
    for k in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
        v = x[k]
        if v < lb[k]:
            v = lb[k]
        if v > ub[k]:
            v = ub[k]
        x[k] = v


@cuda.jit(**JIT)
def _find_difference(a, b, flag):
    for k in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        if a[k] != b[k]:
            flag[0] = 1


def _elementwise_grid(n):
    threads = _config.CUDA_THREADS_PER_BLOCK
    return _grid(-(-n // threads), threads)


class DeviceArrays:
    """The array operations of :func:`rmsopt.minimize`'s loop on 1-D device arrays.

    The host loop (:class:`rmsopt.loop.TwoBuffers`) does the same on NumPy
    arrays; results are the same (max and clip are exact operations). One
    instance per run: its scratch buffers (the reductions' partials and flags,
    two gradient buffers used in turn) are allocated by the first call that
    needs them, so that the iterations allocate nothing on the device.
    """

    is_device_array = staticmethod(is_device_array)

    def __init__(self):
        self._norm = None  # (partial, out) of grad_norm
        self._flag = None  # equal's difference flag
        self._zero = np.zeros(1, dtype=np.int32)
        self._grads, self._turn = [], 0

    @staticmethod
    def to_device(a, dtype=None):
        return cuda.to_device(np.ascontiguousarray(a, dtype=dtype))

    @staticmethod
    def host_copy(a, name):
        """A host copy of ``a`` if it is a device array, else ``a`` itself."""
        if is_device_array(a):
            return as_device_view(_describe(a, name, "takes")).copy_to_host()
        return a

    @staticmethod
    def copy(a):
        out = cuda.device_array_like(a)
        out.copy_to_device(a)
        return out

    @staticmethod
    def assign(dst, src):
        dst.copy_to_device(src)

    def equal(self, a, b):
        if a.shape != b.shape:
            return False
        if self._flag is None:
            self._flag = cuda.device_array(1, dtype=np.int32)
        self._flag.copy_to_device(self._zero)
        _find_difference[_elementwise_grid(a.shape[0])](a, b, self._flag)
        return not self._flag.copy_to_host()[0]

    @staticmethod
    def clip(x, bounds):
        _clip_into[_elementwise_grid(x.shape[0])](x, bounds[0], bounds[1])

    def grad_norm(self, x, g, bounds):
        """Max-norm of the gradient (projected onto the bounds), reduced on the device."""
        blocks, threads = _elementwise_grid(x.shape[0])
        if self._norm is None or self._norm[0].shape[0] != blocks:
            self._norm = (cuda.device_array(blocks, dtype=np.float64),
                          cuda.device_array(1, dtype=np.float64))
        partial, out = self._norm
        lb, ub = bounds if bounds is not None else (x, x)
        _max_abs_kernel(threads)[blocks, threads](x, g, lb, ub, bounds is not None, partial)
        _max_of[1, 1](partial, out)
        return float(out.copy_to_host()[0])

    @staticmethod
    def scalar(f, convert):
        """``fun``'s value as a Python float; a device scalar or 1-element array comes back."""
        if is_device_array(f):
            f = as_device_view(_describe(f, "the objective's value", "takes")).copy_to_host()
        return convert(f)

    def _buffer(self, x):
        """The next of this object's two gradient buffers (the previous gradient survives
        the next evaluation, as the loop needs)."""
        if not self._grads:
            self._grads = [cuda.device_array(x.shape, dtype=x.dtype) for _ in range(2)]
        self._turn ^= 1
        return self._grads[self._turn]

    def gradient(self, g, x, dtype):
        """``jac``'s value in one of this object's device buffers of ``dtype`` (a host array is
        copied over; a device array copied on the device, since ``jac`` may reuse it)."""
        if not is_device_array(g):  # (checked by the caller, rmsopt.objective)
            out = self._buffer(x)
            out.copy_to_device(np.ascontiguousarray(g, dtype=dtype))
            return out
        arr = _describe(g, "the gradient from jac", "takes")
        if arr.shape != tuple(x.shape):
            raise ValueError(f"jac returned an array of shape {arr.shape}; expected "
                             f"{tuple(x.shape)} (the shape of x)")
        if arr.dtype != dtype:
            raise ValueError(f"jac returned a device array of dtype {arr.dtype}; on the device it "
                             f"must have x's dtype {np.dtype(dtype)}")
        if not arr.contiguous:
            raise ValueError("jac returned a non-contiguous device array")
        _synchronize(arr)
        out = self._buffer(x)
        out.copy_to_device(as_device_view(arr))
        return out
