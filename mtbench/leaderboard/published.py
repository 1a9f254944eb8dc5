"""Published results: ``<leaderboard_dir>/published/<benchmark>.toml``.

The file stores the rows of a published table with the numbers as printed.
Its top level has ``benchmark`` (the file's stem), ``metric`` (the table's main
metric), a ``[source]`` table with a ``title``, an optional ``[decimals]``
table giving the printed decimals of each value, and ``[[rows]]`` entries.
Each row has a ``label``, a ``variant`` table ``{method, batchnorm, dropout}``
matching the leaderboard's variants, and numbers such as
``harmonic_accuracy``, ``harmonic_accuracy_std`` and ``sigma_cos``.
"""

import math
import sys
from dataclasses import dataclass
from pathlib import Path

from mtbench.errors import MtbenchError
from mtbench.leaderboard.aggregate import Variant
from mtbench.paths import project_root

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


@dataclass(frozen=True)
class PublishedRow:
    """One published row: a label, the variant it corresponds to, and its numbers as printed."""

    label: str
    variant: Variant
    values: dict[str, float]


@dataclass(frozen=True)
class PublishedTable:
    """The published rows of one benchmark and where they come from."""

    path: Path
    benchmark: str
    metric: str
    title: str
    table: str | None
    runs: int | None
    decimals: dict[str, int]
    rows: list[PublishedRow]

    def format_value(self, row: PublishedRow, key: str) -> str:
        """Return ``row``'s value of ``key`` with the printed decimals, or "-" when the row has none."""
        value = row.values.get(key)
        if value is None:
            return "-"
        decimals = self.decimals.get(key)
        return f"{value:.{decimals}f}" if decimals is not None else f"{value:g}"


def published_path(leaderboard_dir: str | Path, benchmark: str) -> Path:
    """Return the path of the published rows of ``benchmark``.

    A leaderboard folder without its own ``published/<benchmark>.toml`` (a
    scratch folder of a demo, say) uses the repository's copy.
    """
    own = Path(leaderboard_dir) / "published" / f"{benchmark}.toml"
    shared = project_root() / "leaderboard" / "published" / f"{benchmark}.toml"
    return own if own.is_file() or not shared.is_file() else shared


def known_published_benchmarks(leaderboard_dir: str | Path) -> list[str]:
    """Return the sorted names of the benchmarks that have a published file."""
    folder = Path(leaderboard_dir) / "published"
    if not folder.is_dir():
        return []
    return sorted(path.stem for path in folder.glob("*.toml"))


def _invalid(path: Path, key: str, message: str) -> MtbenchError:
    return MtbenchError(f"Invalid published results file {path}: '{key}' {message} Fix the file and run the command again.")


TOML_TYPE_NAMES = {dict: "table", list: "array", str: "string", bool: "boolean"}


def _require(table: dict, key: str, kind: type, path: Path, prefix: str = "") -> object:
    value = table.get(key)
    name = f"{prefix}{key}"
    if value is None:
        raise _invalid(path, name, "is missing.")
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise _invalid(path, name, f"must be a {TOML_TYPE_NAMES[kind]}, got {value!r}.")
    return value


def _parse_variant(row: dict, path: Path, prefix: str) -> Variant:
    variant = _require(row, "variant", dict, path, prefix)
    return Variant(
        method=_require(variant, "method", str, path, f"{prefix}variant."),
        batchnorm=_require(variant, "batchnorm", bool, path, f"{prefix}variant."),
        dropout=_require(variant, "dropout", bool, path, f"{prefix}variant."),
    )


def _parse_row(row: object, index: int, path: Path) -> PublishedRow:
    prefix = f"rows[{index}]."
    if not isinstance(row, dict):
        raise _invalid(path, f"rows[{index}]", "must be a table.")

    values = {}
    for key, value in row.items():
        if key in ("label", "variant"):
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise _invalid(path, f"{prefix}{key}", f"must be a finite number, got {value!r}.")
        values[key] = float(value)
    return PublishedRow(_require(row, "label", str, path, prefix), _parse_variant(row, path, prefix), values)


def _parse_decimals(document: dict, path: Path) -> dict[str, int]:
    decimals = document.get("decimals", {})
    if not isinstance(decimals, dict):
        raise _invalid(path, "decimals", "must be a table of value names to numbers of decimals.")
    for key, value in decimals.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _invalid(path, f"decimals.{key}", f"must be a non-negative integer, got {value!r}.")
    return decimals


def read_published(leaderboard_dir: str | Path, benchmark: str) -> PublishedTable | None:
    """Return the published rows of ``benchmark``, or None when it has no published file.

    Raises MtbenchError naming the file and the key for invalid TOML, a
    missing or mistyped key, or a ``benchmark`` that differs from the file name.
    """
    path = published_path(leaderboard_dir, benchmark)
    if not path.is_file():
        return None
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise MtbenchError(f"Cannot read the published results file {path}: {error}. Fix the file and run the command again.") from error

    if _require(document, "benchmark", str, path) != benchmark:
        raise _invalid(path, "benchmark", f"is '{document['benchmark']}', which does not match the file name {path.name}.")
    source = _require(document, "source", dict, path)
    rows = _require(document, "rows", list, path)
    runs = source.get("runs")
    if runs is not None and (not isinstance(runs, int) or isinstance(runs, bool)):
        raise _invalid(path, "source.runs", f"must be an integer, got {runs!r}.")

    return PublishedTable(
        path=path,
        benchmark=benchmark,
        metric=_require(document, "metric", str, path),
        title=_require(source, "title", str, path, "source."),
        table=source.get("table") if isinstance(source.get("table"), str) else None,
        runs=runs,
        decimals=_parse_decimals(document, path),
        rows=[_parse_row(row, index, path) for index, row in enumerate(rows)],
    )
