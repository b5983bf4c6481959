"""Sparse row updates: ``opt.step_rows(rows, grad_rows)``.

The oracle: gather the touched rows into their own array, give a dense optimizer on it the
same state and step count, take one dense step, and compare. Untouched rows, their state and
everything else must stay bitwise unchanged (lazy semantics).
"""

import numpy as np
import pytest

import rmsopt
from rmsopt._kernels import cpu

from .configs import CONFIGS, IDS

SHAPE = (12, 3)
ROWS = np.array([7, 0, 11, 4])


def state_rows(opt, rows, shape=SHAPE):
    return {k: v.reshape(shape)[rows].copy() for k, v in opt.state.items()}


def warmed(cls, kwargs, dtype, backend, seed=0):
    """An optimizer on a random (12, 3) array after three dense steps (non-trivial state)."""
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(SHAPE).astype(dtype)
    opt = cls(p, backend=backend, **kwargs)
    for _ in range(3):
        opt.step(rng.standard_normal(SHAPE).astype(dtype))
    return p, opt


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_rows_equal_a_dense_step_on_the_gathered_rows(config, dtype, backend):
    _, cls, kwargs = config
    p, opt = warmed(cls, kwargs, dtype, backend)
    g = np.random.default_rng(1).standard_normal((ROWS.size, SHAPE[1])).astype(dtype)
    before_p, before_state = p.copy(), {k: v.copy() for k, v in opt.state.items()}

    sub = p[ROWS].copy()
    dense = cls(sub, backend=backend, **kwargs)
    for name, rows in state_rows(opt, ROWS).items():
        dense.state[name][...] = rows.reshape(-1)
    dense.t, dense.carry = opt.t, opt.carry  # (LaProp carries its average rate)
    dense.step(g)
    opt.step_rows(ROWS, g)

    assert opt.t == 4
    np.testing.assert_array_equal(p[ROWS], sub)
    for name, rows in state_rows(opt, ROWS).items():
        np.testing.assert_array_equal(rows.reshape(-1), dense.state[name], err_msg=name)
    untouched = np.setdiff1d(np.arange(SHAPE[0]), ROWS)
    np.testing.assert_array_equal(p[untouched], before_p[untouched])
    for name, s in opt.state.items():
        np.testing.assert_array_equal(s.reshape(SHAPE)[untouched],
                                      before_state[name].reshape(SHAPE)[untouched])


@pytest.mark.parametrize("config", CONFIGS, ids=IDS)
def test_cpu_and_numpy_rows_agree(config):
    _, cls, kwargs = config
    results = []
    for backend in ("cpu", "numpy"):
        p, opt = warmed(cls, kwargs, np.float64, backend)
        opt.step_rows(ROWS, np.full((ROWS.size, SHAPE[1]), 0.25))
        results.append((p, opt.state))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-14, atol=0)
    for name in results[0][1]:
        np.testing.assert_allclose(results[0][1][name], results[1][1][name], rtol=1e-14)


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_duplicate_rows_are_summed(backend):
    g = np.random.default_rng(2).standard_normal((3, SHAPE[1]))
    p1, o1 = warmed(rmsopt.RMSprop, dict(lr=0.01, momentum=0.9), np.float64, backend)
    p2, o2 = warmed(rmsopt.RMSprop, dict(lr=0.01, momentum=0.9), np.float64, backend)
    o1.step_rows([5, 2, 5], g)
    o2.step_rows([5, 2], np.stack([g[0] + g[2], g[1]]))
    np.testing.assert_array_equal(p1, p2)
    for name in o1.state:
        np.testing.assert_array_equal(o1.state[name], o2.state[name])


def test_lazy_adam_uses_the_global_step_count():
    """Bias correction of the touched rows uses the optimizer's t (LazyAdam/SparseAdam)."""
    p = np.zeros((4, 2))
    opt = rmsopt.Adam(p, lr=0.1)
    for _ in range(9):
        opt.step_rows([0], np.ones((1, 2)))
    opt.step_rows([3], np.ones((1, 2)))
    assert opt.t == 10
    # row 3's first update, at t = 10: m = 0.1, v = 0.001, bias-corrected with t = 10
    m, v = 0.1, 0.001
    expected = -(0.1 / (1 - 0.9**10)) * m / (np.sqrt(v) / np.sqrt(1 - 0.999**10) + 1e-8)
    np.testing.assert_allclose(p[3], expected, rtol=1e-12)
    assert np.all(p[1:3] == 0)


def test_one_dimensional_and_higher_dimensional_parameters():
    b = np.zeros(6)
    opt = rmsopt.SGD(b, lr=1.0)
    opt.step_rows(np.array([1, 4], dtype=np.uint8), [1.0, 2.0])
    np.testing.assert_array_equal(b, [0, -1, 0, 0, -2, 0])
    w = np.zeros((3, 2, 2), dtype=np.float32)
    opt = rmsopt.SGD(w, lr=1.0)
    opt.step_rows([2], np.ones((1, 2, 2)))
    assert w.dtype == np.float32 and w[2].sum() == -4 and w[:2].sum() == 0


def test_list_of_params_index_selects_the_array():
    a, b = np.zeros((4, 2)), np.zeros((5, 3))
    opt = rmsopt.RMSprop([a, b], lr=0.1)
    opt.step_rows([1], np.ones((1, 3)), index=1)
    assert np.all(a == 0) and np.all(b[[0, 2, 3, 4]] == 0) and np.all(b[1] < 0)
    nu = opt.state["nu"]
    assert np.all(nu[:8] == 0) and np.all(nu[8 + 3:8 + 6] > 0) and np.count_nonzero(nu) == 3


def test_empty_rows_count_a_step_and_touch_nothing():
    p, opt = warmed(rmsopt.Adam, dict(lr=0.01), np.float64, "cpu")
    before = p.copy()
    opt.step_rows(np.array([], dtype=np.int64), np.empty((0, SHAPE[1])))
    assert opt.t == 4
    np.testing.assert_array_equal(p, before)


def test_rows_reuse_the_dense_kernel_without_recompiling():
    def count():
        return sum(len(k.signatures) for k in cpu._step_kernels.values())

    _, opt = warmed(rmsopt.RMSprop, dict(lr=0.01, centered=True), np.float64, "cpu")
    n = count()
    opt.step_rows(ROWS, np.ones((ROWS.size, SHAPE[1])))
    opt.step_rows([3], np.ones((1, SHAPE[1]), dtype=np.float32))
    assert count() == n


@pytest.mark.parametrize("rows, grad, error, match", [
    ([12], np.ones((1, 3)), ValueError, r"rows contains 12, outside \[0, 12\)"),
    ([-1], np.ones((1, 3)), ValueError, r"rows contains -1"),
    ([0.0], np.ones((1, 3)), ValueError, "1-D array of integers"),
    ([True], np.ones((1, 3)), ValueError, "1-D array of integers"),
    ([[0, 1]], np.ones((2, 3)), ValueError, "1-D array of integers"),
    ([0, 1], np.ones((1, 3)), ValueError, r"grad has shape \(1, 3\), expected \(2, 3\)"),
    ([0], np.ones(3), ValueError, "grad has shape"),
    ([0], np.ones((1, 3), dtype=complex), ValueError, "grad has dtype complex128"),
    ([0], [["a", "b", "c"]], ValueError, "grad has dtype"),
])
def test_bad_rows_change_nothing(rows, grad, error, match):
    p, opt = warmed(rmsopt.Adam, dict(lr=0.01), np.float64, "cpu")
    snapshot = p.tobytes(), {k: v.tobytes() for k, v in opt.state.items()}
    with pytest.raises(error, match=match):
        opt.step_rows(rows, grad)
    assert opt.t == 3
    assert (p.tobytes(), {k: v.tobytes() for k, v in opt.state.items()}) == snapshot


def test_bad_index_grad_aliasing_and_lr():
    p, opt = warmed(rmsopt.RMSprop, dict(lr=0.01), np.float64, "cpu")
    with pytest.raises(ValueError, match="index 1 is out of range"):
        opt.step_rows([0], np.ones((1, 3)), index=1)
    with pytest.raises(TypeError, match="index must be an integer"):
        opt.step_rows([0], np.ones((1, 3)), index="0")
    with pytest.raises(ValueError, match="shares memory"):
        opt.step_rows([0], p[:1])
    with pytest.raises(ValueError, match="Invalid lr"):
        opt.step_rows([0], np.ones((1, 3)), lr=-1.0)
    assert opt.t == 3


def test_rows_learn_an_embedding():
    """Embeddings trained by sparse rows fit their targets as a dense run does."""
    rng = np.random.default_rng(3)
    target = rng.standard_normal((50, 4))
    E = np.zeros((50, 4))
    opt = rmsopt.RMSprop(E, lr=0.02)
    for _ in range(600):
        rows = rng.integers(0, 50, 16)
        opt.step_rows(rows, E[rows] - target[rows])
    assert np.abs(E - target).max() < 0.1


def test_asv_rows_benchmark_runs_at_its_smallest_size():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.bench_rows import Rows

    bench = Rows()
    args = (1000, 4, 64, "float64")
    bench.setup(*args)
    bench.time_step_rows(*args)
    bench.time_dense_step(*args)
