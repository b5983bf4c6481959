"""Mutation testing: make small deliberate bugs in rmsopt, one at a time, and see which the
tests catch.

    python tools/mutate.py checkpoint schedules        # every mutant of these modules
    python tools/mutate.py rules --sample 40 --seed 1  # a random sample of 40
    python tools/mutate.py --list hyper                # the mutants, without running them

Each mutant is one edit of the module's syntax tree: an arithmetic operator swapped
(``+``/``-``, ``*``/``/``, ``**`` to ``*``), a comparison turned (``<`` to ``<=``, ``==`` to
``!=``, ...), ``and``/``or`` swapped, a ``not`` dropped, a number changed (``n`` to ``n + 1``,
``0.0`` to ``1.0``, ``x`` to ``2 x``) or ``True``/``False`` flipped. Docstrings are left alone.
The package and the tests are copied to a temporary folder, the mutant written there, and the
module's tests (``MODULES``) run with ``pytest -x`` in a fresh process: a failure kills the
mutant. A mutant the tests do not kill *survives*: a hole in the tests, unless the edit
changes nothing observable (an *equivalent* mutant, judged by reading it).

Numba compiles again for every mutant of a module that feeds kernels (rules, hyper), since
the kernel cache is keyed by every source file; for the others the cache of the unmutated
package is reused (``--reuse-cache``, on by default for them), which is safe because their
code is not compiled. Not part of CI: a run takes minutes to hours.
"""

import argparse
import ast
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: module -> (pytest arguments: the tests that cover it; whether its code is compiled into kernels)
#: A mutant that survives them and is in a module with CUDA paths (:data:`SIMULATOR`) also meets
#: tests/test_cuda.py in Numba's CUDA simulator.
MODULES = {
    "rules": (["tests/test_golden.py", "tests/test_numerics.py", "tests/test_backends.py",
               "tests/test_properties.py"], True),
    "hyper": (["tests/test_errors.py", "tests/test_golden.py", "tests/test_numerics.py",
               "tests/test_checkpoint.py", "tests/test_bad_input.py"], True),
    "checkpoint": (["tests/test_checkpoint.py", "tests/test_errors.py"], False),
    "schedules": (["tests/test_schedules.py", "tests/test_minimize.py", "tests/test_compiled.py",
                   "tests/test_checkpoint.py", "-k", "schedul or cosine or warmup or lr"], False),
    "minimize": (["tests/test_minimize.py", "tests/test_compiled.py", "tests/test_scale.py",
                  "tests/test_errors.py"], False),
    # the minimize engine; stop_test and grad_norm are compiled into the nopython loop
    "loop": (["tests/test_minimize.py", "tests/test_compiled.py", "tests/test_scale.py",
              "tests/test_errors.py"], True),
}

#: modules whose CUDA paths (the engine's in-place strategy, device arrays) only
#: tests/test_cuda.py reaches, run with NUMBA_ENABLE_CUDASIM=1
SIMULATOR = {"loop": ["tests/test_cuda.py", "-k", "minimize or loop or bounds or interrupt"],
             "minimize": ["tests/test_cuda.py", "-k", "minimize or loop or bounds or interrupt"]}

SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
         ast.Pow: ast.Mult, ast.FloorDiv: ast.Div, ast.Mod: ast.FloorDiv,
         ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
         ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
         ast.In: ast.NotIn, ast.NotIn: ast.In, ast.And: ast.Or, ast.Or: ast.And}


def _docstrings(tree):
    """The Constant nodes that are docstrings (never mutated)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _sites(tree):
    """``(node, field, description)`` for every place a mutant can be made, in source order."""
    skip = _docstrings(tree)
    sites = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in SWAPS:
            sites.append((node, "op", f"{type(node.op).__name__} -> "
                                      f"{SWAPS[type(node.op)].__name__}"))
        elif isinstance(node, ast.BoolOp):
            sites.append((node, "op", f"{type(node.op).__name__} -> "
                                      f"{SWAPS[type(node.op)].__name__}"))
        elif isinstance(node, ast.Compare):
            for k, op in enumerate(node.ops):
                if type(op) in SWAPS:
                    sites.append((node, ("ops", k), f"{type(op).__name__} -> "
                                                    f"{SWAPS[type(op)].__name__}"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            sites.append((node, "not", "not dropped"))
        elif isinstance(node, ast.Constant) and id(node) not in skip:
            v = node.value
            if isinstance(v, bool):
                sites.append((node, "value", f"{v} -> {not v}"))
            elif isinstance(v, (int, float)):
                sites.append((node, "value", f"{v!r} -> {_changed(v)!r}"))
    sites.sort(key=lambda s: (s[0].lineno, s[0].col_offset, s[2]))
    return sites


def _changed(v):
    if isinstance(v, int):
        return v + 1
    return 1.0 if v == 0.0 else 2.0 * v


class _Replace(ast.NodeTransformer):
    """Apply one site's mutation (``not`` dropped needs the parent, hence a transformer)."""

    def __init__(self, target):
        self.target = target

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        return node.operand if node is self.target else node


def mutant_source(source, index):
    """``(new source, line, description)`` of mutant ``index`` of ``source``."""
    tree = ast.parse(source)
    node, field, what = _sites(tree)[index]
    if field == "op":
        node.op = SWAPS[type(node.op)]()
    elif isinstance(field, tuple):
        node.ops[field[1]] = SWAPS[type(node.ops[field[1]])]()
    elif field == "value":
        node.value = (not node.value) if isinstance(node.value, bool) else _changed(node.value)
    elif field == "not":
        tree = _Replace(node).visit(tree)
    return ast.unparse(ast.fix_missing_locations(tree)), node.lineno, what


def count(module):
    return len(_sites(ast.parse((ROOT / "rmsopt" / f"{module}.py").read_text())))


def _copy(dest):
    for name in ("rmsopt", "tests"):
        shutil.copytree(ROOT / name, dest / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")


# Run inside the copy: with --reuse-cache the kernel cache keeps the unmutated package's key
# (the mutated module is not compiled code), so only the tests' own time is spent.
_RUNNER = """
import sys, pytest
digest = sys.argv[1]
if digest:
    import rmsopt._kernels.cache as cache
    cache.source_digest = lambda: digest
sys.exit(pytest.main(sys.argv[2:]))
"""


def run(module, indices, timeout, reuse_cache, out=print):
    tests, compiled = MODULES[module]
    reuse = reuse_cache and not compiled
    source = (ROOT / "rmsopt" / f"{module}.py").read_text()
    results = []
    with tempfile.TemporaryDirectory(prefix="rmsopt-mutants-") as tmp:
        tmp = Path(tmp)
        _copy(tmp)
        env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp / "numba-cache"),
                   PYTHONDONTWRITEBYTECODE="1")
        digest = ""
        if reuse:  # the unmutated copy's key, and its kernels compiled once
            digest = subprocess.run(
                [sys.executable, "-c", "import rmsopt._kernels.cache as c; "
                 "print(c.source_digest())"], cwd=tmp, env=env, capture_output=True, text=True,
                check=True).stdout.strip()
        args = ["-x", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", *tests]
        target = tmp / "rmsopt" / f"{module}.py"
        target.write_text(ast.unparse(ast.parse(source)))  # as mutants are written, unmutated
        start = time.perf_counter()
        baseline = subprocess.run([sys.executable, "-c", _RUNNER, digest, *args], cwd=tmp,
                                  env=env, capture_output=True, text=True)
        base_s = time.perf_counter() - start
        if baseline.returncode != 0:
            raise SystemExit(f"the unmutated tests fail:\n{baseline.stdout[-3000:]}")
        out(f"{module}: {len(indices)} mutants; pytest {' '.join(tests)} ({base_s:.0f} s unmutated)")
        for index in indices:
            mutated, line, what = mutant_source(source, index)
            target.write_text(mutated)
            start = time.perf_counter()
            try:
                proc = subprocess.run([sys.executable, "-c", _RUNNER, digest, *args], cwd=tmp,
                                      env=env, capture_output=True, text=True,
                                      timeout=timeout or 3 * base_s + 60)
                outcome = "killed" if proc.returncode != 0 else "SURVIVED"
                if outcome == "SURVIVED" and module in SIMULATOR:
                    sim = ["-x", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                           *SIMULATOR[module]]
                    proc = subprocess.run([sys.executable, "-c", _RUNNER, digest, *sim],
                                          cwd=tmp, env=dict(env, NUMBA_ENABLE_CUDASIM="1"),
                                          capture_output=True, text=True,
                                          timeout=timeout or 3 * base_s + 60)
                    outcome = "killed (simulator)" if proc.returncode != 0 else "SURVIVED"
            except subprocess.TimeoutExpired:
                outcome = "killed (timeout)"
            seconds = time.perf_counter() - start
            results.append((index, line, what, outcome))
            out(f"  #{index:<4} {module}.py:{line:<5} {what:<24} {outcome:<17} {seconds:6.1f} s")
        target.write_text(source)
    killed = sum(r[3] != "SURVIVED" for r in results)
    out(f"{module}: {killed}/{len(results)} killed"
        + (f" ({100 * killed / len(results):.0f}%)" if results else ""))
    return results


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("modules", nargs="*", default=list(MODULES), choices=list(MODULES) + [[]])
    p.add_argument("--sample", type=int, help="a random sample of this many mutants per module")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", type=int, nargs="+", help="these mutant numbers")
    p.add_argument("--timeout", type=float, help="seconds per mutant (default 3x unmutated)")
    p.add_argument("--no-reuse-cache", action="store_true")
    p.add_argument("--list", action="store_true", help="print the mutants, run nothing")
    a = p.parse_args(argv)
    for module in a.modules:
        n = count(module)
        indices = a.only or list(range(n))
        if a.sample and a.sample < len(indices):
            indices = sorted(random.Random(a.seed).sample(indices, a.sample))
        if a.list:
            source = (ROOT / "rmsopt" / f"{module}.py").read_text()
            for i in indices:
                _, line, what = mutant_source(source, i)
                print(f"#{i:<4} {module}.py:{line:<5} {what}")
            continue
        run(module, indices, a.timeout, not a.no_reuse_cache)


if __name__ == "__main__":
    main()
