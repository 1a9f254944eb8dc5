"""The method registry: built-in methods, plugin files and installed packages.

A method registers itself with the :func:`register_method` decorator. Users add
their own without editing mtbench: as a Python file passed with
``--plugin path/to/file.py``, or as an installed package that declares an entry
point in the group ``mtbench.methods``. The entry point's value is either a
module to import or a ``module:Class`` reference to a :class:`Method` subclass.
"""

import fnmatch
import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
import traceback
import types
from pathlib import Path

from mtbench.errors import MtbenchError
from mtbench.methods.base import Method

ENTRY_POINT_GROUP = "mtbench.methods"

_METHODS: dict[str, type[Method]] = {}
_entry_points_loaded = False
_registrations = 0  # calls of register_method that succeeded, re-registrations of a class included


def register_method(method_class: type[Method]) -> type[Method]:
    """Add ``method_class`` to the registry under its ``name``; use as a class decorator."""
    if not (isinstance(method_class, type) and issubclass(method_class, Method)):
        raise MtbenchError(f"register_method expects a subclass of mtbench.methods.Method, got {method_class!r}.")
    name = method_class.name
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise MtbenchError(f"Method class {method_class.__qualname__} needs a `name` of letters, digits, '-' or '_', got {name!r}.")
    existing = _METHODS.get(name)
    same_class = existing is not None and (existing.__module__, existing.__qualname__) == (
        method_class.__module__,
        method_class.__qualname__,
    )
    if existing is not None and not same_class:
        raise MtbenchError(
            f"Method name '{name}' is already registered by {existing.__module__}.{existing.__qualname__}. "
            "Choose another name for your method."
        )
    global _registrations
    _METHODS[name] = method_class
    _registrations += 1
    return method_class


def load_plugin(path: str | Path) -> None:
    """Import a Python file so that the methods it registers become available.

    Raises MtbenchError when the file is missing, fails to import or registers no method.
    """
    path = Path(path)
    if not path.is_file():
        raise MtbenchError(f"Plugin file not found: {path}. Pass the path of a .py file that registers a method.")
    path = path.resolve()
    # The path's hash keeps two plugins with the same file name apart.
    module_name = f"mtbench_plugin_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise MtbenchError(f"Cannot import plugin {path}: it is not a Python source file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    registrations_before = _registrations
    try:
        spec.loader.exec_module(module)
    except MtbenchError:
        sys.modules.pop(module_name, None)
        raise
    except (Exception, SystemExit) as error:
        sys.modules.pop(module_name, None)
        raise MtbenchError(
            f"Plugin {path} failed to import: {type(error).__name__}: {error} "
            f"({_error_location(error, path)}). Fix the plugin and run the command again."
        ) from error
    if _registrations == registrations_before:
        problem = _registration_problem(module, path)
        if problem is not None:
            sys.modules.pop(module_name, None)
            raise MtbenchError(problem)


def _registration_problem(module, path: Path) -> str | None:
    """Return why a plugin that registered nothing while it ran is an error, or None when it is not.

    A plugin passes when it refers to a registered class from outside mtbench
    or to the module that defines one: loaded a second time, a plugin that
    imports its methods from another module registers nothing new. A Method
    subclass defined in the plugin but not registered is always an error.
    """
    registered = set(_METHODS.values())
    forgotten = sorted(
        name
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, Method) and value.__module__ == module.__name__ and value not in registered
    )
    if forgotten:
        return (
            f"Plugin {path} defines {', '.join(forgotten)} but registered no method. Decorate the class with "
            "@register_method (from mtbench.methods import register_method)."
        )
    outside = {method_class for method_class in registered if not method_class.__module__.startswith("mtbench.")}
    outside_modules = {method_class.__module__ for method_class in outside}
    for value in vars(module).values():
        if isinstance(value, type) and value in outside:
            return None
        if isinstance(value, types.ModuleType) and value.__name__ in outside_modules:
            return None
    return (
        f"Plugin {path} registered no method. Decorate its Method subclass with "
        "@register_method (from mtbench.methods import register_method), or pass the file that does."
    )


def _error_location(error: BaseException, path: Path) -> str:
    """Return where in the plugin ``error`` was raised: its own frame, or the line of a syntax error."""
    if isinstance(error, SyntaxError):
        return f"at {error.filename}, line {error.lineno}"
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if Path(frame.filename) == path.resolve()]
    frame = frames[-1] if frames else traceback.extract_tb(error.__traceback__)[-1]
    return f"at {frame.filename}, line {frame.lineno}"


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry_point.load()
        except Exception as error:
            raise MtbenchError(
                f"The installed package entry point '{entry_point.name} = {entry_point.value}' "
                f"(group {ENTRY_POINT_GROUP}) failed to import: {type(error).__name__}: {error}. "
                "Fix or uninstall that package."
            ) from error
        if isinstance(loaded, type) and issubclass(loaded, Method):
            register_method(loaded)


def get_method(name: str) -> type[Method]:
    """Return the method class registered as ``name``."""
    _load_entry_points()
    if name not in _METHODS:
        known = ", ".join(sorted(_METHODS))
        raise MtbenchError(
            f"Unknown method '{name}'. Known methods: {known}. "
            "To add your own, pass --plugin path/to/file.py or install a package with an "
            f"entry point in the group '{ENTRY_POINT_GROUP}'."
        )
    return _METHODS[name]


def list_methods(pattern: str = "*") -> list[str]:
    """Return the sorted names of registered methods that match a shell-style ``pattern``."""
    _load_entry_points()
    return sorted(name for name in _METHODS if fnmatch.fnmatch(name, pattern))
