"""Run records: one JSON line per training run in ``<leaderboard_dir>/results/<benchmark>.jsonl``.

A record describes one run (one configuration and one seed) at schema version
1. Finished records carry validation and test metrics at the selected epoch.
Failed records stay in the file as a log and never enter a table.

Reading skips bad lines instead of raising. Each line that is not valid JSON,
is truncated or fails validation is skipped, and :func:`read_records` reports it as a
:class:`RecordWarning` through :func:`warnings.warn`, naming the file and the
line number. :func:`check_records` returns the same problems as strings,
together with problems that span several records.
"""

import json
import math
import re
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from mtbench.leaderboard.integrity import conflicting_duplicates, record_problem
from mtbench.errors import MtbenchError
from mtbench.io import append_json_line

SCHEMA_VERSION = 1
STATUSES = ("finished", "failed")


class RecordWarning(UserWarning):
    """A line of a results file that was skipped because it is not a valid record."""


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: object) -> bool:
    """Return whether ``value`` is an int or float, not a bool, that converts to a finite float."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _is_string_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_utc_timestamp(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        # datetime.fromisoformat accepts a trailing "Z" only from Python 3.11 on.
        timestamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return timestamp.utcoffset() == timedelta(0)


def _optional(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda value: value is None or check(value)


# Each key maps to (check, expected type in words). Identity keys describe the
# run and are required in every record, failed ones included.
IDENTITY_FIELDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "schema_version": (_is_integer, "an integer"),
    "status": (lambda value: value in STATUSES, "'finished' or 'failed'"),
    "failure": (_optional(lambda value: isinstance(value, str)), "null or a string"),
    "run_id": (lambda value: isinstance(value, str) and value != "", "a non-empty string"),
    "config_id": (lambda value: isinstance(value, str) and value != "", "a non-empty string"),
    "benchmark": (lambda value: isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_-]+", value) is not None, "a name of letters, digits, '-' or '_'"),
    "protocol": (lambda value: isinstance(value, str) and value != "", "a non-empty string"),
    "method": (lambda value: isinstance(value, str) and value != "", "a non-empty string"),
    "method_config": (lambda value: isinstance(value, dict), "an object"),
    "tasks": (lambda value: _is_string_list(value) and len(value) > 0 and len(set(value)) == len(value), "a non-empty list of distinct task names"),
    "model": (lambda value: isinstance(value, str) and value != "", "a non-empty string"),
    "model_config": (lambda value: isinstance(value, dict), "an object"),
    "train_config": (lambda value: isinstance(value, dict), "an object"),
    "seed": (_is_integer, "an integer"),
    "mtbench_version": (lambda value: isinstance(value, str), "a string"),
    "torch_version": (lambda value: isinstance(value, str), "a string"),
    "git_commit": (_optional(lambda value: isinstance(value, str)), "null or a string"),
    "created_at": (_is_utc_timestamp, "an ISO 8601 timestamp in UTC, e.g. '2024-05-01T12:00:00+00:00'"),
}

# Result keys are required in finished records. A failed record may omit them
# or set them to null, because the run may have stopped before producing them.
RESULT_FIELDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "dataset_checksum": (lambda value: isinstance(value, str) and value != "", "a non-empty string"),
    "selection_metric": (lambda value: isinstance(value, str) and value != "", "a non-empty string"),
    "selected_epoch": (_is_integer, "an integer"),
    "validation": (lambda value: isinstance(value, dict), "an object of metric names to numbers"),
    "test": (lambda value: isinstance(value, dict), "an object of metric names to numbers"),
    "history": (lambda value: isinstance(value, list) and all(isinstance(item, dict) for item in value), "a list of objects"),
    "mu_cos": (_optional(is_finite_number), "null or a number"),
    "sigma_cos": (_optional(is_finite_number), "null or a number"),
    "first_epoch_sigma_cos": (_optional(is_finite_number), "null or a number"),
    "cosines_file": (_optional(lambda value: isinstance(value, str)), "null or a string"),
    "seconds_per_step": (is_finite_number, "a number"),
    "peak_memory_mb": (_optional(is_finite_number), "null or a number"),
    "wall_seconds": (is_finite_number, "a number"),
    "device": (lambda value: isinstance(value, str), "a string"),
}


def _is_runtime(value: object) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == {"channels_last", "compile_backend"}
        and isinstance(value["channels_last"], bool)
        and (value["compile_backend"] is None or isinstance(value["compile_backend"], str))
    )


# Optional keys, checked when present. Records written before mtbench stored them lack them.
OPTIONAL_FIELDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "runtime": (_is_runtime, "an object with channels_last (true or false) and compile_backend (null or a backend name)"),
}


def _record_error(record: dict, key: str, message: str) -> MtbenchError:
    run_id = record.get("run_id") if isinstance(record.get("run_id"), str) else "?"
    return MtbenchError(f"Invalid run record (run_id {run_id}): key '{key}' {message}")


def _validate_fields(record: dict, fields: dict[str, tuple[Callable[[object], bool], str]], required: bool) -> None:
    for key, (check, expected) in fields.items():
        if key not in record:
            if required:
                raise _record_error(record, key, f"is missing. It must be {expected}.")
            continue

        value = record[key]
        if value is None and not required:
            continue
        if not check(value):
            raise _record_error(record, key, f"must be {expected}, got {value!r}.")


def _validate_metrics(record: dict, key: str) -> None:
    metrics = record[key]
    if not metrics:
        raise _record_error(record, key, "is empty, but a finished run needs at least one metric.")

    for name, value in metrics.items():
        if not is_finite_number(value):
            raise _record_error(record, f"{key}.{name}", f"must be a finite number, got {value!r}.")


def _validate_finished(record: dict) -> None:
    if record["failure"] is not None:
        raise _record_error(record, "failure", f"must be null in a finished record, got {record['failure']!r}.")

    for key in ("validation", "test"):
        _validate_metrics(record, key)

    selection_metric = record["selection_metric"]
    if selection_metric not in record["validation"]:
        raise _record_error(record, "selection_metric", f"names '{selection_metric}', which is not in 'validation'.")

    for name in sorted(set(record["validation"]) ^ set(record["test"])):
        side = "test" if name in record["validation"] else "validation"
        raise _record_error(record, f"{side}.{name}", "is missing, but 'validation' and 'test' must have the same metric names.")

    epochs = record["train_config"].get("epochs")
    if not _is_integer(epochs) or epochs < 1:
        raise _record_error(record, "train_config.epochs", f"must be a whole number of epochs >= 1 in a finished record, got {epochs!r}.")
    if not 1 <= record["selected_epoch"] <= epochs:
        raise _record_error(record, "selected_epoch", f"must be an epoch from 1 to train_config.epochs ({epochs}), got {record['selected_epoch']}.")


def _find_unstorable_value(value: object, path: str) -> str | None:
    """Return the dotted path of the first value that strict JSON cannot store, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}.{key}"
            found = _find_unstorable_value(item, f"{path}.{key}")
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _find_unstorable_value(item, f"{path}[{index}]")
            if found is not None:
                return found
    elif not (value is None or isinstance(value, (str, int, float))):
        return path
    return None


def _validate_json_values(record: dict) -> None:
    for key, value in record.items():
        found = _find_unstorable_value(value, key)
        if found is not None:
            raise _record_error(record, found, "must be a JSON value with finite numbers (no NaN, infinity or other Python objects).")


def validate_record(record: object) -> None:
    """Check ``record`` against the schema of version 1.

    Raises MtbenchError naming the first invalid key. Invalid are a missing
    key, a value of the wrong type, a NaN or infinity anywhere, and an unknown
    schema version or status. So are a finished record with a failure message,
    with mismatched metrics or with a selected epoch outside its training, a
    failed record without a failure message, and a "single" run that trains
    more than one task.
    """
    if not isinstance(record, dict):
        raise MtbenchError(f"Invalid run record: expected a JSON object, got {type(record).__name__}.")

    # The version comes first because another version may have other keys.
    schema_version = record.get("schema_version")
    if schema_version != SCHEMA_VERSION:
        raise _record_error(
            record, "schema_version", f"is {schema_version!r}, but this mtbench reads version {SCHEMA_VERSION} only. Upgrade mtbench."
        )

    _validate_fields(record, IDENTITY_FIELDS, required=True)
    if record["method"] == "single" and len(record["tasks"]) != 1:
        raise _record_error(record, "tasks", f"must name exactly one task for method 'single', got {record['tasks']!r}.")

    _validate_json_values(record)

    _validate_fields(record, OPTIONAL_FIELDS, required=False)
    finished = record["status"] == "finished"
    _validate_fields(record, RESULT_FIELDS, required=finished)
    if finished:
        _validate_finished(record)
    elif not record["failure"]:
        raise _record_error(record, "failure", "must describe the error of a failed run, got an empty value.")


def results_path(leaderboard_dir: str | Path, benchmark: str) -> Path:
    """Return the path of the results file of ``benchmark``."""
    return Path(leaderboard_dir) / "results" / f"{benchmark}.jsonl"


def append_record(leaderboard_dir: str | Path, record: dict) -> None:
    """Validate ``record`` and append it to the results file of its benchmark.

    Raises MtbenchError naming the invalid key, and then writes nothing. The
    append is atomic per line, so concurrent runs may share one file.
    """
    validate_record(record)
    append_json_line(results_path(leaderboard_dir, record["benchmark"]), record)


class _InvalidJsonLine(ValueError):
    pass


def _parse_line(raw_line: bytes, benchmark: str) -> dict:
    """Decode and validate one line; raise ValueError with the reason on failure."""
    try:
        record = json.loads(raw_line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _InvalidJsonLine(f"not valid JSON ({error})") from error

    try:
        validate_record(record)
    except MtbenchError as error:
        raise ValueError(str(error)) from error

    if record["benchmark"] != benchmark:
        raise ValueError(f"record of benchmark '{record['benchmark']}' in the results file of '{benchmark}'")
    problem = record_problem(record)
    if problem is not None:
        raise ValueError(problem)
    return record


def _parse_results_file(path: Path, benchmark: str) -> tuple[list[dict], list[str]]:
    """Return the valid records of ``path`` in file order and one problem string per skipped line."""
    if not path.is_file():
        return [], []
    try:
        data = path.read_bytes()
    except OSError as error:
        raise MtbenchError(f"Cannot read the results file {path}: {error.strerror}. Check the file's permissions.") from error

    records: list[dict] = []
    problems: list[str] = []
    lines = data.split(b"\n")
    for index, raw_line in enumerate(lines):
        if not raw_line.strip():
            continue

        line_number = index + 1
        try:
            records.append(_parse_line(raw_line, benchmark))
        except ValueError as error:
            # Every complete line ends with a newline, so a last line without one
            # comes from a writer that was killed in the middle of a write.
            truncated = index == len(lines) - 1 and isinstance(error, _InvalidJsonLine)
            if truncated:
                problems.append(f"{path}:{line_number}: skipped: truncated last line (a writer stopped mid-write). Delete the line and run that run again.")
            else:
                problems.append(f"{path}:{line_number}: skipped: {str(error).rstrip('.')}. Records are written by `mtbench run`: delete the line and run that run again.")
    return records, problems


def _keep_last_per_run(records: list[dict]) -> list[dict]:
    """Keep one record per run_id: the last finished one, else the last one."""
    chosen: dict[str, int] = {}
    for index, record in enumerate(records):
        previous = chosen.get(record["run_id"])
        if previous is None or record["status"] == "finished" or records[previous]["status"] != "finished":
            chosen[record["run_id"]] = index
    return [records[index] for index in sorted(chosen.values())]


def read_records(leaderboard_dir: str | Path, benchmark: str) -> list[dict]:
    """Return the valid records of ``benchmark``, one per run_id, in file order.

    Finished and failed records are both returned. When a run_id appears on
    several lines, the last finished record wins, or the last failed one if the
    run never finished. Each skipped line triggers a :class:`RecordWarning`
    naming the file and line number. A missing results file gives an empty list.
    """
    records, problems = _parse_results_file(results_path(leaderboard_dir, benchmark), benchmark)
    for problem in problems:
        warnings.warn(problem, RecordWarning, stacklevel=2)
    return _keep_last_per_run(records)


def finished_runs(leaderboard_dir: str | Path, benchmark: str) -> set[tuple[str, int]]:
    """Return the (config_id, seed) pairs of the valid finished records of ``benchmark``; skip invalid lines silently."""
    records, _ = _parse_results_file(results_path(leaderboard_dir, benchmark), benchmark)
    return {(record["config_id"], record["seed"]) for record in records if record["status"] == "finished"}


def known_result_benchmarks(leaderboard_dir: str | Path) -> list[str]:
    """Return the sorted names of the benchmarks that have a results file."""
    folder = Path(leaderboard_dir) / "results"
    if not folder.is_dir():
        return []
    return sorted(path.stem for path in folder.glob("*.jsonl"))


def mixed_values_problem(records: list[dict], key: str, benchmark: str) -> str | None:
    """Return the problem when ``records`` carry more than one value of ``key`` (such as the protocol), else None."""
    counts: dict[str, int] = {}
    for record in records:
        counts[record[key]] = counts.get(record[key], 0) + 1
    if len(counts) < 2:
        return None

    listing = ", ".join(f"{value} ({count} run{'s' if count > 1 else ''})" for value, count in sorted(counts.items()))
    return (
        f"{benchmark}: finished runs mix several values of {key}: {listing}. Their results are not comparable, and a table has one "
        f"{key}: rerun the odd ones out with the current benchmark data and mtbench, then delete their old lines."
    )


def _missing_cosines_problems(leaderboard_dir: Path, records: list[dict], benchmark: str) -> list[str]:
    problems = []
    for record in records:
        cosines_file = record.get("cosines_file")
        if cosines_file and not (leaderboard_dir / cosines_file).is_file():
            problems.append(
                f"{benchmark}: run {record['run_id']} names the cosines file {cosines_file}, which does not exist in {leaderboard_dir}. "
                "Commit the file that `mtbench run` wrote beside the results, or run that run again."
            )
    return problems


def check_records(leaderboard_dir: str | Path, benchmark: str | None = None) -> list[str]:
    """Return the problems of the results files, or an empty list if there are none.

    Checks ``benchmark``, or every benchmark with a results file when it is
    None. Problems are skipped lines (invalid JSON, truncated, invalid record,
    unknown schema version, wrong benchmark), finished runs of one benchmark
    that mix protocols or dataset checksums, and cosines files that are named
    but missing.
    """
    leaderboard_dir = Path(leaderboard_dir)
    if not leaderboard_dir.is_dir():
        return [f"Leaderboard folder {leaderboard_dir} not found. Pass the folder that contains results/."]
    benchmarks = [benchmark] if benchmark is not None else known_result_benchmarks(leaderboard_dir)

    problems: list[str] = []
    for name in benchmarks:
        path = results_path(leaderboard_dir, name)
        if not path.is_file():
            problems.append(f"{path}: results file not found (or not a file) for benchmark '{name}'.")
            continue
        records, line_problems = _parse_results_file(path, name)
        problems.extend(line_problems)
        problems.extend(conflicting_duplicates(records, name))

        finished = [record for record in _keep_last_per_run(records) if record["status"] == "finished"]
        for key in ("protocol", "dataset_checksum"):
            problem = mixed_values_problem(finished, key, name)
            if problem is not None:
                problems.append(problem)
        problems.extend(_missing_cosines_problems(leaderboard_dir, finished, name))
    return problems
