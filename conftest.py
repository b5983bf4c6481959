"""Collection settings for the whole repository.

``rmsopt/torch.py`` imports torch, an optional extra: without it, its doctests are not
collected (``--doctest-modules`` would otherwise fail on the import) and ``tests/test_torch.py``
skips itself.
"""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("torch") else ["rmsopt/torch.py"]
