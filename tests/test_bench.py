"""``python -m rmsopt bench``: the tables run and report what they measured (tiny sizes)."""

import numpy as np

from rmsopt import bench


def test_step_table_has_a_row_per_variant_dtype_and_size():
    lines = []
    rows = bench.table({np.float32: (4000,), np.float64: (1000, 2000)}, variants=("plain", "momentum"),
                       out=lines.append)
    assert [(r["variant"], r["dtype"], r["n"]) for r in rows] == [
        ("plain", "float32", 4000), ("plain", "float64", 1000), ("plain", "float64", 2000),
        ("momentum", "float32", 4000), ("momentum", "float64", 1000), ("momentum", "float64", 2000)]
    for r in rows:
        assert r["rmsopt"] > 0 and r["numpy"] > 0 and r["floor"] > 0
    assert len(lines) == 2 + len(rows) and "x)" in lines[-1]


def test_floor_kernel_moves_the_variants_traffic():
    assert bench.traffic_bytes("plain", np.float64, 10) == 5 * 10 * 8
    assert bench.traffic_bytes("centered", np.float32, 10) == 7 * 10 * 4
    x, g, a = np.ones(4), np.full(4, 0.5), np.zeros(4)
    bench.floor_step(x, g, [a])
    np.testing.assert_array_equal(a, g)  # every array is read and the state written


def test_numpy_step_is_torch_rmsprop():
    rng = np.random.default_rng(0)
    x, g = rng.normal(size=50), rng.normal(size=50)
    nu, mu, buf = rng.random(50), rng.normal(size=50) * 0.1, rng.normal(size=50)
    lr, rho, eps, m = 1e-2, 0.9, 1e-8, 0.5
    nu2 = rho * nu + (1 - rho) * g * g
    mu2 = rho * mu + (1 - rho) * g
    buf2 = m * buf + g / (np.sqrt(np.maximum(nu2 - mu2 * mu2, 0)) + eps)
    want = x - lr * buf2
    bench.numpy_step(x, g, nu, np.empty(50), lr, rho, eps, mu, buf, m)
    np.testing.assert_allclose(x, want, rtol=1e-12)
    np.testing.assert_allclose(buf, buf2, rtol=1e-12)


def test_threads_and_arrays_tables():
    lines = []
    rows = bench.threads_table(2000, threads=(1, 2), out=lines.append)
    assert 1 in rows and all(a > 0 and b > 0 for a, b in rows.values())
    many, one = bench.arrays_table(count=5, each=100, repeats=2, out=lines.append)
    assert many > 0 and one > 0
    assert "5 arrays of 1e+02 vs one of 5e+02" in lines[-1]


def test_the_floor_is_serial_where_rmsopt_is():
    """A threaded floor at 1e3 elements timed the threads' wake-up (ratios of 0.02x)."""
    from rmsopt import _config, bench

    x, g, a = np.ones(10), np.ones(10), np.zeros(10)
    bench.floor_step(x, g, [a])
    assert bench._serial_floors[0].signatures and x.size < _config.PARALLEL_THRESHOLD
    np.testing.assert_array_equal(x, 2.0)


def test_first_call_table_times_cold_and_warm_runs_in_fresh_interpreters():
    """Structure only: trivial calls stand in for the compiling ones (no timing asserted)."""
    calls = {"first opt.step": ("import rmsopt", "pass"),
             "first compiled minimize": ("import time", "time.sleep(0.01)")}
    lines = []
    times = bench.first_call_table(calls, repeats=2, out=lines.append)
    assert list(times) == list(calls)
    for t in times.values():
        assert set(t) == {"cold", "warm"} and all(0 <= v < 60 for v in t.values())
    assert times["first compiled minimize"]["cold"] >= 0.01
    assert "empty cache" in lines[1] and "filled cache" in lines[1]
    assert lines[2].lstrip().startswith("first opt.step") and "(<= 1" in lines[2]
    assert "(<= 2" in lines[3] and "(<= 0.15" in lines[3]


def test_first_call_runs_this_copy_of_rmsopt_with_the_cache_given(tmp_path):
    import rmsopt

    seconds = bench.first_call_seconds(
        f"import os, rmsopt\nassert os.environ['NUMBA_CACHE_DIR'] == {str(tmp_path)!r}\n"
        f"assert rmsopt.__file__ == {rmsopt.__file__!r}", "pass", tmp_path)
    assert seconds >= 0


def test_the_first_calls_are_valid_python():
    assert set(bench.FIRST_CALL_TARGETS) == set(bench.FIRST_CALLS)
    for setup, call in bench.FIRST_CALLS.values():
        compile(bench._TIMED.format(setup=setup, call=call), "<first call>", "exec")


def test_cold_runs_get_an_empty_cache_and_warm_runs_the_filled_one(monkeypatch):
    seen = []

    def fake(setup, call, cache_dir):
        seen.append((call, cache_dir, cache_dir.exists() and any(cache_dir.iterdir())))
        cache_dir.mkdir(parents=True, exist_ok=True)
        (cache_dir / "entry").write_text("kernel")
        return 1.0

    monkeypatch.setattr(bench, "first_call_seconds", fake)
    times = bench.first_call_times({"a": ("", "a()"), "b": ("", "b()")}, repeats=3)
    assert times == {"a": {"cold": 1.0, "warm": 1.0}, "b": {"cold": 1.0, "warm": 1.0}}
    for name in ("a()", "b()"):
        runs = [(d, filled) for call, d, filled in seen if call == name]
        fill, rest = runs[0], runs[1:]
        cold, warm = rest[0::2], rest[1::2]
        assert not fill[1] and len(cold) == len(warm) == 3
        assert all(not filled for _, filled in cold)  # each cold run: a new, empty directory
        assert len({d for d, _ in cold}) == 3 and fill[0] not in {d for d, _ in cold}
        assert all(d == fill[0] and filled for d, filled in warm)
    assert not seen[0][1].parent.exists()  # the temporary directories are removed
