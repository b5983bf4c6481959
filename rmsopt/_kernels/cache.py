"""On-disk cache of compiled kernels that can never serve a stale one.

Numba's own ``cache=True`` is not safe for rmsopt's kernels, for three reasons:

- its key hashes only the cached function's bytecode and closure, and its
  freshness check looks only at that function's file: a kernel in ``cpu.py``
  that inlines a rule from ``rules.py`` would be served from disk after
  ``rules.py`` changed;
- a closure over another jitted function pickles that function with a
  per-process id, so closure kernels (one per rule variant) never hit;
- all variants of one closure share an index file, and two processes adding
  different variants at once can pair a key with the other's machine code.

:class:`KernelCache` keeps Numba's machinery for storing and rebuilding
compiled code, and replaces the key: a SHA-256 of every source file of the
package, the versions of Python, NumPy, Numba and llvmlite, a description of
the variant (the rule and its compile-time flags, the jit options), the
argument types and the target CPU. Each key has a file of its own, so
concurrent writers never mix entries. A change to any file of the package, to
a library or to the CPU gives a new key: a miss and a fresh compile, never
old code. Set ``RMSOPT_CACHE=0`` to turn the cache off; Numba's
``NUMBA_CACHE_DIR`` chooses where it lives (by default ``__pycache__`` beside
the kernel's source, or a user cache directory when that is read-only).
"""

import functools
import hashlib
import os
import pathlib
import sys
import warnings

import llvmlite
import numba
import numpy as np
from numba.core.caching import FunctionCache, IndexDataCacheFile

from .. import _config


@functools.cache
def source_digest():
    """SHA-256 of every ``.py`` file of the package and the library versions it compiles with."""
    h = hashlib.sha256()
    package = pathlib.Path(__file__).resolve().parent.parent
    for path in sorted(package.rglob("*.py")):
        h.update(path.relative_to(package).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    for version in (sys.version, np.__version__, numba.__version__, llvmlite.__version__):
        h.update(version.encode() + b"\0")
    return h.hexdigest()


def describe(obj):
    """A text that tells variants apart, the same in every process.

    Jitted functions by name, containers by content, objects without a repr of
    their own (stateless rule descriptions) by class.
    """
    if isinstance(obj, numba.core.dispatcher.Dispatcher):
        return f"{obj.py_func.__module__}.{obj.py_func.__qualname__}"
    if type(obj).__repr__ is object.__repr__:
        return f"{type(obj).__module__}.{type(obj).__qualname__}"
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return "(" + ", ".join(describe(o) for o in obj) + ")"
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{k!r}: {describe(v)}" for k, v in sorted(obj.items())) + "}"
    return repr(obj)


class KernelCache(FunctionCache):
    """Numba's function cache with one file per (sources, variant, types, CPU) key."""

    def __init__(self, py_func, variant):
        super().__init__(py_func)
        self._variant = variant
        self._stamp = self._impl.locator.get_source_stamp()

    def _file(self, sig, codegen):
        key = repr((source_digest(), self._variant, tuple(sig), codegen.magic_tuple()))
        name = hashlib.sha256(key.encode()).hexdigest()[:32]
        return IndexDataCacheFile(cache_path=self._cache_path,
                                  filename_base=f"{self._impl.filename_base}-{name}",
                                  source_stamp=self._stamp), key

    def _load_overload(self, sig, target_context):
        if not self._enabled:
            return None
        file, key = self._file(sig, target_context.codegen())
        try:
            data = file.load(key)  # the full key is checked too, not only the file name
            return None if data is None else self._impl.rebuild(target_context, data)
        except Exception as e:  # a damaged entry (truncated, zeroed, garbage): recompile
            _discard(file, e)
            return None

    def _save_overload(self, sig, data):
        if not self._enabled or not self._impl.check_cachable(data):
            return
        self._impl.locator.ensure_cache_path()
        file, key = self._file(sig, data.codegen)
        try:
            file.save(key, self._impl.reduce(data))  # reads the index first
        except Exception as e:
            _discard(file, e)
            file.save(key, self._impl.reduce(data))


def _discard(file, error):
    """Remove a damaged entry's index, so that the entry is compiled and written afresh
    (Numba writes index and data through a temporary file and a rename), with a warning."""
    path = file._index_path
    warnings.warn(f"rmsopt: damaged kernel cache entry {path} ({type(error).__name__}: "
                  f"{error}); compiling it again", RuntimeWarning, stacklevel=2)
    try:
        os.unlink(path)
    except OSError:
        pass


def cached(dispatcher, variant=()):
    """Give ``dispatcher`` a :class:`KernelCache` (unless ``RMSOPT_CACHE=0``); returns it.

    ``variant`` is everything, besides the package source and the argument
    types, that the compiled code depends on: a closure's captured rule and
    flags, the jit options. Call before the first compile.
    """
    if _config.CACHE:
        options = dict(dispatcher.targetoptions)
        try:
            dispatcher._cache = KernelCache(dispatcher.py_func, describe((variant, options)))
        except RuntimeError:  # Numba found no writable cache directory: compile every time
            pass
    return dispatcher
