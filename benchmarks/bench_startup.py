"""Import time and first-call time, each in a fresh interpreter.

The first step either compiles its kernels (``RMSOPT_CACHE=0``) or loads them from the
on-disk cache, which the benchmark's setup fills.
"""

import os
import subprocess
import sys
import time

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
