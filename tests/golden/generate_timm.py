"""Generate ``timm_runs.json``: timm itself, run for the rules that timm defines (LaProp).

Like ``generate.py`` (whose problem, steps and schedule it uses), it never imports rmsopt.
It needs torch and timm; only timm's optimizer modules are loaded (``timm/optim/laprop.py``
and the two modules it imports), not the ``timm`` package, whose import pulls in its models::

    pip install --no-deps --target /tmp/timmpkg timm
    PYTHONPATH=/tmp/timmpkg python tests/golden/generate_timm.py

Each case runs ``timm.optim.LaProp([p], **kwargs)`` for 25 steps in float64 (torch's default
dtype set to float64, so that timm's scalar state ``exp_avg_lr_2`` is float64 too); a changing
learning rate is written to ``param_groups[0]["lr"]`` before each step, as a scheduler does.
"""

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import generate  # noqa: E402  (this folder's generate.py)

OUT = Path(__file__).with_name("timm_runs.json")

# (id, timm kwargs, rmsopt optimizer, rmsopt kwargs, schedule base or None)
CASES = [
    ("timm-laprop", dict(lr=0.05), "LaProp", dict(lr=0.05), None),
    ("timm-laprop-betas-eps", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-8), "LaProp",
     dict(lr=0.05, betas=(0.8, 0.99), eps=1e-8), None),
    ("timm-laprop-weight-decay", dict(lr=0.05, weight_decay=0.3), "LaProp",
     dict(lr=0.05, weight_decay=0.3), None),
    ("timm-laprop-lr-schedule", dict(lr=0.05), "LaProp", dict(), 0.05),
    ("timm-laprop-weight-decay-lr-schedule", dict(lr=0.05, weight_decay=0.2, betas=(0.5, 0.9)),
     "LaProp", dict(weight_decay=0.2, betas=(0.5, 0.9)), 0.05),
]


def timm_optim():
    """timm's ``optim`` modules, loaded from the installed package's files without running
    ``timm/__init__.py``; returns the ``laprop`` module."""
    spec = importlib.util.find_spec("timm")
    if spec is None:
        raise SystemExit("timm is not installed (see this module's docstring)")
    folder = Path(spec.submodule_search_locations[0]) / "optim"
    package = types.ModuleType("timm_optim")
    package.__path__ = [str(folder)]
    sys.modules["timm_optim"] = package
    module = None
    for name in ("_types", "_helpers", "laprop"):
        spec = importlib.util.spec_from_file_location(f"timm_optim.{name}", folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module


def run(laprop, kwargs, p0, grad, lrs):
    import torch

    p = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    opt = laprop.LaProp([p], **kwargs)
    out = []
    for t in range(generate.STEPS):
        if lrs is not None:
            opt.param_groups[0]["lr"] = lrs[t]
        p.grad = torch.from_numpy(grad(p.detach().numpy().copy()))
        opt.step()
        out.append(p.detach().numpy().copy())
    return np.array(out)


def main():
    import torch
    from importlib.metadata import version

    torch.set_default_dtype(torch.float64)
    laprop = timm_optim()
    a, b, p0 = generate.problem()
    grad = generate.gradient(a, b)
    source = f"timm.optim.LaProp (timm {version('timm')}, torch {torch.__version__}, float64)"
    cases = []
    for case_id, kwargs, cls, rmsopt_kwargs, base in CASES:
        lrs = None if base is None else generate.schedule(base)
        cases.append(dict(id=case_id, source=source, optimizer=cls, kwargs=rmsopt_kwargs,
                          lrs=lrs, trajectory=run(laprop, kwargs, p0, grad, lrs)))
    data = dict(about="Golden trajectories for tests/test_golden.py from timm itself; "
                      "regenerate with tests/golden/generate_timm.py.",
                timm_version=version("timm"), steps=generate.STEPS,
                gradient="A @ p - b + 0.1 * sin(3 * p)", A=a, b=b, p0=p0, cases=cases)
    OUT.write_text(generate.dumps(data) + "\n")
    print(f"wrote {len(cases)} cases to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
