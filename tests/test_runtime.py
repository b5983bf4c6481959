"""Threads, processes and the command line."""

import concurrent.futures
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import rmsopt
from rmsopt import _config


def train(n, seed, steps=20):
    x = np.random.default_rng(seed).standard_normal(n)
    opt = rmsopt.RMSprop(x, lr=0.01, centered=True, momentum=0.9, clip_norm=10.0)
    for t in range(steps):
        opt.step(x - 0.5 + np.sin(t * x))
    return x


def test_python_threads_stepping_separate_optimizers():
    """Concurrent parallel kernels from several Python threads neither abort nor disturb each
    other (under the workqueue layer, launches are serialised by rmsopt)."""
    n = 2 * _config.PARALLEL_THRESHOLD
    expected = [train(n, s) for s in range(4)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda s: train(n, s), range(4)))
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


SCRIPT = textwrap.dedent("""
    import sys, numpy as np
    sys.path.insert(0, {root!r})
    from tests.test_runtime import train
    sys.stdout.write(train(100000, 7).tobytes().hex())
""")


def run_child(env_threads):
    import os
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, NUMBA_NUM_THREADS=str(env_threads))
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(root=root)], env=env,
                         capture_output=True, text=True, check=True)
    return out.stdout


def test_identical_results_across_spawned_processes_and_thread_counts():
    here = train(100000, 7).tobytes().hex()
    assert run_child(1) == here
    assert run_child(2) == here


def test_demo_runs_and_prints_a_table():
    out = subprocess.run([sys.executable, "-m", "rmsopt", "demo", "--quick", "--only", "2d",
                          "--no-plots"], capture_output=True, text=True, check=True).stdout
    for name in ("SGD", "AdaGrad", "AdaDelta", "RMSprop centered", "Adam"):
        assert name in out
    assert "final loss" in out


def test_info():
    out = subprocess.run([sys.executable, "-m", "rmsopt", "info"], capture_output=True,
                         text=True, check=True).stdout
    assert f"rmsopt {rmsopt.__version__}" in out


def test_import_compiles_nothing():
    code = ("import rmsopt, rmsopt._kernels.cpu as c; "
            "print(sum(len(k.signatures) for k in c._step_kernels.values()), "
            "sum(len(k.signatures) for k in c._global_norm.values()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "0"]


def test_import_leaves_scipy_optimize_for_later():
    """scipy.optimize takes about 0.4 s to import: rmsopt loads it when a result is built."""
    code = ("import sys, numpy as np, rmsopt; print('scipy.optimize' in sys.modules); "
            "rmsopt.minimize(lambda x: float(x @ x), np.ones(2), jac=lambda x: 2 * x, "
            "options={'maxiter': 2}); print('scipy.optimize' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_threads_under_the_workqueue_layer_do_not_abort():
    import os
    from pathlib import Path

    code = textwrap.dedent("""
        import sys, concurrent.futures, numba
        sys.path.insert(0, {root!r})
        from tests.test_runtime import train
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda s: train(70000, s, steps=30), range(8)))
        print(numba.threading_layer())
    """).format(root=str(Path(__file__).resolve().parents[1]))
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "workqueue"


def test_precompile_compiles_ahead_and_the_step_then_compiles_nothing():
    from rmsopt._kernels import cpu
    from rmsopt.rules import rmsprop

    variant = (rmsopt.RMSprop, dict(momentum=0.3, centered=True, nesterov=True, maximize=True))
    assert rmsopt.precompile([variant], dtypes=[np.float32]) == 2
    x = np.ones(10, np.float32)
    opt = variant[0](x, **variant[1])
    kernels = [cpu.step_kernel(rmsprop, *opt.variant[1:], p)
               for p in (False, True)]
    assert [len(k.signatures) for k in kernels] == [1, 1]
    opt.step(np.ones(10, np.float32))
    assert [len(k.signatures) for k in kernels] == [1, 1]
    assert np.all(x != 1)


def test_threads_stepping_one_optimizer_take_turns():
    """Each step is applied whole and counted: SGD's result is then exactly the sum of all
    gradients, in any order. The gradients are fresh arrays freed after their step."""
    n, steps, threads = 4 * _config.PARALLEL_THRESHOLD, 40, 4
    for cls, kwargs in ((rmsopt.SGD, {}), (rmsopt.SGD, {"clip_norm": 1e9})):
        x = np.zeros(n)
        opt = cls(x, lr=1.0, **kwargs)

        def work(k):
            for _ in range(steps):
                opt.step(np.full(n, k + 1.0))
            return k

        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, range(threads)))
        assert opt.t == steps * threads
        np.testing.assert_array_equal(x, -steps * sum(range(1, threads + 1)))


def test_threads_stepping_rows_and_checkpointing_one_optimizer():
    n = 4 * _config.PARALLEL_THRESHOLD
    E = np.zeros((n // 8, 8))
    opt = rmsopt.SGD(E, lr=1.0)
    rows = np.arange(E.shape[0])

    def rows_step(_):
        for _ in range(30):
            opt.step_rows(rows, np.ones(E.shape))

    def saver(_):
        for _ in range(30):
            d = opt.state_dict()
            assert np.all(d["params"][0] == -d["t"])  # never between a step and its count

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda f: f(0), (rows_step, rows_step, saver)))
    assert opt.t == 60
    np.testing.assert_array_equal(E, -60.0)


INTERRUPT_SCRIPT = """
import os, random, signal, sys, threading, time
import numpy as np
import pytest
import rmsopt

backend, n = sys.argv[1], int(sys.argv[2])
g = np.linspace(-1.0, 1.0, n)
x, y = np.zeros(n), np.zeros(n)
opt = rmsopt.RMSprop(x, lr=1e-3, momentum=0.9, centered=True, backend=backend)
twin = rmsopt.RMSprop(y, lr=1e-3, momentum=0.9, centered=True, backend=backend)
opt.step(g); twin.step(g)
start = time.perf_counter(); opt.step(g); twin.step(g)
step = time.perf_counter() - start
rng, interrupted, torn = random.Random(0), 0, 0
for trial in range(25):
    timer = threading.Timer(rng.uniform(0.0, 2 * step), os.kill, (os.getpid(), signal.SIGINT))
    try:
        timer.start()  # (a short delay can fire before start returns)
        while True:
            opt.step(g)
    except KeyboardInterrupt:
        interrupted += 1
    timer.join()
    while twin.t < opt.t:
        twin.step(g)
    same = x.tobytes() == y.tobytes() and all(
        opt.state[k].tobytes() == twin.state[k].tobytes() for k in opt.state)
    if not same:
        torn += 1
        twin.load_state_dict(opt.state_dict())
print(interrupted, torn)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to oneself is POSIX")
@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_ctrl_c_during_step_is_all_or_nothing(backend):
    """A real SIGINT at random moments of a step loop: afterwards parameters and state are
    exactly those of ``t`` whole steps (checked against a twin stepped ``t`` times)."""
    out = subprocess.run([sys.executable, "-c", INTERRUPT_SCRIPT, backend, str(400_000)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    interrupted, torn = map(int, out.stdout.split())
    assert interrupted == 25 and torn == 0
