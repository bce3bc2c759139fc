"""pyroute2's IPRoute and netns, without the rest of pyroute2.

`import pyroute2` runs a package `__init__` that imports every socket family it has
(NDB with sqlite3, IPSet, WireGuard, nl80211, conntrack, unittest through its test
helpers...): about 10 MiB of a running agent and a tenth of a second at every start.
The overlay uses two of its modules. `load()` registers the package without running
that `__init__`, then imports only those two; the first attribute anyone asks of the
bare package (another caller's `from pyroute2 import NDB`) runs the real `__init__`
into it, so every other use of pyroute2 in the same process sees the whole library.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

_lock = threading.RLock()


def _register_bare_package() -> None:
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise ImportError("pyroute2 is not installed")
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def complete(name: str) -> Any:
        # A submodule (`from pyroute2 import netns`) is imported on its own; anything
        # else is a name of the package's __init__, which is run once, into the package.
        if importlib.util.find_spec(f"pyroute2.{name}") is not None:
            return importlib.import_module(f"pyroute2.{name}")
        with _lock:
            if "__getattr__" in package.__dict__:
                del package.__dict__["__getattr__"]
                loader.exec_module(package)
        return package.__dict__[name] if name in package.__dict__ else _missing(name)

    package.__dict__["__getattr__"] = complete
    sys.modules["pyroute2"] = package


def _missing(name: str) -> Any:
    raise AttributeError(f"module 'pyroute2' has no attribute {name!r}")


def _load() -> tuple[Any, ModuleType]:
    """(the IPRoute class, the pyroute2.netns module)."""
    with _lock:
        if "pyroute2" not in sys.modules:
            _register_bare_package()
    from pyroute2 import netns
    from pyroute2.iproute.linux import IPRoute

    return IPRoute, netns


def iproute() -> Any:
    """A new pyroute2 IPRoute in the calling thread's network namespace."""
    return _load()[0]()


def setns(name: str) -> None:
    """Move the calling thread (only) into the named network namespace."""
    _load()[1].setns(name, flags=0, fork=False)
