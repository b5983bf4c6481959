"""The compiled CPU kernels against the independent NumPy reference, and against themselves."""

import numba
import numpy as np
import pytest

import rmsopt
from rmsopt import _config, rules
from rmsopt import backend as _backend
from rmsopt._kernels import cpu, reference

from .configs import CONFIGS, IDS

DTYPES = [np.float32, np.float64]


def gradient(x, t, rng_seed=0):
    """A gradient that depends on x (so trajectories diverge if any step differs) and t."""
    rng = np.random.default_rng(rng_seed + t)
    scale = np.linspace(0.1, 10.0, x.size).reshape(x.shape).astype(x.dtype)
    noise = rng.standard_normal(x.shape).astype(x.dtype)
    return scale * (x - x.dtype.type(0.5)) + noise


def close_to_scale(a, b, k=64):
    """|a - b| <= k eps max|b|: a rounding-level difference, whatever the element's size."""
    tol = k * np.finfo(b.dtype).eps * np.max(np.abs(b))
    np.testing.assert_allclose(a, b, rtol=0, atol=tol)


def run(cls, kwargs, x0, steps, backend, lrs=None):
    xs = [a.copy() for a in x0] if isinstance(x0, list) else x0.copy()
    opt = cls(xs, backend=backend, **kwargs)
    arrays = xs if isinstance(xs, list) else [xs]
    for t in range(1, steps + 1):
        grads = [gradient(a, t, k) for k, a in enumerate(arrays)]
        opt.step(grads if isinstance(xs, list) else grads[0], lr=None if lrs is None else lrs[t - 1])
    return xs, opt


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,cls,kwargs", CONFIGS, ids=IDS)
def test_cpu_equals_reference(name, cls, kwargs, dtype):
    """Bitwise: the rules and the reference do the same operations in the same order. The one
    exception is the global norm of clip_norm (task-ordered sum vs NumPy's pairwise sum): its
    last-bit difference in the scale factor may grow to 64 eps of the array's scale in 30 steps."""
    x0 = np.random.default_rng(1).standard_normal((3, 7)).astype(dtype)
    x_cpu, opt_cpu = run(cls, kwargs, x0, 30, "cpu")
    x_ref, opt_ref = run(cls, kwargs, x0, 30, "numpy")
    assert x_cpu.dtype == dtype
    assert not np.array_equal(x_cpu, x0), "the optimizer did not move"
    same = np.testing.assert_array_equal
    if "clip_norm" in kwargs:
        def same(a, b, err_msg=""):
            close_to_scale(a, b)
    same(x_cpu, x_ref)
    for k in opt_ref.state:
        same(opt_cpu.state[k], opt_ref.state[k], err_msg=k)
        assert opt_cpu.state[k].dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,cls,kwargs", [c for c in CONFIGS if c[0] in
                                             ("rmsprop-centered-momentum", "adam-amsgrad",
                                              "rmsprop-clip-norm", "adadelta")],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_list_of_arrays_equals_reference_and_separate_runs(name, cls, kwargs, dtype):
    """A list of arrays is one kernel call; per-array results match single-array runs."""
    rng = np.random.default_rng(2)
    x0 = [rng.standard_normal(s).astype(dtype) for s in [(4, 5), (17,), (2, 3, 2)]]
    xs_cpu, opt = run(cls, kwargs, x0, 20, "cpu")
    xs_ref, _ = run(cls, kwargs, x0, 20, "numpy")
    for a, b in zip(xs_cpu, xs_ref):
        if "clip_norm" in kwargs:
            close_to_scale(a, b)
        else:
            np.testing.assert_array_equal(a, b)
    if "clip_norm" not in kwargs:  # the global norm couples the arrays
        for k, a0 in enumerate(x0):
            alone = a0.copy()
            o = cls(alone, **kwargs)
            for t in range(1, 21):
                o.step(gradient(alone, t, k))
            np.testing.assert_array_equal(xs_cpu[k], alone)


def test_per_step_lr_matches_reference():
    x0 = np.linspace(-1, 1, 11)
    lrs = list(np.linspace(0.01, 0.001, 15))
    kw = dict(momentum=0.9, lr_in_momentum=True, weight_decay=0.1, decoupled_weight_decay=True)
    a, _ = run(rmsopt.RMSprop, kw, x0, 15, "cpu", lrs)
    b, _ = run(rmsopt.RMSprop, kw, x0, 15, "numpy", lrs)
    np.testing.assert_array_equal(a, b)


@pytest.fixture
def restore_threads():
    n = numba.get_num_threads()
    yield
    numba.set_num_threads(n)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,cls,kwargs", CONFIGS, ids=IDS)
def test_serial_equals_parallel_at_1_and_2_threads(name, cls, kwargs, dtype, monkeypatch,
                                                   restore_threads):
    x0 = np.random.default_rng(3).standard_normal(3 * _config.TASK_SIZE + 123).astype(dtype)
    monkeypatch.setattr(_config, "PARALLEL_THRESHOLD", 10**12)
    serial, opt = run(cls, kwargs, x0, 4, "cpu")
    assert not opt.layout.parallel
    monkeypatch.setattr(_config, "PARALLEL_THRESHOLD", 0)
    for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
        numba.set_num_threads(threads)
        par, opt = run(cls, kwargs, x0, 4, "cpu")
        assert opt.layout.parallel
        np.testing.assert_array_equal(par, serial, err_msg=f"{threads} threads")


@pytest.mark.parametrize("scale", [1e3, 1e200])  # 1e200: the squares overflow, scaled pass
def test_global_norm_same_bits_for_any_thread_count(scale, restore_threads):
    g = np.random.default_rng(4).standard_normal(10 * _config.TASK_SIZE + 7) * scale
    sizes = np.array([g.size], dtype=np.int64)
    tasks = cpu.task_table([g.size], _config.TASK_SIZE)
    addr = np.array([g.__array_interface__["data"][0]], dtype=np.int64)
    serial = cpu.global_norm(addr, sizes, tasks, g, parallel=False)
    for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
        numba.set_num_threads(threads)
        assert cpu.global_norm(addr, sizes, tasks, g, parallel=True) == serial
    np.testing.assert_allclose(serial, scale * np.linalg.norm(g / scale), rtol=1e-12)
    np.testing.assert_allclose(reference.global_norm([g]), serial, rtol=1e-12)


def test_amsgrad_keeps_a_nan_in_vmax_like_the_reference():
    """max(vmax, v) propagates a NaN from either side (np.maximum, torch.maximum)."""
    out = {}
    for backend in ("cpu", "numpy"):
        x = np.ones(3)
        opt = rmsopt.Adam(x, amsgrad=True, backend=backend)
        opt.step(np.ones(3))
        opt.state["vmax"][0] = np.nan  # the live buffer (a checkpoint with NaN is refused)
        with np.errstate(invalid="ignore"):
            opt.step(np.array([1.0, np.nan, 1.0]))
        out[backend] = x.copy(), opt.state["vmax"].copy()
    assert np.isnan(out["cpu"][1][:2]).all() and np.isfinite(out["cpu"][1][2])
    for a, b in zip(out["cpu"], out["numpy"]):
        np.testing.assert_array_equal(a, b)


def cpu_norm(grads):
    layout = _backend.Layout(grads)
    return cpu.global_norm(layout.gaddr(grads), layout.size, layout.tasks, grads[0],
                           parallel=False)


@pytest.mark.parametrize("norm", [cpu_norm, reference.global_norm], ids=["cpu", "numpy"])
def test_global_norm_special_values(norm):
    big = [np.array([3e200, 0.0]), np.array([-4e200])]
    np.testing.assert_allclose(norm(big), 5e200, rtol=1e-15)
    assert np.isposinf(norm([np.array([1e200, np.inf]), np.array([1.0])]))
    assert np.isposinf(norm([np.array([1.0, -np.inf])]))
    assert np.isnan(norm([np.array([1e200, np.inf]), np.array([np.nan])]))
    assert np.isnan(norm([np.array([np.nan, 1.0])]))
    assert norm([np.array([3.0, 4.0], np.float32)]) == 5.0
    assert norm([np.full(4, 3e38, np.float32)]) == np.float64(np.float32(3e38)) * 2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,cls,kwargs", CONFIGS, ids=IDS)
def test_host_scalars_are_the_dtype_rounding_of_the_float64_values(name, cls, kwargs, dtype):
    """The cached host scalars have the bits of np.array(values, dtype), step after step."""
    opt = cls(np.ones(4, dtype), **kwargs)
    h = opt.hyper
    for t, lr, clip_scale, carry in [(1, h["lr"], 1.0, 0.0), (2, h["lr"], 0.3, 0.0),
                                 (3, 0.123, 0.3, 0.05), (3, 0.123, 0.3, 0.07),
                                 (4, 0.123, 1.0, 0.07), (40, h["lr"], np.nan, 0.0)]:
        c, s = opt.host_scalars(t, lr, clip_scale, carry)
        want_c = np.array(rules.common_values(rules.common_constants(h), lr, clip_scale), dtype)
        want_s = np.array(opt.rule.values(opt.rule.constants(h), t, lr, carry), dtype)
        for got, want in ((c, want_c), (s, want_s)):
            assert all(type(v) is dtype for v in got)
            assert np.array(got, dtype).tobytes() == want.tobytes(), (t, lr, clip_scale, carry)


def test_steps_do_not_rebuild_constants_from_the_hyperparameters(monkeypatch):
    """Adam's host scalars change every step; the constants they come from do not."""
    calls = []
    for owner, attr in ((rules.AdamRule, "constants"), (rules, "common_constants")):
        original = getattr(owner, attr)
        monkeypatch.setattr(owner, attr, lambda *a, f=original: calls.append(1) or f(*a))
    x = np.ones(8)
    opt = rmsopt.Adam(x, lr=0.01, clip_norm=1.0)
    built = len(calls)
    for _ in range(5):
        opt.step(np.full(8, 3.0))
    assert len(calls) == built


def test_load_state_dict_refreshes_the_cached_scalars():
    src = rmsopt.Adam(np.ones(5), lr=0.05, beta1=0.5, weight_decay=0.1)
    for _ in range(3):
        src.step(np.linspace(-1, 1, 5))
    d = src.state_dict()
    x, y = np.ones(5), np.ones(5)
    stale, fresh = rmsopt.Adam(x, lr=0.001), rmsopt.Adam(y, beta2=0.9)
    stale.step(np.ones(5))  # caches scalars for its own hyperparameters
    stale.load_state_dict(d)
    fresh.load_state_dict(d)
    for _ in range(3):
        stale.step(np.cos(x))
        fresh.step(np.cos(y))
    assert x.tobytes() == y.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_specialisation_per_dtype(dtype):
    """Other gradient dtypes, layouts, lr and step counts reuse the compiled kernel."""
    x = np.ones((6, 4), dtype=dtype)
    opt = rmsopt.RMSprop(x, lr=0.01, centered=True, momentum=0.5)
    opt.step(np.ones((6, 4), dtype=dtype))
    kernel = cpu.step_kernel(opt.rule.kernel, *opt.variant[1:],
                             opt.layout.parallel)
    before = len(kernel.signatures)
    opt.step(np.arange(24).reshape(6, 4))                       # integer gradient
    opt.step(np.ones((4, 6), dtype=np.float64).T)               # non-contiguous, other dtype
    opt.step(np.ones((6, 4), dtype=dtype), lr=0.5)              # another lr
    rmsopt.RMSprop([np.ones(3, dtype), np.ones(5, dtype)], lr=0.01, centered=True,
                   momentum=0.5).step([np.ones(3), np.ones(5)])  # a list of arrays
    assert len(kernel.signatures) == before
    assert [s[-2].dtype for s in kernel.signatures].count(numba.from_dtype(dtype)) == 1


@pytest.mark.parametrize("name,cls,kwargs", CONFIGS, ids=IDS)
def test_float32_kernels_contain_no_float64_arithmetic(name, cls, kwargs, monkeypatch):
    x = np.ones(5, dtype=np.float32)
    opt = cls(x, **kwargs)
    opt.step(np.ones(5, dtype=np.float32))
    kernel = cpu.step_kernel(opt.rule.kernel, *opt.variant[1:], False)
    sig = next(s for s in kernel.signatures if s[-2].dtype == numba.float32)
    # A kernel loaded from the disk cache has no LLVM IR to show: compile a copy here.
    monkeypatch.setattr(_config, "CACHE", False)
    kernel = cpu._build_step(opt.rule.kernel, *opt.variant[1:], False)
    kernel.compile(sig)
    ir = kernel.inspect_llvm(sig)
    body = ir[ir.index("define"):]
    for op in ("fadd double", "fmul double", "fdiv double", "fsub double", "fpext", "fcmp olt double",
               "llvm.sqrt.f64"):
        assert op not in body, f"{op} in the float32 kernel of {name}"


def test_block_step_keeps_its_step_counter_alive_while_the_kernel_runs(monkeypatch):
    """The kernel adds one to a step counter; that counter must outlive the kernel call.
    Were it freed before the launch, NumPy would hand its memory to the next small array
    (here a probe) and the kernel would write into it (in Dask's threads: heap corruption)."""
    probes = []
    launch = _backend._launch

    def probing_launch(kernel, args, parallel):
        probes.append(np.full(1, 7, dtype=np.int64))
        return launch(kernel, args, parallel)

    monkeypatch.setattr(_backend, "_launch", probing_launch)
    probe = rmsopt.RMSprop(np.zeros(1))
    c, h = probe.host_scalars(1, 0.01)
    p, g = np.ones(3), np.full(3, 0.5)
    new, state = _backend.block_step(*probe.variant,
                                     p, g, [np.zeros(3), None, None], c, h)
    assert probes and all(int(a[0]) == 7 for a in probes)
    assert np.all(new < 1) and np.all(p == 1) and np.all(state[0] > 0)


INTERFACE = ("param_arrays", "flat", "layout", "full", "to_host", "from_host", "write",
             "all_finite", "step_function", "device_arrays")


@pytest.mark.parametrize("name", ["numpy", "cpu"])
def test_host_backends_are_objects_with_one_interface(name):
    device = _backend.get(name)
    assert device.name == name and device.host and device.rows and not device.clips_on_device
    assert device.counts_steps == (name == "cpu")  # the CPU kernel counts t itself
    for method in INTERFACE + ("global_norm", "apply_rows", "apply_step"):
        assert callable(getattr(device, method)), method
    assert all(callable(getattr(_backend.CudaBackend, m)) for m in INTERFACE)
    x = np.arange(4.0)
    (arrays, single), = [device.param_arrays(x)]
    assert single and arrays[0] is x and device.flat(arrays)[0].base is x
    state = device.full(3, 0.5, np.float32)
    assert state.dtype == np.float32 and (state == 0.5).all()
    copy = device.to_host(x)
    device.write(x, x[::-1].copy())
    assert (copy == np.arange(4.0)).all() and (x == [3, 2, 1, 0]).all()
    layout = device.layout([x])
    assert device.all_finite(layout, [x]) and not device.all_finite(layout, [x * np.nan])
    assert device.global_norm(layout, [np.array([3.0, 4.0])]) == 5.0
    assert device.device_arrays() is None


def test_the_numpy_and_cpu_objects_take_the_same_step():
    out = {}
    for name in ("numpy", "cpu"):
        x = np.linspace(-1.0, 1.0, 7)
        opt = rmsopt.RMSprop(x, lr=0.01, momentum=0.9, backend=name)
        assert opt.backend == name
        for k in range(3):
            opt.step(np.cos(x + k))
        opt.step_rows([2, 5], np.ones((2,)))
        out[name] = x, opt.t
    assert out["numpy"][1] == out["cpu"][1] == 4
    np.testing.assert_allclose(out["numpy"][0], out["cpu"][0], rtol=1e-14, atol=0)
