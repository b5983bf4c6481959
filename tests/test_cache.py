"""The on-disk kernel cache: hits in a new process, and never serves stale code."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
from numba.core.caching import NullCache

import rmsopt
from rmsopt._kernels import cache, cpu

PACKAGE = pathlib.Path(rmsopt.__file__).resolve().parent

# One parallel and one serial step, and a compiled minimize; prints the results' bits
# and the cache statistics of the kernels involved.
SCRIPT = r"""
import json, sys, numba, numpy as np, rmsopt
from rmsopt import compiled
from rmsopt._kernels import cpu

big, small = np.linspace(-1, 1, 1 << 16), np.linspace(-1, 1, 7)
opts = [rmsopt.RMSprop(big, centered=True), rmsopt.RMSprop(small, centered=True)]
for opt, x in zip(opts, (big, small)):
    opt.step(np.cos(3 * x))
    opt.step(np.sin(5 * x))

bits = [big.tobytes().hex(), small.tobytes().hex()]
stats = {}
for name, opt in (("parallel", opts[0]), ("serial", opts[1])):
    kernel = cpu.step_kernel(opt.rule.kernel, *opt.variant[1:],
                             name == "parallel")
    stats[name] = [sum(kernel.stats.cache_hits.values()),
                   sum(kernel.stats.cache_misses.values())]
if "minimize" in sys.argv:
    @numba.njit
    def fun(x):
        return np.sum((x - 1.0) ** 2)

    @numba.njit
    def jac(x):
        return 2.0 * (x - 1.0)

    res = rmsopt.minimize(fun, np.zeros(3), jac=jac, options=dict(maxiter=50, compiled=True))
    chunk = next(iter(compiled._chunks.values()))
    stats["chunk"] = [sum(chunk.stats.cache_hits.values()),
                      sum(chunk.stats.cache_misses.values())]
    bits.append(res.x.tobytes().hex())
print(json.dumps(dict(stats=stats, cache=type(kernel._cache).__name__, bits=bits)))
"""


def run(tmp_path, package_parent=None, *args, **env):
    """Run SCRIPT (with ``args``) in a fresh interpreter with its cache under ``tmp_path``."""
    environ = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"), **env)
    if package_parent is not None:
        environ["PYTHONPATH"] = str(package_parent)
    out = subprocess.run([sys.executable, "-c", SCRIPT, *args], env=environ, cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_new_process_loads_the_kernels_instead_of_compiling(tmp_path):
    first, second = run(tmp_path, None, "minimize"), run(tmp_path, None, "minimize")
    assert first["cache"] == "KernelCache"
    for name in ("parallel", "serial", "chunk"):
        assert first["stats"][name] == [0, 1], name  # compiled and saved
        assert second["stats"][name] == [1, 0], name  # loaded, not compiled
    assert second["bits"] == first["bits"]


def test_a_changed_rule_is_compiled_afresh_not_served_from_disk(tmp_path):
    """Numba's own cache would miss this: the edit is in rules.py, the kernel lives in cpu.py."""
    copy = tmp_path / "src"
    shutil.copytree(PACKAGE, copy / "rmsopt", ignore=shutil.ignore_patterns("__pycache__"))
    before = run(tmp_path, copy)
    rules = copy / "rmsopt" / "rules.py"
    text = rules.read_text()
    old = "nu = h.rho * nu + h.one_minus_rho * (g * g)\n    var = nu\n"
    assert text.count(old) == 1  # RMSprop's second moment
    rules.write_text(text.replace(old, old.replace("(g * g)", "(g * g) * 4.0")))
    after = run(tmp_path, copy)
    assert run(tmp_path, copy)["stats"]["serial"] == [1, 0]  # the new code is cached in turn
    fresh = run(tmp_path, copy, RMSOPT_CACHE="0")
    for name in ("parallel", "serial"):
        assert after["stats"][name] == [0, 1], name
    assert fresh["cache"] == "NullCache"
    assert after["bits"] == fresh["bits"]
    assert after["bits"][0] != before["bits"][0]
    assert after["bits"][1] != before["bits"][1]


def test_variants_and_jit_options_have_distinct_keys():
    x = np.ones(3)
    opt = rmsopt.RMSprop(x)
    other = rmsopt.RMSprop(np.ones(3), centered=True)
    args = (opt.rule.kernel, *opt.variant[1:])
    serial, parallel = cpu.step_kernel(*args, False), cpu.step_kernel(*args, True)
    centered = cpu.step_kernel(other.rule.kernel, *other.variant[1:],
                               False)
    variants = {k._cache._variant for k in (serial, parallel, centered)}
    assert len(variants) == 3
    assert "'parallel': True" in parallel._cache._variant
    assert "centered=True" in centered._cache._variant
    # The same in every process: no object addresses, jitted functions by name.
    for v in variants:
        assert " at 0x" not in v and "rmsopt.rules.rmsprop" in v


def test_the_key_covers_every_source_file_of_the_package(tmp_path):
    copy = tmp_path / "rmsopt"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    digest = cache.source_digest()
    assert len(digest) == 64
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from rmsopt._kernels import cache; print(cache.source_digest())")

    def digest_of(root):
        return subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True,
                              text=True, check=True).stdout.strip()

    same = digest_of(tmp_path)
    assert same == digest  # the copy has the same files
    (copy / "schedules.py").write_text((copy / "schedules.py").read_text() + "\n# edit\n")
    assert digest_of(tmp_path) != same


def test_rmsopt_cache_0_turns_the_cache_off(tmp_path):
    code = ("import numpy as np, rmsopt; from rmsopt._kernels import cpu; "
            "print(type(cpu._global_norm[True]._cache).__name__)")
    env = dict(os.environ, RMSOPT_CACHE="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == NullCache.__name__


def test_no_writable_cache_directory_means_compiling_every_time(monkeypatch):
    from numba import njit

    def no_locator(self, py_func, variant):
        raise RuntimeError("cannot cache function: no locator available")

    monkeypatch.setattr(cache.KernelCache, "__init__", no_locator)
    twice = cache.cached(njit(lambda a: 2 * a))
    assert isinstance(twice._cache, NullCache)
    assert twice(21) == 42


def test_a_damaged_cache_entry_is_recompiled_and_rewritten(tmp_path):
    """A half-written data file or a zeroed index used to break every later process."""
    first = run(tmp_path)
    folder = tmp_path / "numba-cache"
    indexes, datas = list(folder.rglob("*.nbi")), list(folder.rglob("*.nbc"))
    assert indexes and datas
    for path in indexes[::2]:
        path.write_bytes(b"\0" * path.stat().st_size)  # zeroed index
    for path in datas[1::2]:
        path.write_bytes(path.read_bytes()[:40])  # truncated data
    damaged = run(tmp_path)
    assert damaged["bits"] == first["bits"]
    healed = run(tmp_path)  # rewritten: every kernel loads again
    assert healed["bits"] == first["bits"]
    for name in ("parallel", "serial"):
        assert healed["stats"][name] == [1, 0], name
