"""Multi-task methods and their registry."""

from mtbench.methods.base import Hyperparameter, Method, StepContext
from mtbench.methods.registry import get_method, list_methods, load_plugin, register_method

# Importing the built-in methods registers them.
from mtbench.methods import cosreg, dwa, equal, gls, gradnorm, log_losses, rlw, single, uncertainty  # noqa: E402, F401

__all__ = [
    "Hyperparameter",
    "Method",
    "StepContext",
    "get_method",
    "list_methods",
    "load_plugin",
    "register_method",
]
