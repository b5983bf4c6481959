"""The demo and the examples run (in their quick modes) and write readable, small figures."""

import io
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import rmsopt.demo

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ["digits", "factorisation", "high_dim", "linear_regression", "sensitivity", "two_d",
             "torch_cnn", "torch_rnn"]
NEEDS_TORCH = {"torch_cnn", "torch_rnn"}
# What an example prints besides "wrote": the figures its docstring promises
ROUNDING = r"(\d\.\de-1[3-9]|0\.0e\+00)"  # a float64 difference of rounding only
PRINTS = {"torch_cnn": [r"RMSprop  largest loss difference over 22 steps: " + ROUNDING,
                        r"Adam     largest loss difference over 22 steps: " + ROUNDING,
                        r"SGD      largest loss difference over 22 steps: " + ROUNDING],
          "torch_rnn": [r"largest loss difference rmsopt.torch - torch.optim " + ROUNDING,
                        r"torch.optim   \d+ steps, .*then a NaN weight",
                        r"rmsopt.torch  300 steps, .*then finite weights"]}
TESTED_ELSEWHERE = {"dask_least_squares": "tests/test_dask.py"}
EXAMPLES = [ROOT / "examples" / f"{name}.py" for name in SCENARIOS]
MAX_PNG = 150_000

pytest.importorskip("matplotlib")


def test_every_scenario_has_an_example():
    scripts = {p.stem for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_")}
    assert scripts == set(SCENARIOS) | set(TESTED_ELSEWHERE)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path, tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn")
    if path.stem in NEEDS_TORCH:
        pytest.importorskip("torch")
    monkeypatch.syspath_prepend(str(path.parent))
    monkeypatch.setattr(sys, "argv", [str(path), "--quick", "--out", str(tmp_path)])
    runpy.run_path(str(path), run_name="__main__")
    pngs = list(tmp_path.glob("*.png"))
    assert pngs, capsys.readouterr().out
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size < MAX_PNG
    out = capsys.readouterr().out
    assert "wrote" in out
    for pattern in PRINTS.get(path.stem, []):
        assert re.search(pattern, out), (pattern, out)


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    """The whole quick demo, run once: ``(demo, printed text, figure directory)``."""
    pytest.importorskip("sklearn")
    out, figures = io.StringIO(), tmp_path_factory.mktemp("demo")
    demo = rmsopt.demo.run(out=figures, quick=True, stream=out)
    return demo, out.getvalue(), figures


def _have_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def test_quick_demo_prints_every_table_and_writes_every_figure(quick_demo):
    demo, text, tmp_path = quick_demo
    torch_titles = ("7a. PyTorch CNN", "8a. PyTorch GRU", "8b. the same GRU, float32")
    for title in ("1a. rosenbrock", "1b. ravine", "2. quadratic", "3. linear regression",
                  "4. digits", "5. matrix factorisation", "6. sensitivity") + (
                      torch_titles if _have_torch() else ("scenario 7 skipped",)):
        assert title in text
    for method in rmsopt.demo.METHODS:
        assert method in text
    for column in ("final loss", "iterations", "time [s]", "test accuracy", "test RMSE"):
        assert column in text
    assert "step_rows" in text and "compiling kernels" in text
    # no NaN in any table; scenarios 7 and 8 write of torch's NaN in words, in lines that
    # name torch, but no number there is NaN either (a NaN number prints as "nan")
    assert "nan" not in "\n".join(line for line in text.splitlines()
                                  if "torch" not in line).lower()
    assert not re.search(r"\bnan\b", text)
    names = {Path(p).name for p in demo.figures}
    assert names == {"2d_rosenbrock_paths.png", "2d_ravine_paths.png", "2d_convergence.png",
                     "2d_effective_lr.png", "highdim_convergence.png", "linreg.png",
                     "digits.png", "factorisation.png", "sensitivity.png"} | (
                         {"torch_cnn.png", "torch_rnn.png"} if _have_torch() else set())
    for p in demo.figures:
        assert Path(p).stat().st_size < MAX_PNG
    assert str(tmp_path.resolve()) in text


def test_torch_scenarios_agree_in_float64_and_rmsopt_centered_stays_finite(quick_demo):
    pytest.importorskip("torch")
    from rmsopt.demo import largest_difference, nan_cause

    demo, text, _ = quick_demo
    cnn, rnn = demo.results["torch-cnn"], demo.results["torch-rnn"]
    # (a) float64: the same curves, step for step, for every optimizer
    for label, runs in {**cnn["float64"], **rnn["float64"]}.items():
        loss, params = largest_difference(runs)
        assert loss < 1e-13 and params < 1e-13, (label, loss, params)
        assert len(runs["rmsopt.torch"]["loss"]) == len(runs["torch.optim"]["loss"]) > 20
    for runs in (cnn["float64"]["RMSprop"], rnn["float64"]["RMSprop"]):
        curve = runs["rmsopt.torch"]["loss"]
        assert curve[-5:].mean() < 0.85 * curve[:5].mean()  # it learns
    assert cnn["float64"]["RMSprop"]["rmsopt.torch"]["accuracy"] > 0.5
    assert cnn["centered"] is None and "7b (float32" in text  # quick mode: without 7b
    # (b) float32 centered: torch's weights turn NaN from a negative variance estimate,
    # rmsopt.torch's stay finite to the end of the budget and keep the loss falling
    centered = rnn["centered"]
    torch_run, ours = centered["torch.optim"], centered["rmsopt.torch"]
    assert torch_run["nan_step"] is not None and ours["nan_step"] is None
    assert len(ours["loss"]) == 300 > torch_run["nan_step"] > 50
    name, index, variance = nan_cause(torch_run)
    assert variance < 0 and f"made {name}{list(index)} NaN" in text
    assert nan_cause(ours) is None
    assert ours["loss"][-1] < torch_run["loss"][-1] < torch_run["loss"][0]
    # the minimal case: a constant gradient with torch's defaults
    assert rnn["constant"]["torch.optim"] is not None and rnn["constant"]["rmsopt.torch"] is None


def test_torch_scenarios_without_torch_are_skipped_with_a_note(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    out = io.StringIO()
    demo = rmsopt.demo.run(out=tmp_path, quick=True, only=["torch-cnn", "torch-rnn"], stream=out)
    text = out.getvalue()
    for number in (7, 8):
        assert f"scenario {number} skipped: PyTorch is not installed" in text
    assert 'pip install "rmsopt[torch]"' in text
    assert demo.results == {"torch-cnn": None, "torch-rnn": None} and demo.figures == []


def test_demo_command_line_in_a_fresh_process(tmp_path):
    out = subprocess.run([sys.executable, "-m", "rmsopt", "demo", "--quick", "--only", "linreg",
                          "--out", str(tmp_path / "figs")], capture_output=True, text=True,
                         check=True).stdout
    assert "closed form" in out and "max |w - w*|" in out
    assert (tmp_path / "figs" / "linreg.png").exists()
    assert "linreg.png" in out


def test_demo_without_matplotlib_and_scikit_learn_prints_tables(tmp_path, monkeypatch):
    for name in ("matplotlib", "sklearn", "sklearn.datasets"):
        monkeypatch.setitem(sys.modules, name, None)
    out = io.StringIO()
    demo = rmsopt.demo.run(out=tmp_path, quick=True, only=["linreg", "digits"], stream=out)
    text = out.getvalue()
    assert "tables only" in text and 'pip install "rmsopt[plot]"' in text
    assert "scenario 4 skipped" in text and "scikit-learn" in text
    assert "3. linear regression" in text
    assert demo.figures == [] and not list(tmp_path.glob("*.png"))


def test_unknown_scenario_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="unknown scenario"):
        rmsopt.demo.run(out=tmp_path, only=["3d"])


def test_step_rows_benchmark_returns_two_positive_times():
    dense, rows = rmsopt.demo.step_rows_benchmark(1000, 4, 64, repeats=2)
    assert dense > 0 and rows > 0


def test_demo_only_is_case_insensitive_and_an_unknown_name_is_a_usage_error():
    from rmsopt.__main__ import main

    with pytest.raises(SystemExit) as e:
        main(["demo", "--only", "2D,digitz"])
    assert e.value.code == 2  # argparse's usage error, not a traceback
    from rmsopt.__main__ import scenario_names

    assert scenario_names(" 2D, LinReg ") == ["2d", "linreg"]


def test_path_figures_separate_runs_that_end_on_top_of_each_other(tmp_path, monkeypatch):
    # Adam and RMSprop end on the same spot of the contour plot; their distances to the
    # minimum, a third panel, are orders of magnitude apart
    figures = {}
    save = rmsopt.demo.Demo.figure
    monkeypatch.setattr(rmsopt.demo.Demo, "figure",
                        lambda self, name, fig, **kw: (figures.__setitem__(name, fig),
                                                       save(self, name, fig, **kw))[1])
    rmsopt.demo.run(out=tmp_path, quick=True, only=["2d", "linreg"], stream=io.StringIO())
    for name, runs in (("2d_rosenbrock_paths", rmsopt.demo.RMS_FAMILY),
                       ("2d_ravine_paths", rmsopt.demo.RMS_FAMILY), ("linreg", 4)):
        distance = figures[name].axes[2]
        assert distance.get_yscale() == "log" and "distance" in distance.get_ylabel()
        lines = [line for line in distance.lines if line.get_label()[0] != "_"]
        assert len(lines) == (runs if isinstance(runs, int) else len(runs))
    ends = [line.get_ydata()[-1] for line in figures["linreg"].axes[2].lines
            if line.get_label()[0] != "_"]
    assert max(ends) / min(ends) > 100
