"""Benchmark-measured step costs: reading step_costs/<benchmark>.json, the table columns, exports and --check lines."""

import csv
import io
import json
from pathlib import Path

import pytest
from test_leaderboard_table import BENCHMARK, _single, make_record

from mtbench.cli.main import main
from mtbench.errors import MtbenchError
from mtbench.leaderboard import append_record, check_leaderboard, regenerate
from mtbench.leaderboard.export import render_csv, render_json
from mtbench.leaderboard.markdown import render_benchmark
from mtbench.leaderboard.report import build_report
from mtbench.leaderboard.step_costs import read_step_costs, reference_label

COMMAND = f"python benchmarks/leaderboard_step_cost.py --benchmark {BENCHMARK}"
MACHINE = "2-core AMD EPYC virtual machine, no GPU; torch 2.14.1, 1 thread(s), CPU"
RATIO_HEADER = "Step time × No reg (benchmark)"
GFLOP_HEADER = "GFLOP per step (benchmark)"


def _records() -> dict[str, list[dict]]:
    """Return two seeds each of the single-task models, equal weights ("No reg") and BatchNorm."""
    return {
        "left": [_single(seed, "left", 0.8) for seed in (0, 1)],
        "right": [_single(seed, "right", 0.7) for seed in (0, 1)],
        "equal": [
            make_record(seed, test={"left_accuracy": 0.88, "right_accuracy": 0.63})
            for seed in (0, 1)
        ],
        "batchnorm": [make_record(seed, batchnorm=True) for seed in (0, 1)],
    }


def _config_id(name: str) -> str:
    return _records()[name][0]["config_id"]


def _cost(ratio_cpu: float, gflop_per_step: float) -> dict:
    return {
        "ms_per_step": 30.4 * ratio_cpu,
        "ratio_cpu": ratio_cpu,
        "ratio_wall": ratio_cpu + 0.02,
        "gflop_per_step": gflop_per_step,
        "peak_tensor_mib": 17.3,
    }


def _document() -> dict:
    """Return a valid step-cost file: every configuration but BatchNorm, with equal weights as the reference."""
    return {
        "schema_version": 1,
        "benchmark": BENCHMARK,
        "measured_on": "2026-12-05",
        "machine": MACHINE,
        "command": COMMAND,
        "reference": _config_id("equal"),
        "configurations": {
            _config_id("left"): _cost(0.4, 0.31),
            _config_id("right"): _cost(0.45, 0.62),
            _config_id("equal"): _cost(1.0, 0.94),
        },
    }


def _write_document(folder: Path, document: object) -> Path:
    path = folder / "step_costs" / f"{BENCHMARK}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


@pytest.fixture
def leaderboard_dir(tmp_path: Path) -> Path:
    """A leaderboard folder with the records of ``_records`` and the step-cost file of ``_document``."""
    for records in _records().values():
        for record in records:
            append_record(tmp_path, record)
    _write_document(tmp_path, _document())
    return tmp_path


def _main_table(text: str) -> dict[str, dict[str, str]]:
    """Return the cells of the main markdown table: row label -> header -> cell."""
    lines = text.splitlines()
    start = next(
        index
        for index, line in enumerate(lines)
        if line.startswith("| Method | Source |")
    )
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, cells, strict=True))
    return rows


def test_table_shows_benchmark_columns(leaderboard_dir):
    table = _main_table(render_benchmark(build_report(leaderboard_dir, BENCHMARK)))

    assert table["No reg"][RATIO_HEADER] == "1.00"
    assert table["No reg"][GFLOP_HEADER] == "0.94"
    # The joined single-task row sums its task models: 0.4 + 0.45 and 0.31 + 0.62.
    assert table["Single task"][RATIO_HEADER] == "0.85"
    assert table["Single task"][GFLOP_HEADER] == "0.93"
    # BatchNorm has no entry in the file.
    assert table["BatchNorm"][RATIO_HEADER] == "-"
    assert table["BatchNorm"][GFLOP_HEADER] == "-"
    assert table["No reg (published)"][RATIO_HEADER] == "-"


def test_table_renames_training_log_columns(leaderboard_dir):
    table = _main_table(render_benchmark(build_report(leaderboard_dir, BENCHMARK)))

    assert table["No reg"]["Seconds per step (training log)"] == "0.01"
    assert table["Single task"]["Seconds per step (training log)"] == "0.02"
    assert table["No reg"]["Peak memory (MiB, training log)"] == "-"


def test_joined_row_with_missing_part_shows_dash(leaderboard_dir):
    document = _document()
    del document["configurations"][_config_id("right")]
    _write_document(leaderboard_dir, document)

    table = _main_table(render_benchmark(build_report(leaderboard_dir, BENCHMARK)))

    assert table["Single task"][RATIO_HEADER] == "-"
    assert table["Single task"][GFLOP_HEADER] == "-"
    assert table["No reg"][RATIO_HEADER] == "1.00"


def test_notes_name_machine_date_and_command(leaderboard_dir):
    text = render_benchmark(build_report(leaderboard_dir, BENCHMARK))

    (line,) = [
        line
        for line in text.splitlines()
        if line.startswith("- Step time and GFLOP per step (benchmark):")
    ]
    assert (
        f"from `step_costs/{BENCHMARK}.json`, written by `{COMMAND}` on 2026-12-05. Machine: {MACHINE}."
        in line
    )
    assert f"divided by that of No reg (config `{_config_id('equal')[:8]}`)" in line


def test_no_file_gives_no_benchmark_columns(leaderboard_dir):
    (leaderboard_dir / "step_costs" / f"{BENCHMARK}.json").unlink()

    report = build_report(leaderboard_dir, BENCHMARK)
    text = render_benchmark(report)

    assert report.step_costs is None
    assert "(benchmark)" not in text
    assert "Seconds per step (training log)" in _main_table(text)["No reg"]
    assert "step_cost" not in render_csv(report)
    assert "step_cost" not in render_json(report)


def test_csv_and_json_step_cost_fields(leaderboard_dir):
    report = build_report(leaderboard_dir, BENCHMARK)

    rows = {
        row["label"]: row
        for row in csv.DictReader(io.StringIO(render_csv(report)))
        if row["source"] == "mtbench"
    }
    document = json.loads(render_json(report))
    json_rows = {
        row["label"]: row for row in document["rows"] if row["source"] == "mtbench"
    }

    assert rows["No reg"]["step_cost_ratio_cpu"] == "1.0"
    assert rows["Single task"]["step_cost_ratio_cpu"] == "0.85"
    assert rows["Single task"]["step_cost_gflop_per_step"] == "0.93"
    assert rows["BatchNorm"]["step_cost_ratio_cpu"] == ""
    assert json_rows["Single task"]["step_cost_gflop_per_step"] == pytest.approx(0.93)
    assert json_rows["BatchNorm"]["step_cost_gflop_per_step"] is None
    assert document["columns"][-2:] == [
        "step_cost_ratio_cpu",
        "step_cost_gflop_per_step",
    ]
    metadata = document["step_costs"]
    assert metadata["file"] == f"step_costs/{BENCHMARK}.json"
    assert metadata["machine"] == MACHINE
    assert metadata["measured_on"] == "2026-12-05"
    assert metadata["command"] == COMMAND
    assert metadata["reference_config_id"] == _config_id("equal")
    assert metadata["reference_label"] == "No reg"


def test_regeneration_is_byte_identical(leaderboard_dir):
    regenerate(leaderboard_dir, BENCHMARK)
    names = [f"{BENCHMARK}.md", f"{BENCHMARK}.csv", f"{BENCHMARK}.json", "README.md"]
    first = {name: (leaderboard_dir / name).read_bytes() for name in names}

    regenerate(leaderboard_dir, BENCHMARK)

    assert {name: (leaderboard_dir / name).read_bytes() for name in names} == first


def test_reference_label_single_task_and_unknown(leaderboard_dir):
    records = [record for group in _records().values() for record in group]
    document = _document()
    document["reference"] = _config_id("left")
    document["configurations"]["0123456789abcdef"] = _cost(2.0, 1.0)
    _write_document(leaderboard_dir, document)

    step_costs = read_step_costs(leaderboard_dir, BENCHMARK)
    assert reference_label(step_costs, records) == "Single task (left)"

    document["reference"] = "0123456789abcdef"
    _write_document(leaderboard_dir, document)
    assert (
        reference_label(read_step_costs(leaderboard_dir, BENCHMARK), records)
        == "config 01234567"
    )


def test_read_missing_file_gives_none(tmp_path):
    assert read_step_costs(tmp_path, BENCHMARK) is None


def _with(path: list, value: object) -> dict:
    """Return the valid document with the value at ``path`` (keys from the top) replaced, or removed when ``value`` is ``...``."""
    document = _document()
    table = document
    for key in path[:-1]:
        table = table[key]
    if value is ...:
        del table[path[-1]]
    else:
        table[path[-1]] = value
    return document


INVALID_DOCUMENTS = {
    "schema version": (
        lambda: _with(["schema_version"], 2),
        "'schema_version' is 2, but this mtbench reads version 1 only.",
    ),
    "schema version true": (
        lambda: _with(["schema_version"], True),
        "'schema_version' is True",
    ),
    "other benchmark": (
        lambda: _with(["benchmark"], "nyuv2"),
        f"'benchmark' is 'nyuv2', which does not match the file name {BENCHMARK}.json.",
    ),
    "machine not a string": (
        lambda: _with(["machine"], 5),
        "'machine' must be a non-empty string, got 5.",
    ),
    "empty command": (
        lambda: _with(["command"], ""),
        "'command' must be a non-empty string, got ''.",
    ),
    "missing date": (lambda: _with(["measured_on"], ...), "'measured_on' is missing."),
    "configurations a list": (
        lambda: _with(["configurations"], []),
        "'configurations' must be an object of config_ids to step costs, got [].",
    ),
    "short config id": (
        lambda: _with(["configurations", "abc"], _cost(1.0, 1.0)),
        "'configurations.abc' must be a config_id of 16 lower-case hex digits",
    ),
    "entry a number": (
        lambda: _with(["configurations", _config_id("left")], 3.0),
        f"'configurations.{_config_id('left')}' must be an object",
    ),
    "negative ratio": (
        lambda: _with(["configurations", _config_id("left"), "ratio_cpu"], -0.5),
        f"'configurations.{_config_id('left')}.ratio_cpu' must be a finite non-negative number, got -0.5.",
    ),
    "infinite gflop": (
        lambda: _with(
            ["configurations", _config_id("left"), "gflop_per_step"], float("inf")
        ),
        f"'configurations.{_config_id('left')}.gflop_per_step' must be a finite non-negative number, got inf.",
    ),
    "not a number gflop": (
        lambda: _with(
            ["configurations", _config_id("left"), "gflop_per_step"], float("nan")
        ),
        f"'configurations.{_config_id('left')}.gflop_per_step' must be a finite non-negative number, got nan.",
    ),
    "ratio a string": (
        lambda: _with(["configurations", _config_id("left"), "ratio_cpu"], "0.4"),
        f"'configurations.{_config_id('left')}.ratio_cpu' must be a finite non-negative number, got '0.4'.",
    ),
    "ratio a boolean": (
        lambda: _with(["configurations", _config_id("left"), "ratio_wall"], True),
        f"'configurations.{_config_id('left')}.ratio_wall' must be a finite non-negative number, got True.",
    ),
    "missing peak memory": (
        lambda: _with(["configurations", _config_id("left"), "peak_tensor_mib"], ...),
        f"'configurations.{_config_id('left')}.peak_tensor_mib' is missing.",
    ),
    "reference not measured": (
        lambda: _with(["reference"], _config_id("batchnorm")),
        f"'reference' is '{_config_id('batchnorm')}', which is not a key of 'configurations'.",
    ),
    "missing reference": (lambda: _with(["reference"], ...), "'reference' is missing."),
    "top level a list": (lambda: [_document()], "expected a JSON object, got list."),
    "machine on two lines": (lambda: _with(["machine"], "cpu\n# heading"), "'machine' must be one line"),
    "misspelt top-level key": (
        lambda: _with(["mesured_on"], "2026-12-05"),
        "'mesured_on' is not a key of step-cost files. Keys: schema_version, benchmark, measured_on,",
    ),
    "extra key in an entry": (
        lambda: _with(["configurations", _config_id("left"), "ratio_gpu"], 0.5),
        f"'configurations.{_config_id('left')}.ratio_gpu' is not a key of step-cost files. Keys: ms_per_step,",
    ),
    "date in words": (lambda: _with(["measured_on"], "last Tuesday"), "'measured_on' must be a date written YYYY-MM-DD, got 'last Tuesday'."),
    "date without dashes": (lambda: _with(["measured_on"], "20261205"), "'measured_on' must be a date written YYYY-MM-DD, got '20261205'."),
    "integer too large for a float": (
        lambda: _with(["configurations", _config_id("left"), "ms_per_step"], 10**400),
        f"'configurations.{_config_id('left')}.ms_per_step' must be a finite non-negative number, got 1000",
    ),
    "unknown key with a line break": (
        lambda: _with(["machine\nname"], "cpu"),
        "'machine\\nname' is not a key of step-cost files.",
    ),
    "impossible date": (lambda: _with(["measured_on"], "2026-02-30"), "'measured_on' must be a date written YYYY-MM-DD, got '2026-02-30'."),
}


@pytest.mark.parametrize("case", sorted(INVALID_DOCUMENTS))
def test_invalid_file_raises(leaderboard_dir, case):
    make_document, expected = INVALID_DOCUMENTS[case]
    path = _write_document(leaderboard_dir, make_document())

    with pytest.raises(MtbenchError) as error:
        read_step_costs(leaderboard_dir, BENCHMARK)

    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"Invalid step-cost file {path}: ")
    assert expected in message
    assert message.endswith(f"Rerun `{COMMAND}` to write it again.")


def test_folder_in_place_of_file_raises(leaderboard_dir):
    path = leaderboard_dir / "step_costs" / f"{BENCHMARK}.json"
    path.unlink(missing_ok=True)
    path.mkdir(parents=True)

    with pytest.raises(MtbenchError, match="exists but is not a readable file"):
        read_step_costs(leaderboard_dir, BENCHMARK)


def test_file_in_place_of_folder_raises(tmp_path):
    (tmp_path / "step_costs").write_text("not a folder", encoding="utf-8")

    with pytest.raises(MtbenchError, match="is a file, where the folder of step-cost files should be"):
        read_step_costs(tmp_path, BENCHMARK)


def test_corrupt_file_raises(leaderboard_dir):
    path = leaderboard_dir / "step_costs" / f"{BENCHMARK}.json"
    path.write_text('{"schema_version": 1,', encoding="utf-8")

    with pytest.raises(MtbenchError) as error:
        read_step_costs(leaderboard_dir, BENCHMARK)

    assert str(error.value).startswith(f"Cannot read the step-cost file {path}: ")
    assert str(error.value).endswith(f"Rerun `{COMMAND}` to write it again.")


def test_repeated_config_id_raises(leaderboard_dir):
    path = leaderboard_dir / "step_costs" / f"{BENCHMARK}.json"
    entry = json.dumps(_cost(1.0, 1.0))
    text = json.dumps(_document())[:-2] + f', "{_config_id("equal")}": {entry}}}}}'
    path.write_text(text, encoding="utf-8")

    with pytest.raises(MtbenchError, match=f"repeated key '{_config_id('equal')}'"):
        read_step_costs(leaderboard_dir, BENCHMARK)


def test_check_reports_rows_without_entry(leaderboard_dir):
    document = _document()
    del document["configurations"][_config_id("right")]
    path = _write_document(leaderboard_dir, document)
    regenerate(leaderboard_dir, BENCHMARK)

    problems = check_leaderboard(leaderboard_dir, [BENCHMARK])

    rerun = f"Rerun `{COMMAND}`, then `mtbench leaderboard`, and commit the regenerated files."
    single = f"{_config_id('left')}+{_config_id('right')}"
    assert problems == [
        (
            f"{BENCHMARK}: Single task (config {single}) has no entry for task model config {_config_id('right')} in {path}, "
            f'so its benchmark step-cost columns show "-". {rerun}'
        ),
        f'{BENCHMARK}: BatchNorm (config {_config_id("batchnorm")}) has no entry in {path}, so its benchmark step-cost columns show "-". {rerun}',
    ]


def test_check_clean_when_every_row_has_entry(leaderboard_dir):
    document = _document()
    document["configurations"][_config_id("batchnorm")] = _cost(1.1, 1.2)
    _write_document(leaderboard_dir, document)
    regenerate(leaderboard_dir, BENCHMARK)

    assert check_leaderboard(leaderboard_dir, [BENCHMARK]) == []


def test_check_reports_entry_without_record(leaderboard_dir):
    document = _document()
    document["configurations"][_config_id("batchnorm")] = _cost(1.1, 1.2)
    unused = "0123456789abcdef"
    document["configurations"][unused] = _cost(2.0, 2.0)
    path = _write_document(leaderboard_dir, document)
    regenerate(leaderboard_dir, BENCHMARK)

    problems = check_leaderboard(leaderboard_dir, [BENCHMARK])

    assert problems == [
        f"{BENCHMARK}: {path} has an entry for config {unused}, which no record in results/{BENCHMARK}.jsonl has. "
        f"Rerun `{COMMAND}` to measure the recorded configurations only, and commit the file."
    ]


def test_check_reports_invalid_file_as_one_line(leaderboard_dir, capsys):
    regenerate(leaderboard_dir, BENCHMARK)
    path = _write_document(
        leaderboard_dir, _with(["configurations", _config_id("left"), "ratio_cpu"], -1)
    )

    problems = check_leaderboard(leaderboard_dir, [BENCHMARK])

    assert problems == [
        (
            f"Invalid step-cost file {path}: 'configurations.{_config_id('left')}.ratio_cpu' must be a finite non-negative number, "
            f"got -1. Rerun `{COMMAND}` to write it again."
        )
    ]
    assert (
        main(["leaderboard", "--check", "--leaderboard-dir", str(leaderboard_dir)]) == 1
    )
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"Invalid step-cost file {path}" in err


def test_check_reports_stale_outputs_with_step_costs(leaderboard_dir):
    regenerate(leaderboard_dir, BENCHMARK)
    document = _document()
    document["configurations"][_config_id("equal")]["gflop_per_step"] = 0.95
    _write_document(leaderboard_dir, document)

    problems = check_leaderboard(leaderboard_dir, [BENCHMARK])

    stale = [problem for problem in problems if "out of date" in problem]
    assert len(stale) == 3
    assert all(
        f"results/{BENCHMARK}.jsonl, published/{BENCHMARK}.toml and step_costs/{BENCHMARK}.json"
        in problem
        for problem in stale
    )
