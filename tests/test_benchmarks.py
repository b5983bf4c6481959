"""The asv suite is valid and every benchmark runs (at its smallest size)."""

import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import bench_minimize, bench_step  # noqa: E402


@pytest.mark.skipif(shutil.which("asv") is None and not Path(sys.executable).with_name("asv")
                    .exists(), reason="asv is not installed")
def test_asv_check():
    asv = shutil.which("asv") or str(Path(sys.executable).with_name("asv"))
    out = subprocess.run([asv, "check", "--python=same"], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 0 and "No problems found" in out.stdout, out.stdout + out.stderr


def smallest(cls):
    params = [p if isinstance(p, list) else list(p) for p in cls.params]
    return [min(p, key=lambda v: v if isinstance(v, int) else 0) if all(
        isinstance(v, int) for v in p) else p for p in params]


@pytest.mark.parametrize("cls", [bench_step.Step, bench_step.ManyArrays, bench_minimize.Rosenbrock,
                                 bench_minimize.Scale,
                                 bench_step.CudaStep, bench_step.CudaManyArrays])
def test_benchmarks_run(cls):
    # One method for minimize: each compiled objective x method is a loop to compile.
    choices = [["rmsprop"], ["python", "compiled"]] if cls is bench_minimize.Rosenbrock \
        else smallest(cls)
    for combo in itertools.product(*[c if isinstance(c, list) else [c] for c in choices]):
        bench = cls()
        try:
            bench.setup(*combo)
        except NotImplementedError:
            continue
        for name in dir(bench):
            if name.startswith(("time_", "peakmem_")):
                getattr(bench, name)(*combo)
