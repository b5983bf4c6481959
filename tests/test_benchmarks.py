"""The asv suite is valid and every benchmark runs (at its smallest size)."""

import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import bench_minimize, bench_ratios, bench_step, bench_torch  # noqa: E402


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


@pytest.fixture
def small_torch_benchmarks(monkeypatch):
    """bench_torch at 4000 elements and a few rounds (its sizes are module constants)."""
    pytest.importorskip("torch")
    for name, value in (("TOTAL", 4000), ("TENSORS", 4), ("SMALL", 8), ("REPEATS", 3),
                        ("BUDGET", 0.5)):
        monkeypatch.setattr(bench_torch, name, value)


@pytest.mark.parametrize("contender", bench_torch.CONTENDERS)
def test_torch_step_benchmark_steps_its_contender(contender, small_torch_benchmarks):
    bench = bench_torch.TorchStep()
    bench.setup(contender)
    before = bench.step.__self__.param_groups[0]["params"][0].detach().clone()
    bench.time_step(contender)
    optimizer = bench.step.__self__
    assert type(optimizer).__module__ == ("rmsopt.torch" if contender == "rmsopt.torch"
                                          else "torch.optim.rmsprop")
    if contender != "rmsopt.torch":
        assert optimizer.defaults["foreach"] is (contender == "torch foreach")
    params = optimizer.param_groups[0]["params"]
    assert len(params) == 4 and sum(p.numel() for p in params) == 4000
    assert (params[0].detach() < before).all()  # the step moved the parameters


def test_torch_ratio_tracks_are_positive_ratios(small_torch_benchmarks):
    bench = bench_torch.TorchRatios()
    bench.setup()
    tracks = [name for name in dir(bench) if name.startswith("track_")]
    assert sorted(tracks) == ["track_rmsopt_torch_over_torch", "track_small_tensors_over_one"]
    for name in tracks:
        assert getattr(bench, name).unit == "ratio"
        value = getattr(bench, name)()
        assert isinstance(value, float) and 0.01 < value < 100, (name, value)
    params = bench.spread["small"].__self__.param_groups[0]["params"]
    assert len(params) == 8 and len(bench.spread["one"].__self__.param_groups[0]["params"]) == 1


def test_torch_benchmarks_skip_without_torch_or_the_helper(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else find_spec(name, *a))
    with pytest.raises(NotImplementedError, match="torch is not installed"):
        bench_torch.TorchStep().setup("rmsopt.torch")
    monkeypatch.undo()
    pytest.importorskip("torch")
    monkeypatch.delattr(bench_torch.bench, "torch_rmsprop_steps")
    with pytest.raises(NotImplementedError, match="torch_rmsprop_steps"):
        bench_torch.TorchRatios().setup()
