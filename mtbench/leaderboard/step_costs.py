"""Benchmark-measured step costs: ``<leaderboard_dir>/step_costs/<benchmark>.json``.

``benchmarks/leaderboard_step_cost.py`` writes the file. It times one training
step of every configuration in the benchmark's records, interleaved with a
reference configuration in one process. The trainer's own ``seconds_per_step``
is timed while other runs may share the machine, so these ratios compare
configurations more fairly. The file is one UTF-8 JSON object:

- ``schema_version``: 1;
- ``benchmark``: the file's stem;
- ``measured_on``, ``machine`` and ``command``: the date (YYYY-MM-DD), the
  machine and the command line of the measurement;
- ``reference``: the config_id whose step time the ratios divide by, which
  must be a key of ``configurations``;
- ``configurations``: an object from config_id (16 hex digits) to
  ``{ms_per_step, ratio_cpu, ratio_wall, gflop_per_step, peak_tensor_mib}``,
  each a finite non-negative number. Single-task models have one entry per
  task model.

Other keys are errors, because a misspelt key would otherwise be ignored.
"""

import datetime
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mtbench.errors import MtbenchError
from mtbench.leaderboard.aggregate import is_single_task_run, row_label
from mtbench.leaderboard.records import is_finite_number

SCHEMA_VERSION = 1
STEP_COSTS_FOLDER = "step_costs"
CONFIG_ID_PATTERN = re.compile(r"[0-9a-f]{16}")
TEXT_FIELDS = ("measured_on", "machine", "command")
TOP_LEVEL_KEYS = ("schema_version", "benchmark", *TEXT_FIELDS, "reference", "configurations")
COST_FIELDS = (
    "ms_per_step",
    "ratio_cpu",
    "ratio_wall",
    "gflop_per_step",
    "peak_tensor_mib",
)


@dataclass(frozen=True)
class StepCost:
    """The measured cost of one training step of one configuration.

    ``ratio_cpu`` and ``ratio_wall`` divide the step's CPU and wall-clock time
    by the reference configuration's. ``gflop_per_step`` counts the
    floating-point operations of matrix products and convolutions, forward
    and backward, in 1e9. ``peak_tensor_mib`` is the peak tensor memory in MiB.
    """

    ms_per_step: float
    ratio_cpu: float
    ratio_wall: float
    gflop_per_step: float
    peak_tensor_mib: float


@dataclass(frozen=True)
class StepCosts:
    """The contents of one step-cost file."""

    path: Path
    benchmark: str
    measured_on: str
    machine: str
    command: str
    reference: str
    configurations: dict[str, StepCost]

    def missing_config_ids(self, config_id: str) -> list[str]:
        """Return the parts of ``config_id`` (split at "+" for a joined single-task row) that have no entry."""
        return [
            part for part in config_id.split("+") if part not in self.configurations
        ]

    def cost_of(self, config_id: str) -> StepCost | None:
        """Return the cost of a row's ``config_id``; None when some part of it has no entry.

        A joined single-task row "a+b" trains one model per task, so its times,
        ratios and GFLOP are the sums over its parts and its peak memory is
        the maximum, as for the row's ``seconds_per_step`` and ``peak_memory_mb``.
        """
        if self.missing_config_ids(config_id):
            return None
        parts = [self.configurations[part] for part in config_id.split("+")]
        return StepCost(
            ms_per_step=sum(part.ms_per_step for part in parts),
            ratio_cpu=sum(part.ratio_cpu for part in parts),
            ratio_wall=sum(part.ratio_wall for part in parts),
            gflop_per_step=sum(part.gflop_per_step for part in parts),
            peak_tensor_mib=max(part.peak_tensor_mib for part in parts),
        )


def step_costs_path(leaderboard_dir: str | Path, benchmark: str) -> Path:
    """Return the path of the step-cost file of ``benchmark``."""
    return Path(leaderboard_dir) / STEP_COSTS_FOLDER / f"{benchmark}.json"


def default_command(benchmark: str) -> str:
    """Return the command line that writes the step-cost file of ``benchmark``."""
    return f"python benchmarks/leaderboard_step_cost.py --benchmark {benchmark}"


@dataclass(frozen=True)
class _FileValidator:
    """Value checks of one step-cost file, whose errors name the file, the key, the value and the command that writes the file again."""

    path: Path
    command: str

    def invalid(self, key: str, message: str) -> MtbenchError:
        return MtbenchError(
            f"Invalid step-cost file {self.path}: '{key}' {message} Rerun `{self.command}` to write it again."
        )

    def require(self, table: dict, key: str, prefix: str = "") -> object:
        if key not in table:
            raise self.invalid(f"{prefix}{key}", "is missing.")
        return table[key]

    def text(self, table: dict, key: str) -> str:
        value = self.require(table, key)
        if not isinstance(value, str) or not value:
            raise self.invalid(key, f"must be a non-empty string, got {value!r}.")
        if "\n" in value or "\r" in value:
            raise self.invalid(key, f"must be one line, because the notes of the leaderboard quote it, got {value!r}.")
        return value

    def only_keys(self, table: dict, allowed: tuple[str, ...], prefix: str = "") -> None:
        for key in table:
            if key not in allowed:
                # json.dumps escapes line breaks, so the error stays on one line.
                raise self.invalid(f"{prefix}{json.dumps(key)[1:-1]}", f"is not a key of step-cost files. Keys: {', '.join(allowed)}.")

    def date(self, table: dict, key: str) -> str:
        value = self.text(table, key)
        if not _is_date(value):
            raise self.invalid(key, f"must be a date written YYYY-MM-DD, got {value!r}.")
        return value

    def number(self, table: dict, key: str, prefix: str) -> float:
        value = self.require(table, key, prefix)
        if not is_finite_number(value) or value < 0:
            raise self.invalid(
                f"{prefix}{key}",
                f"must be a finite non-negative number, got {value!r}.",
            )
        return float(value)


def _is_date(value: str) -> bool:
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) is None:
        return False
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _reject_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"repeated key {repeated[0]!r}")
    return dict(pairs)


def _load_document(path: Path, benchmark: str) -> dict:
    try:
        document = json.loads(
            path.read_text(encoding="utf-8"), object_pairs_hook=_reject_duplicate_keys
        )
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise MtbenchError(
            f"Cannot read the step-cost file {path}: {error}. Rerun `{default_command(benchmark)}` to write it again."
        ) from error
    if not isinstance(document, dict):
        raise MtbenchError(
            f"Invalid step-cost file {path}: expected a JSON object, got {type(document).__name__}. "
            f"Rerun `{default_command(benchmark)}` to write it again."
        )
    return document


def _parse_configurations(
    document: dict, validator: _FileValidator
) -> dict[str, StepCost]:
    configurations = validator.require(document, "configurations")
    if not isinstance(configurations, dict):
        raise validator.invalid(
            "configurations",
            f"must be an object of config_ids to step costs, got {configurations!r}.",
        )

    parsed = {}
    for config_id, entry in configurations.items():
        if CONFIG_ID_PATTERN.fullmatch(config_id) is None:
            raise validator.invalid(
                f"configurations.{config_id}",
                "must be a config_id of 16 lower-case hex digits, as in the results file.",
            )
        prefix = f"configurations.{config_id}."
        if not isinstance(entry, dict):
            raise validator.invalid(
                f"configurations.{config_id}",
                f"must be an object with {', '.join(COST_FIELDS)}, got {entry!r}.",
            )
        validator.only_keys(entry, COST_FIELDS, prefix)
        parsed[config_id] = StepCost(
            **{field: validator.number(entry, field, prefix) for field in COST_FIELDS}
        )
    return parsed


def read_step_costs(leaderboard_dir: str | Path, benchmark: str) -> StepCosts | None:
    """Return the step costs of ``benchmark``, or None when it has no step-cost file.

    Raises MtbenchError naming the file, the key and the value when the file
    is invalid. Invalid are text that is not JSON, a repeated key, another
    schema version, a missing or mistyped key, and a negative or non-finite
    number. So are a key that schema 1 lacks, a ``measured_on`` that is not a
    YYYY-MM-DD date, a ``benchmark`` that differs from the file name, a key of
    ``configurations`` that is not a config_id, and a ``reference`` that is
    not a key of ``configurations``.
    """
    path = step_costs_path(leaderboard_dir, benchmark)
    if path.parent.exists() and not path.parent.is_dir():
        raise MtbenchError(f"{path.parent} is a file, where the folder of step-cost files should be. Remove or rename it.")
    if not path.exists() and not path.is_symlink():
        return None
    if not path.is_file():
        raise MtbenchError(
            f"The step-cost path {path} exists but is not a readable file (a folder, a broken link or a special file). "
            f"Remove it, or write it again with `{default_command(benchmark)}`."
        )
    document = _load_document(path, benchmark)
    # Errors name the default command, because the file's own "command" may be the invalid value or name another benchmark.
    validator = _FileValidator(path, default_command(benchmark))

    schema_version = validator.require(document, "schema_version")
    if type(schema_version) is not int or schema_version != SCHEMA_VERSION:
        raise validator.invalid(
            "schema_version",
            f"is {schema_version!r}, but this mtbench reads version {SCHEMA_VERSION} only.",
        )
    if validator.text(document, "benchmark") != benchmark:
        raise validator.invalid(
            "benchmark",
            f"is {document['benchmark']!r}, which does not match the file name {path.name}.",
        )
    validator.only_keys(document, TOP_LEVEL_KEYS)
    texts = {key: validator.text(document, key) for key in TEXT_FIELDS}
    validator.date(document, "measured_on")
    configurations = _parse_configurations(document, validator)
    reference = validator.text(document, "reference")
    if reference not in configurations:
        raise validator.invalid(
            "reference", f"is {reference!r}, which is not a key of 'configurations'."
        )

    return StepCosts(
        path=path,
        benchmark=benchmark,
        reference=reference,
        configurations=configurations,
        **texts,
    )


def reference_label(step_costs: StepCosts, records: Iterable[dict]) -> str:
    """Return the row label of the reference configuration, e.g. "No reg" or "Single task (left)".

    A reference that no finished record has is named by its short config_id.
    """
    record = next(
        (
            record
            for record in records
            if record["status"] == "finished"
            and record["config_id"] == step_costs.reference
        ),
        None,
    )
    if record is None:
        return f"config {step_costs.reference[:8]}"
    label = row_label(record["method"], record["method_config"], record["model_config"])
    return f"{label} ({record['tasks'][0]})" if is_single_task_run(record) else label
