"""Every python example in README.md runs as written."""

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
ALL_BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
# Blocks that need a GPU run in tests/test_cuda.py (in the CUDA simulator).
GPU_BLOCKS = [b for b in ALL_BLOCKS if b.startswith("# GPU")]
BLOCKS = [b for b in ALL_BLOCKS if not b.startswith("# GPU")]


def test_readme_has_examples():
    assert len(BLOCKS) >= 3


def _x(ns):
    return np.asarray(ns["res"].x)


# What each block (found by a phrase of its code) prints or says it does, checked on the
# variables it leaves and on its output.
CHECKS = {
    "method=rmsopt.methods.rmsprop": lambda ns, out, d: (
        ns["res"].status == 1 and ns["res"].nit == 20000 and np.abs(_x(ns) - 1).max() < 1e-3),
    '"batch_size": 64': lambda ns, out, d: (   # "close to [4, 3]"
        ns["res"].status == 5 and np.abs(_x(ns) - [4, 3]).max() < 1e-2
        and ns["res"].epochs == 20 and ns["res"].steps == 640),
    "exponential(1e-3, 0.9999)": lambda ns, out, d: (  # "[1. 1.] 132917 0"
        "[1. 1.] 132917 0" in out and ns["res"].success),
    'opt.save("run.npz")': lambda ns, out, d: (
        ns["opt"].t == 2000 and np.abs(ns["w"] - 1).max() < 0.05 and (d / "run.npz").exists()),
    '"lr": 5e-2}': lambda ns, out, d: (  # param groups
        ns["opt"].t == 1500 and out.strip() == "1500 [0.005, 0.05] 0.5"
        and (d / "groups.npz").exists() and np.abs(ns["W"] - np.linspace(-1, 1, 8)).max() < 0.05),
    "step_rows(rows": lambda ns, out, d: (  # "only rows 7 and 42 moved"
        ns["opt"].t == 1 and set(np.flatnonzero(ns["E"].any(axis=1))) == {7, 42}),
    "rmsopt.plot.save": lambda ns, out, d: (
        (d / "convergence.png").stat().st_size > 0 and (d / "paths.png").stat().st_size > 0),
    "rmsopt.torch.RMSprop, torch.optim.RMSprop": lambda ns, out, d: (  # "~1e-13"
        ns["gap"] < 1e-11 and ns["loss"] < 0.5 * float(((ns["y"] - ns["y"].mean()) ** 2).mean())
        and ns["opt"].state_dict()["state"][0]["step"].item() == 300
        and ns["opt"].param_groups[0]["lr"] == 1e-2 * 0.5 ** 3 and out.startswith("loss ")),
    "dask.array as da": lambda ns, out, d: (
        out.startswith("Array True") and ns["res"].status == 1 and ns["opt"].t == 10),
}


def test_every_example_has_a_check():
    for block in BLOCKS:
        assert sum(key in block for key in CHECKS) == 1, block[:200]


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs_and_does_what_it_says(index, tmp_path, monkeypatch, capsys):
    block = BLOCKS[index]
    if "dask" in block:
        pytest.importorskip("dask")
    if "import io, torch" in block:
        pytest.importorskip("torch")
    if "rmsopt.plot" in block:
        pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(block, f"README.md[{index}]", "exec"), namespace)
    out = capsys.readouterr().out
    check = next(f for key, f in CHECKS.items() if key in block)
    assert check(namespace, out, tmp_path), out[-2000:]
