"""The asv suite is valid and every benchmark runs (at its smallest size)."""

import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import bench_minimize, bench_ratios, bench_step  # noqa: E402


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
                                 bench_minimize.Scale, bench_ratios.StepOverFloor,
                                 bench_ratios.TorchOverRmsopt, bench_ratios.MinimizeOverLoop,
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


@pytest.mark.parametrize("cls, params", [
    (bench_ratios.StepOverFloor, ("plain", "float64", 1)),
    (bench_ratios.StepOverFloor, ("centered", "float32", 1)),
    (bench_ratios.TorchOverRmsopt, ("plain", "float64")),
    (bench_ratios.MinimizeOverLoop, ("float64",)),
])
def test_ratio_tracks_are_positive_ratios(cls, params, monkeypatch):
    monkeypatch.setattr(bench_ratios, "REPEATS", 3)
    monkeypatch.setattr(bench_ratios, "BUDGET", 0.5)
    bench = cls()
    try:
        bench.setup(*params)
    except NotImplementedError as e:
        pytest.skip(str(e))
    tracks = [name for name in dir(bench) if name.startswith("track_")]
    assert tracks
    for name in tracks:
        assert getattr(bench, name).unit == "ratio"
        value = getattr(bench, name)(*params)
        # A ratio of two times of the same work: far from 0 and from infinity.
        assert isinstance(value, float) and 0.05 < value < 50, (name, value)


def test_ratio_is_numerator_over_denominator(monkeypatch):
    """The ratio's orientation: a contender that sleeps 4x as long reads 4x, not 0.25x."""
    import time

    fns = {"slow": lambda: time.sleep(0.008), "fast": lambda: time.sleep(0.002)}
    ratio = bench_ratios.interleaved_ratio(fns, "slow", "fast", repeats=3, budget=1.0)
    assert 2.5 < ratio < 6


def test_a_commit_without_a_helper_skips(monkeypatch):
    """asv's skip (NotImplementedError), not a failure, where rmsopt.bench lacks a helper."""
    monkeypatch.delattr(bench_ratios.bench, "floor_step")
    with pytest.raises(NotImplementedError, match="floor_step"):
        bench_ratios.StepOverFloor().setup("plain", "float64", 1)
