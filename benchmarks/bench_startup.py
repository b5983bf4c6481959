"""Import time and first-call time, each in a fresh interpreter.

The first step either compiles its kernels (``RMSOPT_CACHE=0``) or loads them from the
on-disk cache, which the benchmark's setup fills; the first ``minimize`` calls likewise, with
an empty or a filled cache directory (``python -m rmsopt bench`` prints the same).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

from rmsopt.bench import FIRST_CALLS, first_call_seconds

FIRST_STEP = "import numpy as np, rmsopt; rmsopt.RMSprop(np.ones(10)).step(np.ones(10))"


def _run(code, **env):
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, **env))
    return time.perf_counter() - t0


class Startup:
    timeout = 180

    def setup(self):
        _run(FIRST_STEP)  # fills the kernel cache

    def track_import_seconds(self):
        return _run("import rmsopt") - _run("pass")

    def track_first_step_seconds(self):
        """Kernels loaded from the on-disk cache."""
        return _run(FIRST_STEP) - _run("import rmsopt")

    def track_first_step_compile_seconds(self):
        """Kernels compiled (the cache turned off)."""
        return _run(FIRST_STEP, RMSOPT_CACHE="0") - _run("import rmsopt")

    track_import_seconds.unit = "seconds"
    track_first_step_seconds.unit = "seconds"
    track_first_step_compile_seconds.unit = "seconds"


class FirstMinimize:
    """The first ``minimize`` call after import (:data:`rmsopt.bench.FIRST_CALLS`), each in a
    fresh interpreter: with the kernel cache filled (by ``setup_cache``), and empty (a new
    directory each time: everything compiled, as for a newcomer)."""

    params = ([name for name in FIRST_CALLS if "minimize" in name],)
    param_names = ("call",)
    timeout = 600

    def setup_cache(self):
        cache = tempfile.mkdtemp(prefix="rmsopt-asv-kernels-")
        for name in self.params[0]:
            first_call_seconds(*FIRST_CALLS[name], cache)
        return cache

    def track_filled_cache_seconds(self, cache, call):
        return first_call_seconds(*FIRST_CALLS[call], cache)

    def track_empty_cache_seconds(self, cache, call):
        empty = tempfile.mkdtemp(prefix="rmsopt-asv-empty-")
        try:
            return first_call_seconds(*FIRST_CALLS[call], empty)
        finally:
            shutil.rmtree(empty, ignore_errors=True)

    track_filled_cache_seconds.unit = "seconds"
    track_empty_cache_seconds.unit = "seconds"
