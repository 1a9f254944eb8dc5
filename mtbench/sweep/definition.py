"""Sweep definitions: a grid of `mtbench run` configurations and seeds in a small TOML file.

Format (docs/leaderboard.md has the full description)::

    benchmark = "multidigitmnist"       # required
    seeds = [0, 1, 2]                   # required unless every [[runs]] entry sets its own
    plugins = ["methods/my_method.py"]  # optional; paths relative to the repository root
    description = "..."                 # optional

    [options]                           # optional: `mtbench run` options of every run
    epochs = 12

    [[runs]]                            # one or more entries
    method = "cosreg"                   # a method, a list of methods, or "all" (every registered method)
    exclude = ["single"]                # optional, only with method = "all"
    params = { lambda = [0.1, 1, 10] }  # optional hyper-parameters (`--param NAME=VALUE`)
    options = { batchnorm = [false, true] }  # optional `mtbench run` options; override [options]
    seeds = [0, 1]                      # optional; overrides the top-level seeds

An option ``name = value`` becomes ``--name value`` (underscores as dashes);
``true`` gives the flag ``--name`` and ``false`` leaves it out. A list in
``params`` or ``options`` is a grid axis: an entry expands to every
combination of its methods and axes.
"""

import itertools
import sys
from dataclasses import dataclass
from pathlib import Path

from mtbench.errors import MtbenchError
from mtbench.paths import project_root

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ALL_METHODS = "all"
TOP_LEVEL_KEYS = {"benchmark", "seeds", "plugins", "description", "options", "runs"}
ENTRY_KEYS = {"method", "exclude", "params", "options", "seeds"}
# Options that the sweep sets itself for every run.
RESERVED_OPTIONS = {
    "benchmark", "method", "param", "plugin", "seed", "task", "device",
    "data-root", "leaderboard-dir", "runs-dir", "resume", "help",
}

Scalar = str | int | float | bool


@dataclass(frozen=True)
class RunSpec:
    """One combination of a grid entry: a method, its hyper-parameters, `mtbench run` options and seeds."""

    method: str
    params: dict[str, Scalar]
    options: dict[str, Scalar]
    seeds: tuple[int, ...]
    entry: int


@dataclass(frozen=True)
class MethodChoice:
    """The methods of one entry: explicit names, or every registered method except ``exclude``."""

    names: tuple[str, ...]
    all_methods: bool = False
    exclude: tuple[str, ...] = ()

    def resolve(self, registered: list[str]) -> list[str]:
        """Return the method names, taking every name of ``registered`` for "all"."""
        if self.all_methods:
            return [name for name in sorted(registered) if name not in self.exclude]
        return list(self.names)


@dataclass(frozen=True)
class SweepEntry:
    """One [[runs]] entry: methods, then grid axes of hyper-parameters and options."""

    methods: MethodChoice
    params: dict[str, list[Scalar]]
    options: dict[str, list[Scalar]]
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class SweepDefinition:
    """A parsed sweep file."""

    path: Path
    benchmark: str
    description: str
    plugins: tuple[Path, ...]
    entries: tuple[SweepEntry, ...]

    def expand(self, registered_methods: list[str]) -> list[RunSpec]:
        """Return every combination of every entry, in file order; axes vary fastest from the last key."""
        specs = []
        for index, entry in enumerate(self.entries):
            params_axes = list(entry.params.items())
            options_axes = list(entry.options.items())
            for method in entry.methods.resolve(registered_methods):
                for params in itertools.product(*(values for _, values in params_axes)):
                    for options in itertools.product(*(values for _, values in options_axes)):
                        specs.append(RunSpec(
                            method=method,
                            params={name: value for (name, _), value in zip(params_axes, params)},
                            options={name: value for (name, _), value in zip(options_axes, options)},
                            seeds=entry.seeds,
                            entry=index,
                        ))
        return specs


class _Reader:
    """Validation helpers that name the file and the key in every error."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, key: str, message: str) -> MtbenchError:
        return MtbenchError(f"Invalid sweep file {self.path}: '{key}' {message} Fix the file and run the command again.")

    def unknown_keys(self, table: dict, allowed: set[str], prefix: str) -> None:
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise self.error(f"{prefix}{unknown[0]}", f"is not a known key. Known keys: {', '.join(sorted(allowed))}.")

    def seeds(self, value: object, key: str) -> tuple[int, ...]:
        if not isinstance(value, list) or not value or not all(isinstance(seed, int) and not isinstance(seed, bool) for seed in value):
            raise self.error(key, f"must be a non-empty list of integer seeds, got {value!r}.")
        if any(not 0 <= seed < 2**32 for seed in value) or len(set(value)) != len(value):
            raise self.error(key, f"must hold distinct seeds from 0 to 2**32 - 1, got {value!r}.")
        return tuple(value)

    def axes(self, value: object, key: str) -> dict[str, list[Scalar]]:
        if not isinstance(value, dict):
            raise self.error(key, f"must be a table of names to values or lists of values, got {value!r}.")
        axes = {}
        for name, values in value.items():
            values = values if isinstance(values, list) else [values]
            if not values or not all(isinstance(item, (str, int, float, bool)) for item in values):
                raise self.error(f"{key}.{name}", f"must be a string, number or boolean, or a non-empty list of them, got {value[name]!r}.")
            axes[name] = values
        return axes

    def options(self, value: object, key: str) -> dict[str, list[Scalar]]:
        axes = {}
        for name, values in self.axes(value, key).items():
            option = name.replace("_", "-")
            if option in RESERVED_OPTIONS:
                raise self.error(f"{key}.{name}", "is set by `mtbench sweep` itself; use the top-level keys or the sweep's command-line options.")
            axes[option] = values
        return axes

    def methods(self, entry: dict, key: str) -> MethodChoice:
        method = entry.get("method")
        exclude = entry.get("exclude", [])
        if not isinstance(exclude, list) or not all(isinstance(name, str) for name in exclude):
            raise self.error(f"{key}.exclude", f"must be a list of method names, got {exclude!r}.")
        if method == ALL_METHODS:
            return MethodChoice((), all_methods=True, exclude=tuple(exclude))
        if exclude:
            raise self.error(f"{key}.exclude", "is only allowed with method = \"all\".")
        names = method if isinstance(method, list) else [method]
        if not names or not all(isinstance(name, str) and name for name in names):
            raise self.error(f"{key}.method", f"must be a method name, a list of names or \"all\", got {method!r}.")
        return MethodChoice(tuple(names))


def _parse_entry(reader: _Reader, entry: object, index: int, document: dict, common_options: dict) -> SweepEntry:
    key = f"runs[{index}]"
    if not isinstance(entry, dict):
        raise reader.error(key, "must be a table.")
    reader.unknown_keys(entry, ENTRY_KEYS, f"{key}.")
    if "method" not in entry:
        raise reader.error(f"{key}.method", "is missing.")

    methods = reader.methods(entry, key)
    params = reader.axes(entry.get("params", {}), f"{key}.params")
    if params and (methods.all_methods or len(methods.names) > 1):
        raise reader.error(f"{key}.params", "needs a single method, because hyper-parameters differ between methods.")
    if "seeds" in entry:
        seeds = reader.seeds(entry["seeds"], f"{key}.seeds")
    elif "seeds" in document:
        seeds = reader.seeds(document["seeds"], "seeds")
    else:
        raise reader.error(f"{key}.seeds", "is missing, and the file has no top-level seeds.")
    options = {**common_options, **reader.options(entry.get("options", {}), f"{key}.options")}
    return SweepEntry(methods, params, options, seeds)


def read_definition(path: str | Path) -> SweepDefinition:
    """Read and validate the sweep file ``path``.

    Raises MtbenchError naming the file and the key for unreadable TOML, an
    unknown or missing key, a value of the wrong type, an option the sweep sets
    itself, and a plugin file that does not exist.
    """
    path = Path(path)
    reader = _Reader(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise MtbenchError(f"Sweep file not found: {path}. Pass the path of a .toml sweep definition, such as leaderboard/sweeps/*.toml.") from error
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise MtbenchError(f"Cannot read the sweep file {path}: {error}. Fix the file and run the command again.") from error

    reader.unknown_keys(document, TOP_LEVEL_KEYS, "")
    benchmark = document.get("benchmark")
    if not isinstance(benchmark, str) or not benchmark:
        raise reader.error("benchmark", f"must be a benchmark name, got {benchmark!r}.")
    description = document.get("description", "")
    if not isinstance(description, str):
        raise reader.error("description", f"must be a string, got {description!r}.")

    plugins = document.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(plugin, str) for plugin in plugins):
        raise reader.error("plugins", f"must be a list of paths, got {plugins!r}.")
    plugin_paths = tuple((project_root() / plugin).resolve() for plugin in plugins)
    for plugin, plugin_path in zip(plugins, plugin_paths):
        if not plugin_path.is_file():
            raise reader.error("plugins", f"names {plugin}, but {plugin_path} does not exist. Paths are relative to the repository root.")

    common_options = reader.options(document.get("options", {}), "options")
    entries = document.get("runs")
    if not isinstance(entries, list) or not entries:
        raise reader.error("runs", "must hold at least one [[runs]] entry.")
    parsed = tuple(_parse_entry(reader, entry, index, document, common_options) for index, entry in enumerate(entries))
    if "seeds" in document:
        reader.seeds(document["seeds"], "seeds")
    return SweepDefinition(path, benchmark, description, plugin_paths, parsed)
