"""Multi-task methods and their registry.

Every module in this package other than the infrastructure modules below
defines one built-in method and registers it on import.
"""

import importlib
import pkgutil

from mtbench.methods.base import Hyperparameter, Method, StepContext
from mtbench.methods.registry import get_method, list_methods, load_plugin, register_method

_INFRASTRUCTURE = {"base", "registry", "jacobian", "gradient_method"}

for _module in sorted(module.name for module in pkgutil.iter_modules(__path__)):
    if _module not in _INFRASTRUCTURE and not _module.startswith("_"):
        importlib.import_module(f"{__name__}.{_module}")

__all__ = [
    "Hyperparameter",
    "Method",
    "StepContext",
    "get_method",
    "list_methods",
    "load_plugin",
    "register_method",
]
