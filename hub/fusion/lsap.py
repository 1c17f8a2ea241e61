"""scipy's ``linear_sum_assignment``, loaded without importing ``scipy.optimize``.

Importing the ``scipy.optimize`` package takes 0.4-0.5 s (it loads every solver
it has), which is most of the hub's start-up. The assignment solver is one
self-contained C extension, ``scipy/optimize/_lsap``, that the package
re-exports as it is; loading that file alone takes under a millisecond and
gives the very same function. Should a scipy release move it, the package
import is the fallback, slower but the same solver.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import scipy

_MODULE = "scipy.optimize._lsap"


def _load() -> Callable[..., Any]:
    """The solver from its extension file, or from scipy.optimize if the file is not there."""
    loaded = sys.modules.get(_MODULE)
    if loaded is not None:
        return loaded.linear_sum_assignment  # type: ignore[no-any-return]
    folder = str(Path(scipy.__file__).parent / "optimize")
    found = importlib.machinery.PathFinder.find_spec("_lsap", [folder])
    if found is None or not isinstance(found.loader, importlib.machinery.ExtensionFileLoader):
        from scipy.optimize import linear_sum_assignment as solver
        return solver  # type: ignore[no-any-return]
    spec = importlib.util.spec_from_file_location(_MODULE, found.origin)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # Registered, so a later ``import scipy.optimize`` reuses it instead of loading it twice.
    sys.modules[_MODULE] = module
    return module.linear_sum_assignment  # type: ignore[no-any-return]


linear_sum_assignment: Callable[..., Any] = _load()
