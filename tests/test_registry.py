"""The architecture: one registry of optimizers, everything else derived; no import circles.

A new rule is its rule function and host side (``rmsopt/rules.py``), its NumPy reference
(``rmsopt/_kernels/reference.py``), its builder (``rmsopt/hyper.py``), its optimizer class (the
registry row, ``rmsopt/optimizer.py``), its configs (``tests/configs.py``) and golden runs. These
tests pin that nothing else lists the optimizers by hand.
"""

import ast
from pathlib import Path

import numpy as np
import pytest

import rmsopt
from rmsopt import hyper, methods, optimizer, rules
from rmsopt._kernels import reference
from rmsopt.optimizer import OPTIMIZERS

PACKAGE = Path(rmsopt.__file__).resolve().parent


def test_minimize_methods_are_the_registry():
    assert rmsopt.METHODS is OPTIMIZERS
    assert set(OPTIMIZERS) >= {"rmsprop", "sgd", "adagrad", "adadelta", "adam", "adamw"}


@pytest.mark.parametrize("method", sorted(OPTIMIZERS))
def test_every_registered_optimizer_is_everywhere(method):
    cls = OPTIMIZERS[method]
    assert getattr(rmsopt, cls.__name__) is cls and cls.__name__ in rmsopt.__all__
    worker = getattr(methods, method)
    assert worker.__name__ == f"_minimize_{method}" and method in methods.__all__
    assert cls.rule is rules.RULES[cls.rule.name]
    assert cls.rule.name in reference.STEPS and cls.rule.name in reference.SLOTS
    res = rmsopt.minimize(lambda x: float(x @ x), np.ones(3), jac=lambda x: 2 * x,
                          method=method.upper(), options={"maxiter": 2})
    assert res.nit == 2
    for kwargs in cls.precompiled:
        assert (cls, kwargs) in optimizer.DEFAULT_VARIANTS


def test_dask_classes_come_from_the_registry():
    dask_mod = pytest.importorskip("rmsopt.dask")
    for cls in OPTIMIZERS.values():
        dask_cls = getattr(dask_mod, cls.__name__)
        assert dask_cls.optimizer is cls and issubclass(dask_cls, dask_mod.Optimizer)
        assert dask_cls.__module__ == "rmsopt.dask" and cls.__name__ in dask_mod.__all__


def test_every_rule_has_a_reference_and_consistent_slots():
    for name, rule in rules.RULES.items():
        assert rule.name == name and rule.kernel.py_func.__name__ == name
        assert reference.STEPS[name].__name__ == name
        assert [s or None for s in rule.slots] == list(reference.SLOTS[name])
        assert set(rule.nonnegative) <= set(rule.slots)
        k = (0.5,) * len(rule.constants(OPTIMIZERS_BY_RULE[name]().hyper))
        assert len(rule.Scalars._fields) == len(rule.values(k, 1, 0.1, 0.05))
        carry = rule.advance(k, 0.1, 0.05)
        assert isinstance(carry, float) and (carry == 0.05) == (rule.carried == "")


def _default_optimizer(cls):
    return lambda: cls(np.zeros(2))


OPTIMIZERS_BY_RULE = {cls.rule.name: _default_optimizer(cls) for cls in OPTIMIZERS.values()}


def test_convention_presets_set_only_hyperparameters_the_builder_knows():
    keys = set(hyper.rmsprop())
    for name, preset in hyper.RMSPROP_CONVENTIONS.items():
        assert set(preset) <= keys, name


def test_a_preset_may_set_any_hyperparameter_that_defaults_to_none(monkeypatch):
    """Presets merge as ``{**preset, **given}`` (a None given is not given): one that sets
    clip_norm, clip_value or decoupled decay gives those, and a keyword given overrides it.
    (Keywords with a value as default, such as ``momentum=0.0``, are always given.)"""
    preset = dict(hyper.RMSPROP_CONVENTIONS["torch"], clip_norm=2.0, clip_value=0.5,
                  decoupled_weight_decay=True)
    monkeypatch.setitem(hyper.RMSPROP_CONVENTIONS, "custom", preset)
    h = rmsopt.RMSprop(np.zeros(2), convention="custom", weight_decay=0.1).hyper
    assert (h["clip_norm"], h["clip_value"], h["decoupled_weight_decay"], h["lr"]) == \
        (2.0, 0.5, True, 1e-2)
    h = rmsopt.RMSprop(np.zeros(2), convention="custom", clip_norm=3.0, lr=0.3).hyper
    assert (h["clip_norm"], h["lr"], h["clip_value"]) == (3.0, 0.3, 0.5)
    assert rmsopt.RMSprop(np.zeros(2), convention="custom", eps=None).hyper["eps"] == 1e-8


# ------------------------------------------------------------------ import graph

def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def _imports(name, path):
    """The rmsopt modules that module ``name`` imports, anywhere in it (lazy imports too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("rmsopt")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                base = ".".join(up[:len(up) - node.level + 1] + ([base] if base else []))
            if not base.startswith("rmsopt"):
                continue
            for a in node.names:  # "from . import x" imports module x when there is one
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
    return {m for m in out if m in MODULES and m != name}


MODULES = dict(_modules())


def test_the_import_graph_has_no_circles():
    """No module imports, directly or through others, a module that imports it (lazy
    imports inside functions included; the package ``rmsopt`` itself is left out: it imports
    its public modules, and ``bench`` and ``__main__`` import it)."""
    graph = {name: _imports(name, path) - {"rmsopt"} for name, path in MODULES.items()
             if name != "rmsopt"}
    assert "rmsopt.loop" in graph["rmsopt.minimize"]  # the parser sees imports
    done, path = set(), []

    def visit(m):
        if m in path:
            raise AssertionError(" -> ".join(path[path.index(m):] + [m]))
        if m in done:
            return
        path.append(m)
        for n in sorted(graph.get(m, ())):
            visit(n)
        path.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)


@pytest.mark.parametrize("method", sorted(OPTIMIZERS))
def test_host_scalars_have_the_same_bits_in_python_and_compiled(method):
    """The values, advance and common functions run as Python in Optimizer.step and inlined
    in the compiled minimize loop: both must give the same scalars."""
    from numba import njit

    opt = OPTIMIZERS[method](np.zeros(3))
    rule = opt.rule
    rule_values, rule_advance, common_values = rule.values, rule.advance, rules.common_values
    values = njit(lambda k, t, lr, c: rule_values(k, t, lr, c))
    advance = njit(lambda k, lr, c: rule_advance(k, lr, c))
    common = njit(lambda k, lr, s: common_values(k, lr, s))
    rng = np.random.default_rng(5)
    n_constants = len(rule.constants(opt.hyper))
    for _ in range(20):
        k = tuple(float(v) for v in rng.uniform(0.01, 0.999, n_constants))
        t, lr, carry = int(rng.integers(1, 10**6)), float(rng.uniform(1e-6, 1.0)), \
            float(rng.uniform(0.0, 1.0))
        assert rule.values(k, t, lr, carry) == values(k, t, lr, carry)
        assert rule.advance(k, lr, carry) == advance(k, lr, carry)
        scale = float(rng.choice([1.0, rng.uniform(0, 1), 1e-35]))
        assert rules.common_values((0.5, 0.1), lr, scale) == common((0.5, 0.1), lr, scale)
