"""Published results: ``<leaderboard_dir>/published/<benchmark>.toml``.

The file stores the rows of a published table with the numbers as printed.
Its top level has:

- ``benchmark``: the file's stem;
- ``metric`` (optional): the published table's main metric, which must be
  the metric the leaderboard ranks by;
- ``sweep`` (optional): the sweep definition that trains the published
  configurations, as a path relative to the repository root;
- a ``[source]`` table with a ``title`` and optional ``table`` and ``runs``;
- an optional ``[decimals]`` table giving the printed decimals of each value;
- optional ``[[columns]]`` entries, one per printed column: ``key`` (the name
  of its values in the rows), ``header`` as printed, ``metric`` (the mtbench
  test metric the column compares with, left out when the printed column
  matches none) and an optional ``note``;
- ``[[rows]]`` entries. Each row has a ``label``, a ``variant`` table
  ``{method, batchnorm, dropout}`` matching the leaderboard's variants, and
  one number per column key. ``<key>_std`` is the printed standard
  deviation of column ``key``.

A file without ``[[columns]]`` names its values after mtbench metrics, such as
``harmonic_accuracy``, ``harmonic_accuracy_std`` and ``sigma_cos``. Each value
key is then a column that compares with the metric of the same name.
"""

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from mtbench.errors import MtbenchError
from mtbench.leaderboard.aggregate import COSINE_STATISTICS, Variant
from mtbench.leaderboard.directions import known_direction
from mtbench.leaderboard.records import is_finite_number
from mtbench.paths import project_root

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

STD_SUFFIX = "_std"
COLUMN_KEY_PATTERN = re.compile(r"[a-z0-9_]+")


@dataclass(frozen=True)
class PublishedRow:
    """One published row: a label, the variant it corresponds to, and its numbers as printed."""

    label: str
    variant: Variant
    values: dict[str, float]


@dataclass(frozen=True)
class PublishedColumn:
    """One printed column: the key of its values in the rows, its header as printed, and the mtbench metric it compares with.

    ``metric`` is None for a printed column that matches no mtbench metric.
    """

    key: str
    header: str
    metric: str | None
    note: str | None = None


@dataclass(frozen=True)
class PublishedTable:
    """The published rows of one benchmark, their columns and where they come from."""

    path: Path
    benchmark: str
    metric: str | None
    title: str
    table: str | None
    runs: int | None
    decimals: dict[str, int]
    rows: list[PublishedRow]
    columns: list[PublishedColumn]
    sweep: str | None = None

    def format_value(self, row: PublishedRow, key: str) -> str:
        """Return ``row``'s value of ``key`` with the printed decimals, or "-" when the row has none."""
        value = row.values.get(key)
        if value is None:
            return "-"
        decimals = self.decimals.get(key)
        return f"{value:.{decimals}f}" if decimals is not None else f"{value:g}"

    def column_of(self, metric: str) -> PublishedColumn | None:
        """Return the column that compares with mtbench metric ``metric``, or None."""
        return next((column for column in self.columns if column.metric == metric), None)

    def format_metric(self, row: PublishedRow, metric: str) -> str:
        """Return ``row``'s printed value of the column of ``metric``; "-" without such a column or value."""
        column = self.column_of(metric)
        return "-" if column is None else self.format_value(row, column.key)

    def format_metric_with_std(self, row: PublishedRow, metric: str) -> str:
        """Return "mean (std)" of the column of ``metric`` as printed, the mean alone without a std, "-" without a mean."""
        column = self.column_of(metric)
        if column is None:
            return "-"
        mean = self.format_value(row, column.key)
        std = self.format_value(row, column.key + STD_SUFFIX)
        return mean if mean == "-" or std == "-" else f"{mean} ({std})"

    @property
    def metrics(self) -> list[str]:
        """Return the mtbench metrics that some column compares with, in column order."""
        return [column.metric for column in self.columns if column.metric is not None]

    @property
    def unmapped_columns(self) -> list[PublishedColumn]:
        """Return the printed columns that compare with no mtbench metric, in column order."""
        return [column for column in self.columns if column.metric is None]

    @property
    def has_std(self) -> bool:
        """Return whether any row prints a standard deviation."""
        return any(key.endswith(STD_SUFFIX) for row in self.rows for key in row.values)


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


def _optional_string(table: dict, key: str, path: Path, prefix: str = "") -> str | None:
    return None if key not in table else _require(table, key, str, path, prefix)


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
        if not is_finite_number(value):
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


def _parse_column(entry: object, index: int, path: Path) -> PublishedColumn:
    prefix = f"columns[{index}]."
    if not isinstance(entry, dict):
        raise _invalid(path, f"columns[{index}]", "must be a table.")
    key = _require(entry, "key", str, path, prefix)
    if COLUMN_KEY_PATTERN.fullmatch(key) is None or key.endswith(STD_SUFFIX):
        raise _invalid(path, f"{prefix}key", f"must be lower-case letters, digits and '_' without a '{STD_SUFFIX}' ending, got {key!r}.")

    metric = _optional_string(entry, "metric", path, prefix)
    if metric is not None and metric not in COSINE_STATISTICS and known_direction(metric) is None:
        raise _invalid(
            path, f"{prefix}metric",
            f"is '{metric}', which has no known direction (higher or lower is better). Use an mtbench test metric name "
            "such as 'segmentation_miou', or leave 'metric' out when the printed column matches no mtbench metric.",
        )
    return PublishedColumn(key, _require(entry, "header", str, path, prefix), metric, _optional_string(entry, "note", path, prefix))


def _parse_columns(document: dict, path: Path) -> list[PublishedColumn] | None:
    """Return the ``[[columns]]`` entries, or None when the file has none; reject duplicate keys and metrics."""
    if "columns" not in document:
        return None
    columns = [_parse_column(entry, index, path) for index, entry in enumerate(_require(document, "columns", list, path))]
    for index, column in enumerate(columns):
        earlier = columns[:index]
        if any(other.key == column.key for other in earlier):
            raise _invalid(path, f"columns[{index}].key", f"repeats '{column.key}'; give each column its own key.")
        if column.metric is not None and any(other.metric == column.metric for other in earlier):
            raise _invalid(path, f"columns[{index}].metric", f"repeats '{column.metric}'; map each mtbench metric to one column.")
    return columns


def _columns_from_values(rows: list[PublishedRow]) -> list[PublishedColumn]:
    """Return one column per value key, named after the mtbench metric it holds; ``<key>_std`` keys are not columns."""
    keys: list[str] = []
    for row in rows:
        keys.extend(key for key in row.values if key not in keys)
    return [PublishedColumn(key, key, key) for key in keys if not (key.endswith(STD_SUFFIX) and key.removesuffix(STD_SUFFIX) in keys)]


def _check_row_keys(rows: list[PublishedRow], columns: list[PublishedColumn], path: Path) -> None:
    allowed = {column.key for column in columns} | {column.key + STD_SUFFIX for column in columns}
    for index, row in enumerate(rows):
        for key in row.values:
            if key not in allowed:
                raise _invalid(path, f"rows[{index}].{key}", "matches no [[columns]] entry. Add a column with this key, or remove the value.")


def _parse_sweep(document: dict, path: Path) -> str | None:
    sweep = _optional_string(document, "sweep", path)
    if sweep is not None and not (project_root() / sweep).is_file():
        raise _invalid(path, "sweep", f"names {sweep}, which is not a file under the repository root {project_root()}.")
    return sweep


def read_published(leaderboard_dir: str | Path, benchmark: str) -> PublishedTable | None:
    """Return the published rows of ``benchmark``, or None when it has no published file.

    Raises MtbenchError naming the file and the key for invalid TOML, a
    missing or mistyped key, a ``benchmark`` that differs from the file name, a
    column metric without a known direction, a repeated column key or metric,
    a row value that matches no column, and a ``sweep`` file that does not exist.
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
    runs = source.get("runs")
    if runs is not None and (not isinstance(runs, int) or isinstance(runs, bool)):
        raise _invalid(path, "source.runs", f"must be an integer, got {runs!r}.")

    rows = [_parse_row(row, index, path) for index, row in enumerate(_require(document, "rows", list, path))]
    columns = _parse_columns(document, path)
    if columns is None:
        columns = _columns_from_values(rows)
    else:
        _check_row_keys(rows, columns, path)

    return PublishedTable(
        path=path,
        benchmark=benchmark,
        metric=_optional_string(document, "metric", path),
        title=_require(source, "title", str, path, "source."),
        table=source.get("table") if isinstance(source.get("table"), str) else None,
        runs=runs,
        decimals=_parse_decimals(document, path),
        rows=rows,
        columns=columns,
        sweep=_parse_sweep(document, path),
    )
