"""The CUDA backend, tested without a GPU.

Three kinds of test, each running where it can:

* always: ``import rmsopt`` does not load CUDA; the errors without numba-cuda or a GPU;
* PTX (numba-cuda and libNVVM, not under the simulator): every step kernel compiles for
  float32 and float64, and the float32 ones contain no float64 instruction;
* execution (under ``NUMBA_ENABLE_CUDASIM=1``, or on a GPU): every configuration of
  ``tests/configs.py`` in both dtypes equals the CPU backend bit for bit (on a real GPU, within
  rounding: NVVM contracts multiply-adds into FMAs), lists of arrays, clip_norm, checkpoints,
  bad input, ``minimize``. Run them with
  ``NUMBA_ENABLE_CUDASIM=1 python -m pytest -q tests/test_cuda.py``.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rmsopt
from rmsopt import _config

from .configs import CONFIGS, IDS
from .test_backends import close_to_scale, gradient
from .test_bad_input import (BAD_GRAD_DTYPES, CLASSES, FLOATS, NOT_AN_ARRAY, bad_step_lr,
                             bad_value, keywords, names, raises_naming)

ROOT = str(Path(__file__).resolve().parents[1])
DTYPES = [np.float32, np.float64]

try:
    from numba import cuda
except ImportError:  # numba-cuda is not installed
    cuda = None

SIMULATOR = cuda is not None and bool(cuda.config.ENABLE_CUDASIM)
RUNNABLE = cuda is not None and (SIMULATOR or cuda.is_available())
needs_cuda = pytest.mark.skipif(
    not RUNNABLE, reason="no CUDA GPU here and not under the simulator: run this file again with "
    "NUMBA_ENABLE_CUDASIM=1" if cuda is not None else "numba-cuda is not installed "
    "(pip install 'rmsopt[cuda]')")


def run_python(code, **env):
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                         env=dict(os.environ, **env), capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


# ------------------------------------------------------------------ always

def test_import_rmsopt_never_loads_cuda():
    """Importing rmsopt and using the CPU backend (optimizers, minimize) leaves numba.cuda alone."""
    out = run_python("""
        import sys, numpy as np, rmsopt
        x = np.ones(3)
        rmsopt.RMSprop(x).step(2 * x)
        rmsopt.minimize(lambda x: float(x @ x), np.ones(2), jac=lambda x: 2 * x,
                        options={"maxiter": 3})
        print(sorted(m for m in sys.modules if m.startswith(("numba.cuda", "numba_cuda"))))
    """)
    assert out.strip() == "[]"


def test_without_numba_cuda_the_error_says_what_to_install():
    out = run_python("""
        import sys, numpy as np
        class Block:  # numba-cuda not installed
            def find_spec(self, name, path=None, target=None):
                if name.startswith(("numba.cuda", "numba_cuda")):
                    raise ImportError("No module named " + repr(name))
        sys.meta_path.insert(0, Block())
        import rmsopt
        x = np.ones(3)
        try:
            rmsopt.RMSprop(x, backend="cuda")
        except ImportError as e:
            print(e)
        assert rmsopt.RMSprop(x).backend == "cpu"   # auto on host arrays needs no CUDA
    """)
    assert "pip install 'rmsopt[cuda]'" in out


@pytest.mark.skipif(cuda is None, reason="numba-cuda is not installed")
def test_without_a_gpu_the_error_says_so():
    out = run_python("""
        import numpy as np, rmsopt
        from numba import cuda
        if cuda.is_available():
            print("GPU present")
        else:
            try:
                rmsopt.RMSprop(np.ones(3), backend="cuda")
            except RuntimeError as e:
                print(e)
    """, NUMBA_ENABLE_CUDASIM="0")
    assert "GPU present" in out or ("no usable CUDA GPU" in out and "NUMBA_ENABLE_CUDASIM" in out)


def test_auto_picks_cpu_for_host_arrays():
    assert rmsopt.RMSprop(np.ones(3)).backend == "cpu"
    assert rmsopt.RMSprop([np.ones(3), np.ones(2)], backend="auto").backend == "cpu"


# --------------------------------------------------------------------- PTX

def _ptx_unavailable():
    if cuda is None:
        return "numba-cuda is not installed"
    if SIMULATOR:
        return "PTX is compiled in the run without the simulator"
    try:
        cuda.compile_ptx(lambda a: None, (cuda.types.float32[::1],), cc=(7, 5))
    except Exception as e:  # libNVVM missing, or a broken toolkit
        return f"cuda.compile_ptx is unavailable here (no libNVVM?): {type(e).__name__}: {e}"[:300]
    return None


PTX_SKIP = _ptx_unavailable()


def variant(cls, kwargs, dtype):
    """The kernel variant and the host scalars of a configuration (a CPU optimizer, no step)."""
    opt = cls(np.ones(5, dtype=dtype), **kwargs)
    c, h = opt.host_scalars(1, opt.hyper["lr"], 1.0)
    return opt, c, h


@pytest.mark.skipif(PTX_SKIP is not None, reason=str(PTX_SKIP))
@pytest.mark.parametrize("name,cls,kwargs", CONFIGS, ids=IDS)
def test_ptx_of_every_step_kernel_and_no_float64_in_float32(name, cls, kwargs):
    import numba

    from rmsopt._kernels import cuda as kernels

    index = numba.types.int64[::1]
    for dtype in DTYPES:
        opt, c, h = variant(cls, kwargs, dtype)
        kernel = kernels.step_kernel(opt.rule.kernel, *opt.variant[1:])
        arr = numba.from_dtype(dtype)[::1]
        sig = (index, index, index, numba.types.int64[:, ::1], arr, arr, arr,
               numba.typeof(c), numba.typeof(h), arr)
        ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(7, 5))
        assert ".entry" in ptx
        if dtype == np.float32:
            f64 = [line.strip() for line in ptx.splitlines() if ".f64" in line]
            assert not f64, f"float64 instructions in the float32 kernel of {name}: {f64[:5]}"
        elif opt.rule.name not in ("sgd", "lion"):  # (their updates take no root)
            assert "sqrt.rn.f64" in ptx  # an IEEE square root, not an approximation


@pytest.mark.skipif(PTX_SKIP is not None, reason=str(PTX_SKIP))
def test_ptx_of_the_reduction_kernels():
    """The norm kernels compile for both dtypes (they accumulate in float64 by design)."""
    import numba

    from rmsopt._kernels import cuda as kernels

    i64, f64 = numba.types.int64, numba.types.float64
    for dtype in DTYPES:
        arr = numba.from_dtype(dtype)[::1]
        for fn, sig in [
            (kernels.sum_squares_kernel(_config.REDUCE_LANES),
             (i64[::1], i64[:, ::1], arr, f64[::1])),
            (kernels._clip_scale, (i64[::1], i64[:, ::1], arr, f64[::1], f64, arr)),
            (kernels._find_nonfinite, (i64[::1], i64[:, ::1], arr, numba.types.int32[::1])),
        ]:
            ptx, _ = cuda.compile_ptx(fn.py_func, sig, cc=(7, 5))
            assert ".entry" in ptx
    ptx, _ = cuda.compile_ptx(kernels.sum_squares_kernel(_config.REDUCE_LANES).py_func,
                              (i64[::1], i64[:, ::1], numba.types.float32[::1], f64[::1]),
                              cc=(7, 5))
    assert "bar.sync" in ptx and ".shared" in ptx


# --------------------------------------------------------------- execution

@pytest.fixture(autouse=True)
def small_launches(request, monkeypatch):
    """Tiny blocks, tasks, grids and reduction lanes, so that the grid-stride loops run in the
    simulator, quickly (it starts a Python thread per GPU thread). The CPU reduction follows the
    lane count; ``production_lanes`` keeps the real one."""
    if SIMULATOR:
        monkeypatch.setattr(_config, "CUDA_THREADS_PER_BLOCK", 4)
        monkeypatch.setattr(_config, "CUDA_TASK_SIZE", 8)
        monkeypatch.setattr(_config, "CUDA_MAX_BLOCKS", 2)
        if "production_lanes" not in request.keywords:
            monkeypatch.setattr(_config, "REDUCE_LANES", 8)


def bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def assert_same(a, b, err_msg=""):
    """Bit for bit in the simulator; on a GPU within rounding (FMA contraction)."""
    if SIMULATOR:
        np.testing.assert_array_equal(bits(a), bits(b), err_msg=err_msg)
    else:
        close_to_scale(a, b)


def to_device(a):
    return [cuda.to_device(x) for x in a] if isinstance(a, list) else cuda.to_device(a)


def to_host(a):
    return [x.copy_to_host() for x in a] if isinstance(a, list) else a.copy_to_host()


def run_both(cls, kwargs, x0, steps, lrs=None):
    """The same run on the CPU and on CUDA; returns both optimizers and parameter sets."""
    xs = [a.copy() for a in x0] if isinstance(x0, list) else x0.copy()
    ds = to_device(x0)
    opt_cpu = cls(xs, backend="cpu", **kwargs)
    opt_gpu = cls(ds, backend="cuda", **kwargs)
    host = xs if isinstance(xs, list) else [xs]
    for t in range(1, steps + 1):
        grads = [gradient(a, t, k) for k, a in enumerate(host)]
        g = grads if isinstance(xs, list) else grads[0]
        lr = None if lrs is None else lrs[t - 1]
        opt_cpu.step(g, lr=lr)
        opt_gpu.step(to_device(g), lr=lr)
    return opt_cpu, xs, opt_gpu, ds


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,cls,kwargs", CONFIGS, ids=IDS)
def test_cuda_equals_cpu(name, cls, kwargs, dtype):
    x0 = np.random.default_rng(1).standard_normal((3, 7)).astype(dtype)
    opt_cpu, x_cpu, opt_gpu, d = run_both(cls, kwargs, x0, 4)
    assert opt_gpu.backend == "cuda" and opt_gpu.t == 4
    x_gpu = d.copy_to_host()
    assert x_gpu.dtype == dtype and not np.array_equal(x_gpu, x0)
    assert_same(x_gpu, x_cpu)
    assert set(opt_gpu.state) == set(opt_cpu.state)
    for k in opt_cpu.state:
        state = opt_gpu.state[k].copy_to_host()
        assert state.dtype == dtype
        assert_same(state, opt_cpu.state[k], err_msg=k)


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,cls,kwargs", [c for c in CONFIGS if c[0] in
                                             ("rmsprop-centered-momentum", "adam-amsgrad",
                                              "rmsprop-clip-norm", "adadelta")],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_list_of_arrays_in_one_launch_equals_cpu(name, cls, kwargs, dtype):
    rng = np.random.default_rng(2)
    x0 = [rng.standard_normal(s).astype(dtype) for s in [(4, 5), (17,), (2, 3, 2)]]
    opt_cpu, xs_cpu, opt_gpu, ds = run_both(cls, kwargs, x0, 4)
    for a, b in zip(to_host(ds), xs_cpu):
        assert_same(a, b)
    for k in opt_cpu.state:
        assert_same(opt_gpu.state[k].copy_to_host(), opt_cpu.state[k], err_msg=k)


@needs_cuda
@pytest.mark.production_lanes
@pytest.mark.parametrize("dtype", DTYPES)
def test_global_norm_over_several_tasks_equals_cpu(dtype, monkeypatch):
    """Arrays longer than a reduction task (several partials, a partly filled last lane row),
    with gradients large enough that the clip applies: the device factor has the CPU's bits.
    With the production lane count and, to keep the simulator quick, shorter tasks."""
    monkeypatch.setattr(_config, "TASK_SIZE", 2 * _config.REDUCE_LANES + 44)
    rng = np.random.default_rng(5)
    sizes = [2 * _config.TASK_SIZE + 300, 37]
    x0 = [rng.standard_normal(n).astype(dtype) for n in sizes]
    kwargs = dict(lr=0.01, clip_norm=0.5, momentum=0.9)
    opt_cpu, xs_cpu, opt_gpu, ds = run_both(rmsopt.RMSprop, kwargs, x0, 2)
    for a, b in zip(to_host(ds), xs_cpu):
        assert_same(a, b)


@needs_cuda
@pytest.mark.production_lanes
@pytest.mark.parametrize("special", [None, np.inf, np.nan])
def test_global_norm_whose_squares_overflow_equals_cpu(special, monkeypatch):
    """float64 gradients above 1.3e154 overflow the sum of squares: the device redoes the norm
    scaled by the largest magnitude, as the CPU does (same bits in the simulator); an infinite
    element gives an infinite norm (the others become 0), a NaN gives NaN."""
    monkeypatch.setattr(_config, "TASK_SIZE", 2 * _config.REDUCE_LANES + 44)
    rng = np.random.default_rng(6)
    sizes = [2 * _config.TASK_SIZE + 300, 37]
    x0 = [rng.standard_normal(n) for n in sizes]
    grads = [rng.standard_normal(n) * 1e200 for n in sizes]
    if special is not None:
        grads[1][5] = special
    cpu_x = [x.copy() for x in x0]
    cpu_opt = rmsopt.RMSprop(cpu_x, lr=0.01, clip_norm=1.0)
    gpu_x = [cuda.to_device(x) for x in x0]
    gpu_opt = rmsopt.RMSprop(gpu_x, lr=0.01, clip_norm=1.0)
    with np.errstate(invalid="ignore", over="ignore"):
        cpu_opt.step(grads)
        gpu_opt.step([cuda.to_device(g) for g in grads])
    for a, b in zip(to_host(gpu_x), cpu_x):
        assert_same(a, b)
    moved = np.concatenate([a - b for a, b in zip(cpu_x, x0)])
    if special is None:
        assert np.isfinite(moved).all() and np.count_nonzero(moved) > moved.size // 2
    elif special == np.inf:
        assert np.isnan(cpu_x[1][5]) and np.count_nonzero(np.isnan(moved)) == 1
    else:
        assert np.isnan(moved).all()


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_one_kernel_per_variant_and_dtype(dtype):
    """Other learning rates, step counts and lists of arrays reuse the built (and, on a GPU,
    compiled) kernel: the variant is the key, the sizes and addresses are data."""
    from rmsopt._kernels import cuda as kernels

    kw = {"lr": 0.01, "centered": True, "momentum": 0.5, "bias_correction": True}
    ones = [cuda.to_device(np.ones(n, dtype)) for n in (12, 3, 5)]
    d = cuda.to_device(np.ones((3, 4), dtype))
    opt = rmsopt.RMSprop(d, **kw)
    opt.step(ones[0].reshape(3, 4))
    kernel = kernels.step_kernel(opt.rule.kernel, *opt.variant[1:])
    built, compiled = set(kernels._step_kernels), getattr(kernel, "overloads", {}).copy()
    opt.step(ones[0].reshape(3, 4), lr=0.5)
    opt.step(ones[0].reshape(3, 4))
    rmsopt.RMSprop([cuda.to_device(np.ones(3, dtype)), cuda.to_device(np.ones(5, dtype))],
                   **kw).step(ones[1:])
    assert set(kernels._step_kernels) == built
    assert getattr(kernel, "overloads", {}).keys() == compiled.keys()


@needs_cuda
def test_per_step_lr_equals_cpu():
    x0 = np.linspace(-1, 1, 11)
    lrs = list(np.linspace(0.01, 0.001, 4))
    kw = dict(momentum=0.9, lr_in_momentum=True, weight_decay=0.1, decoupled_weight_decay=True)
    _, a, _, d = run_both(rmsopt.RMSprop, kw, x0, 4, lrs)
    assert_same(d.copy_to_host(), a)


@needs_cuda
def test_same_bits_every_run():
    x0 = np.random.default_rng(6).standard_normal(50).astype(np.float32)
    runs = [run_both(rmsopt.Adam, dict(lr=0.01, clip_norm=1.0), x0, 3)[3].copy_to_host()
            for _ in range(2)]
    np.testing.assert_array_equal(bits(runs[0]), bits(runs[1]))


@needs_cuda
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the simulator's NumPy scalars warn
def test_nan_gradient_propagates_as_on_the_cpu():
    x0 = np.ones(6, dtype=np.float32)
    g = np.array([np.nan, np.inf, -np.inf, 0.0, 1.0, -1.0], dtype=np.float32)
    x, d = x0.copy(), cuda.to_device(x0)
    for cls, kw in [(rmsopt.RMSprop, dict(centered=True, momentum=0.5)),
                    (rmsopt.Adam, dict(amsgrad=True))]:
        x[...], d[...] = x0, x0
        cls(x, **kw).step(g)
        cls(d, **kw).step(cuda.to_device(g))
        np.testing.assert_array_equal(d.copy_to_host(), x)


@needs_cuda
def test_auto_picks_cuda_for_device_arrays_and_updates_in_place():
    x0 = np.arange(6, dtype=np.float32).reshape(2, 3)
    d = cuda.to_device(x0)
    opt = rmsopt.SGD(d, lr=0.5)
    assert opt.backend == "cuda" and opt.params is d
    opt.step(cuda.to_device(np.ones((2, 3), dtype=np.float32)))
    np.testing.assert_array_equal(d.copy_to_host(), x0 - 0.5)
    assert rmsopt.SGD([cuda.to_device(x0)], lr=0.5).backend == "cuda"


@needs_cuda
def test_step_rows_is_refused_on_cuda_before_anything_changes():
    x0 = np.arange(6, dtype=np.float64).reshape(3, 2)
    d = cuda.to_device(x0)
    opt = rmsopt.RMSprop(d, lr=0.1)
    with pytest.raises(ValueError, match=r"step_rows runs on the host backends.*'cuda'"):
        opt.step_rows([1], np.ones((1, 2)))
    assert opt.t == 0 and (opt.state["nu"].copy_to_host() == 0).all()
    np.testing.assert_array_equal(d.copy_to_host(), x0)


class Interface:
    """Only ``__cuda_array_interface__``, as CuPy arrays and torch CUDA tensors offer it."""

    def __init__(self, device_array, **changes):
        self.base = device_array  # keeps the memory alive
        iface = getattr(device_array, "__cuda_array_interface__", None)
        if iface is None:  # the simulator's arrays live in host memory
            a = device_array.__array_interface__
            iface = dict(shape=a["shape"], typestr=a["typestr"], data=a["data"],
                         strides=a["strides"], version=3, stream=None)
        self.__cuda_array_interface__ = dict(iface, **changes)


@needs_cuda
def test_objects_with_cuda_array_interface_are_updated_in_place():
    x0 = np.random.default_rng(7).standard_normal((4, 3)).astype(np.float32)
    kw = dict(lr=0.01, centered=True, momentum=0.9, clip_norm=1.0)
    x, d = x0.copy(), cuda.to_device(x0)
    opt_cpu, opt_gpu = rmsopt.RMSprop(x, **kw), rmsopt.RMSprop(Interface(d), **kw)
    assert opt_gpu.backend == "cuda"
    for t in range(1, 4):
        g = gradient(x, t)
        opt_cpu.step(g)
        opt_gpu.step(Interface(cuda.to_device(g)))
    assert_same(d.copy_to_host(), x)


# ------------------------------------------------------------- bad input

def host_and_device(dtype=np.float32):
    x0 = np.linspace(-1, 1, 6).astype(dtype)
    return x0, cuda.to_device(x0)


def read_only(d):
    view = Interface(d)
    address = view.__cuda_array_interface__["data"][0]
    view.__cuda_array_interface__["data"] = (address, True)
    return view


def bad_params():
    x0, d = host_and_device()
    d2 = cuda.to_device(np.ones((4, 4), dtype=np.float32))
    nan = cuda.to_device(np.array([1.0, np.nan], dtype=np.float32))
    return [
        (np.ones(3, dtype=np.float32), TypeError, r"params is a host \(NumPy\) array"),
        ([d, np.ones(3)], TypeError, r"params\[1\] is a host"),
        ([1.0, 2.0], TypeError, r"params\[0\] is float"),
        (cuda.to_device(np.ones(3, dtype=np.int32)), ValueError, "params has dtype int32"),
        ([d, cuda.to_device(np.ones(2))], ValueError, r"params\[1\] has dtype float64 but"),
        (d2[:, 1], ValueError, "params is not C-contiguous"),
        ([d2[0], d2[:2]], ValueError, r"params\[1\] and params\[0\] share memory"),
        (nan, ValueError, "params contains NaN or inf"),
        (read_only(d), ValueError, "params is read-only"),
        ([], ValueError, "params is an empty list"),
    ]


@needs_cuda
def test_bad_params_raise_before_anything_happens():
    for params, exc, match in bad_params():
        with pytest.raises(exc, match=match):
            rmsopt.RMSprop(params, backend="cuda")


def bad_grads(d):
    return [
        (np.ones(6, dtype=np.float32), TypeError, r"grad is a host \(NumPy\) array"),
        (cuda.to_device(np.ones(6)), ValueError, "grad has dtype float64 but the parameters "
                                                  "have float32"),
        (cuda.to_device(np.ones(5, dtype=np.float32)), ValueError, r"grad has shape \(5,\)"),
        (cuda.to_device(np.ones(12, dtype=np.float32))[::2], ValueError,
         "grad is not C-contiguous"),
        (d, ValueError, "grad shares memory with its parameter"),
        ([cuda.to_device(np.ones(6, dtype=np.float32))], TypeError, "grad is list"),
    ]


@needs_cuda
@pytest.mark.parametrize("case", range(6))
def test_bad_gradients_raise_with_nothing_touched(case):
    x0, d = host_and_device()
    opt = rmsopt.RMSprop(d, lr=0.1, momentum=0.9, clip_norm=1.0)
    opt.step(cuda.to_device(np.ones(6, dtype=np.float32)))
    before = (d.copy_to_host().tobytes(), {k: v.copy_to_host().tobytes()
                                            for k, v in opt.state.items()})
    from rmsopt._kernels import cuda as kernels

    kernel_count = len(kernels._step_kernels)
    grad, exc, match = bad_grads(d)[case]
    with pytest.raises(exc, match=match):
        opt.step(grad)
    assert opt.t == 1 and len(kernels._step_kernels) == kernel_count
    assert (d.copy_to_host().tobytes(), {k: v.copy_to_host().tobytes()
                                         for k, v in opt.state.items()}) == before


def device_snapshot(opt, d):
    return dict(hyper=opt.hyper, t=opt.t, params=d.copy_to_host().tobytes(),
                state={k: v.copy_to_host().tobytes() for k, v in opt.state.items()})


@needs_cuda
@settings(max_examples=25)  # the simulator is slow
@given(data=st.data())
def test_generated_bad_input_on_the_device_changes_nothing(data):
    """test_bad_input.py's generated bad values for the CUDA backend: a keyword at
    construction, and a step's ``grad`` or ``lr``; parameters, state and ``t`` unchanged."""
    cls = data.draw(st.sampled_from(CLASSES), label="class")
    dtype = data.draw(st.sampled_from(FLOATS), label="dtype")
    x0, d = host_and_device(dtype)
    what = data.draw(st.sampled_from(["keyword", "grad", "lr"]), label="bad argument")
    if what == "keyword":
        name = data.draw(st.sampled_from([k for k in keywords(cls) if k != "backend"]),
                         label="keyword")
        value = data.draw(bad_value(name, dtype), label="value")
        raises_naming(names(name), lambda: cls(d, backend="cuda", **{name: value}))
        assert d.copy_to_host().tobytes() == x0.tobytes()
        return
    opt = cls(d, lr=0.01, backend="cuda")
    opt.step(cuda.to_device(np.full(6, 0.5, dtype)))
    before = device_snapshot(opt, d)
    if what == "grad":
        grad = data.draw(st.one_of(
            hnp.array_shapes(min_dims=0, max_dims=2, max_side=7).filter(lambda s: s != (6,))
            .map(lambda s: cuda.to_device(np.ones(s, dtype))),
            st.sampled_from([k for k in BAD_GRAD_DTYPES if np.dtype(k).kind in "cb"]).map(
                lambda dt: cuda.to_device(np.zeros(6, dt))),
            st.just(np.ones(6, dtype)), NOT_AN_ARRAY), label="grad")
        raises_naming(("grad",), lambda: opt.step(grad))
    else:
        lr = data.draw(bad_step_lr(dtype), label="lr")
        raises_naming(("lr",), lambda: opt.step(cuda.to_device(np.ones(6, dtype)), lr=lr))
    assert device_snapshot(opt, d) == before


@needs_cuda
def test_list_gradient_errors():
    ds = [cuda.to_device(np.ones(3, dtype=np.float32)), cuda.to_device(np.ones(2, np.float32))]
    opt = rmsopt.Adam(ds)
    with pytest.raises(ValueError, match="grad must be a list of 2 arrays.*of length 1"):
        opt.step([ds[0]])
    with pytest.raises(TypeError, match=r"grad\[1\] is a host"):
        opt.step([cuda.to_device(np.ones(3, np.float32)), np.ones(2, np.float32)])


# ------------------------------------------------------------ checkpoints

@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["rmsprop-centered-momentum", "adam-amsgrad", "sgd"])
def test_checkpoint_resume_is_bit_identical(name, dtype, tmp_path):
    _, cls, kwargs = next(c for c in CONFIGS if c[0] == name)
    x0 = np.random.default_rng(8).standard_normal(9).astype(dtype)

    def steps(opt, d, ts):
        for t in ts:
            opt.step(cuda.to_device(gradient(d.copy_to_host(), t)))

    d = cuda.to_device(x0)
    straight = cls(d, **kwargs)
    steps(straight, d, range(1, 7))

    d2 = cuda.to_device(x0)
    first = cls(d2, **kwargs)
    steps(first, d2, range(1, 4))
    first.save(tmp_path / "run.npz")
    sd = first.state_dict()
    assert all(isinstance(a, np.ndarray) for a in [*sd["params"], *sd["state"].values()])

    d3 = cuda.to_device(np.zeros_like(x0))
    resumed = cls(d3, **kwargs)
    resumed.load(tmp_path / "run.npz")
    assert resumed.t == 3
    np.testing.assert_array_equal(d3.copy_to_host(), d2.copy_to_host())
    steps(resumed, d3, range(4, 7))
    np.testing.assert_array_equal(bits(d3.copy_to_host()), bits(d.copy_to_host()))
    for k in straight.state:
        np.testing.assert_array_equal(bits(resumed.state[k].copy_to_host()),
                                      bits(straight.state[k].copy_to_host()))


@needs_cuda
def test_checkpoints_move_between_cpu_and_cuda(tmp_path):
    x0 = np.random.default_rng(9).standard_normal(7)
    x = x0.copy()
    cpu = rmsopt.RMSprop(x, momentum=0.9)
    for t in range(1, 3):
        cpu.step(gradient(x, t))
    cpu.save(tmp_path / "cpu.npz")
    d = cuda.to_device(np.zeros(7))
    gpu = rmsopt.RMSprop(d, momentum=0.9)
    gpu.load(tmp_path / "cpu.npz")
    cpu.step(gradient(x, 3))
    gpu.step(cuda.to_device(gradient(d.copy_to_host(), 3)))
    assert_same(d.copy_to_host(), x)


# ------------------------------------------------------------- param groups

@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_param_groups_on_cuda_equal_the_cpu_and_resume(dtype, tmp_path):
    """rmsopt.groups is backend-agnostic: each group's optimizer runs on the device, with
    per-group hyperparameters, a group's own clip_norm, the shared t and checkpoints."""
    rng = np.random.default_rng(11)
    x0 = [rng.standard_normal(s).astype(dtype) for s in [(4, 5), (7,), (2, 3)]]

    def build(arrays, backend):
        return rmsopt.RMSprop([{"params": arrays[:2], "lr": 1e-2, "clip_norm": 1.0},
                               {"params": arrays[2:], "momentum": 0.0, "centered": False}],
                              lr=1e-3, momentum=0.9, centered=True, backend=backend)

    xs, ds = [a.copy() for a in x0], to_device(x0)
    opt_cpu, opt_gpu = build(xs, "cpu"), build(ds, "cuda")
    assert opt_gpu.backend == "cuda"
    for t in range(1, 5):
        grads = [gradient(a, t, k) for k, a in enumerate(xs)]
        opt_cpu.step(grads)
        opt_gpu.step(to_device(grads))
    for a, b in zip(to_host(ds), xs):
        assert_same(a, b)
    for s_gpu, s_cpu in zip(opt_gpu.state, opt_cpu.state):
        for k in s_cpu:
            assert_same(s_gpu[k].copy_to_host(), s_cpu[k], err_msg=k)
    opt_gpu.save(tmp_path / "groups.npz")
    resumed = build(to_device([np.zeros_like(a) for a in x0]), "cuda")
    resumed.load(tmp_path / "groups.npz")
    assert resumed.t == 4
    opt_cpu.load(tmp_path / "groups.npz")  # a CUDA checkpoint resumes on the CPU too
    for a, b in zip(to_host(resumed.param_groups[0]["params"]), to_host(ds[:2])):
        np.testing.assert_array_equal(a, b)


@needs_cuda
def test_param_groups_sharing_clip_norm_are_refused_on_cuda():
    ds = to_device([np.ones(3), np.ones(2)])
    with pytest.raises(ValueError, match=r"param_groups\[0, 1\] share clip_norm=1.0, a joint "
                                         "norm over several groups, which backend='cuda' does "
                                         "not support"):
        rmsopt.Adam([{"params": [ds[0]]}, {"params": [ds[1]]}], clip_norm=1.0)
    opt = rmsopt.Adam([{"params": [ds[0]]}, {"params": [ds[1]], "clip_norm": 2.0}],
                      clip_norm=1.0)  # each group its own value: accepted
    opt.param_groups[1]["clip_norm"] = 1.0
    with pytest.raises(ValueError, match="joint norm over several groups"):
        opt.step(to_device([np.ones(3), np.ones(2)]))
    assert opt.t == 0


# --------------------------------------------------------------- minimize

A = np.linspace(0.5, 3.0, 5)
B = np.linspace(-1.0, 1.0, 5)


def f_host(x):
    return float(0.5 * np.sum(A * (x - B) ** 2))


def g_host(x):
    return A * (x - B)


def device_objective():
    """``fun`` (host value from a device x) and ``jac`` (a kernel writing a device gradient)."""
    a, b = cuda.to_device(A), cuda.to_device(B)

    @cuda.jit
    def grad_kernel(x, a, b, out):
        for i in range(cuda.grid(1), x.shape[0], cuda.gridsize(1)):
            out[i] = a[i] * (x[i] - b[i])

    def jac(x):
        assert type(x).__name__ != "ndarray"  # x stays on the device
        out = cuda.device_array_like(x)
        grad_kernel[1, 4](x, a, b, out)
        return out

    return (lambda x: f_host(x.copy_to_host())), jac


MINIMIZE_CASES = [
    ("rmsprop", None, {"lr": 0.05, "maxiter": 30}),
    ("adam", [(-0.5, 0.5)] * 5, {"lr": 0.05, "maxiter": 200, "gtol": 1e-3, "clip_norm": 1.0}),
    ("rmsprop", None, {"lr": 0.05, "maxiter": 200, "ftol": 1e-3, "momentum": 0.5}),
    ("sgd", None, {"lr": 0.2, "maxiter": 60, "gtol": 1e-2}),
]


@needs_cuda
@pytest.mark.parametrize("method,bounds,options", MINIMIZE_CASES)
def test_minimize_on_the_device_equals_the_cpu(method, bounds, options):
    fun, jac = device_objective()
    expected = rmsopt.minimize(f_host, np.zeros(5), method=method, jac=g_host, bounds=bounds,
                               options=options)
    x0 = cuda.to_device(np.zeros(5))
    res = rmsopt.minimize(fun, x0, method=method, jac=jac, bounds=bounds, options=options)
    assert type(res.x).__name__ != "ndarray" and type(res.jac).__name__ != "ndarray"
    np.testing.assert_array_equal(x0.copy_to_host(), np.zeros(5))  # x0 untouched
    for key in ("status", "nit", "nfev", "njev", "success"):
        assert res[key] == expected[key], key
    assert_same(res.x.copy_to_host(), expected.x)
    assert res.fun == expected.fun or not SIMULATOR


@needs_cuda
def test_minimize_backend_option_moves_a_host_x0_and_takes_host_gradients():
    """backend='cuda' with a NumPy x0: x goes to the device once; a host gradient is copied."""
    seen = []

    def fun(x):
        seen.append(type(x).__name__)
        return f_host(x.copy_to_host())

    res = rmsopt.minimize(fun, np.zeros(5, dtype=np.float32), jac=lambda x: g_host(
        x.copy_to_host()).astype(np.float32), options={"lr": 0.05, "maxiter": 5,
                                                       "backend": "cuda"})
    expected = rmsopt.minimize(f_host, np.zeros(5, dtype=np.float32), jac=lambda x: g_host(
        x).astype(np.float32), options={"lr": 0.05, "maxiter": 5})
    assert "ndarray" not in seen and res.x.dtype == np.float32
    assert_same(res.x.copy_to_host(), expected.x)


@needs_cuda
def test_minimize_on_the_device_stops_on_nan_and_on_callback():
    fun, jac = device_objective()

    def nan_after_3(x):
        nan_after_3.calls += 1
        return np.nan if nan_after_3.calls > 3 else fun(x)

    nan_after_3.calls = 0
    res = rmsopt.minimize(nan_after_3, cuda.to_device(np.zeros(5)), jac=jac,
                          options={"lr": 0.05, "maxiter": 10})
    assert res.status == 3 and not res.success and np.isfinite(res.fun)

    def stop(intermediate_result):
        assert type(intermediate_result.x).__name__ != "ndarray"
        if intermediate_result.nit == 2:
            raise StopIteration

    res = rmsopt.minimize(fun, cuda.to_device(np.zeros(5)), jac=jac, callback=stop,
                          options={"lr": 0.05, "maxiter": 10})
    assert res.status == 99 and res.nit == 2


@needs_cuda
def test_ctrl_c_on_the_device_returns_the_best_iterate_after_f_rose():
    """The in-place strategy keeps the best iterate apart once a step would overwrite it:
    here f falls, then rises (a rate too large), then Ctrl-C."""
    fun, jac = device_objective()
    seen = []

    def f(x):
        if len(seen) == 12:
            raise KeyboardInterrupt
        seen.append((fun(x), x.copy_to_host()))
        return seen[-1][0]

    res = rmsopt.minimize(f, cuda.to_device(np.zeros(5)), jac=jac, method="sgd",
                          options={"lr": 0.9, "momentum": 0.9})
    fs = [v for v, _ in seen]
    k = int(np.argmin(fs))
    assert res.status == 4 and 0 < k < len(fs) - 1 and fs[-1] > fs[k]  # f rose after its best
    assert res.fun == fs[k]
    np.testing.assert_array_equal(res.x.copy_to_host(), seen[k][1])


@needs_cuda
def test_minimize_on_the_device_rejects_finite_differences():
    fun, _ = device_objective()
    with pytest.raises(ValueError, match="jac must be a callable or True"):
        rmsopt.minimize(fun, cuda.to_device(np.zeros(5)), jac="2-point")
    with pytest.raises(ValueError, match="x0 contains NaN or inf"):
        rmsopt.minimize(fun, cuda.to_device(np.array([1.0, np.nan])), jac=g_host)


@needs_cuda
def test_readme_gpu_example_runs(tmp_path, monkeypatch, capsys):
    from .test_readme import GPU_BLOCKS

    assert GPU_BLOCKS
    monkeypatch.chdir(tmp_path)
    for block in GPU_BLOCKS:
        exec(compile(block, "README.md[GPU]", "exec"), {})


@needs_cuda
def test_nonfinite_skip_and_raise_on_the_device():
    d = to_device(np.ones(5))
    opt = rmsopt.RMSprop(d, lr=0.1, momentum=0.5)
    opt.step(to_device(np.ones(5)))
    before = d.copy_to_host(), opt.state["nu"].copy_to_host(), opt.t
    opt.nonfinite = "skip"
    opt.step(to_device(np.array([1.0, np.inf, 1.0, 1.0, 1.0])))
    assert opt.skipped == 1 and opt.t == before[2]
    np.testing.assert_array_equal(d.copy_to_host(), before[0])
    np.testing.assert_array_equal(opt.state["nu"].copy_to_host(), before[1])
    opt.nonfinite = "raise"
    with pytest.raises(FloatingPointError):
        opt.step(to_device(np.full(5, np.nan)))
    opt.step(to_device(np.ones(5)))
    assert opt.t == 2


@needs_cuda
def test_the_device_loop_allocates_nothing_per_iteration(monkeypatch):
    """Device allocations during minimize do not grow with the iterations: the gradient
    buffers, the reductions' scratch and the kept iterates are allocated once per run."""
    from numba import cuda

    calls = []
    for name in ("device_array", "device_array_like", "to_device"):
        real = getattr(cuda, name)
        monkeypatch.setattr(cuda, name, lambda *a, _real=real, _name=name, **k: (
            calls.append(_name), _real(*a, **k))[1])
    grad = cuda.device_array(64, dtype=np.float64)

    def jac(x):  # a function that reuses its gradient buffer, as device code does
        grad.copy_to_device(x)
        return grad

    def run(maxiter, **options):
        x0 = cuda.to_device(np.linspace(-1.0, 1.0, 64))
        del calls[:]
        rmsopt.minimize(lambda x: 0.5 * float((x.copy_to_host() ** 2).sum()), x0, jac=jac,
                        bounds=[(-0.5, 0.5)] * 64,
                        options={"lr": 1e-2, "maxiter": maxiter, "gtol": 0.0, **options})
        return len(calls)

    assert run(3) == run(30)
    assert run(3, momentum=0.9, clip_norm=1.0) == run(30, momentum=0.9, clip_norm=1.0)
