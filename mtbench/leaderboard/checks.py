"""``mtbench leaderboard --check``: every problem of a leaderboard folder, one line each, with what to do about it.

Checked per benchmark:

- each line of the results file: valid JSON, schema version 1 with every key
  of the right type, the benchmark of its file, ids that match the
  configuration and seed, accuracies in [0, 1] (see :mod:`records` and
  :mod:`integrity`);
- across records: one protocol and one dataset checksum among finished runs,
  no run with conflicting finished records, cosines files that exist;
- complete seed sets: the configurations of one variant (the rows between
  which validation selects) have the same seeds, and every seed of a
  single-task setting has a run for every task;
- the single-task runs that delta_m needs for the seeds of every multi-task
  configuration;
- a known direction for every test metric, one selection metric, and one
  number of training epochs among finished runs;
- the published file, if any: its keys and types, its column metrics, and
  that its main metric is the table's selection metric;
- the step-cost file, if any: its keys and types, an entry for every
  configuration of the selected rows, and none for configurations without
  records;
- generated files (markdown, CSV, JSON, index, figures) that are missing or
  out of date with the records and published rows.
"""

import warnings
from collections import Counter
from pathlib import Path

from mtbench.errors import MtbenchError
from mtbench.leaderboard.aggregate import Leaderboard, Row, is_single_task_run, single_task_setting
from mtbench.leaderboard.commands import reproduce_command
from mtbench.leaderboard.outputs import render_index_for, render_text_outputs
from mtbench.leaderboard.published import published_path
from mtbench.leaderboard.records import RecordWarning, check_records, results_path
from mtbench.leaderboard.report import BenchmarkReport, build_report
from mtbench.leaderboard.step_costs import STEP_COSTS_FOLDER


def _seeds_text(seeds: list[int]) -> str:
    return ", ".join(str(seed) for seed in seeds)


def _identity(leaderboard: Leaderboard, row: Row) -> dict:
    return {
        "benchmark": leaderboard.benchmark,
        "method": row.method,
        "method_config": row.method_config,
        "tasks": row.tasks,
        "model_config": row.model_config,
        "train_config": row.train_config,
    }


def incomplete_seed_problems(leaderboard: Leaderboard) -> list[str]:
    """Return a problem for each multi-task configuration that lacks seeds other configurations of its variant have."""
    variants: dict = {}
    for row in leaderboard.rows:
        if row.method != "single":
            variants.setdefault(row.variant, []).append(row)

    problems = []
    for rows in variants.values():
        expected = sorted({seed for row in rows for seed in row.seeds})
        for row in rows:
            missing = sorted(set(expected) - set(row.seeds))
            if missing:
                problems.append(
                    f"{leaderboard.benchmark}: {row.label} (config {row.config_id}) has seeds {_seeds_text(row.seeds)}, but its variant "
                    f"{row.variant.label} has seeds {_seeds_text(expected)}, so validation selection would compare different seeds. "
                    f"Run the missing seeds: {reproduce_command(_identity(leaderboard, row), missing)}"
                )
    return problems


def incomplete_single_task_problems(leaderboard: Leaderboard, records: list[dict]) -> list[str]:
    """Return a problem for each seed of a single-task setting that lacks a finished run of some task."""
    groups: dict[str, list[dict]] = {}
    for record in records:
        if record["status"] == "finished" and is_single_task_run(record):
            groups.setdefault(single_task_setting(record), []).append(record)

    problems = []
    for group in groups.values():
        seeds = sorted({record["seed"] for record in group})
        present = {(record["tasks"][0], record["seed"]) for record in group}
        for task in leaderboard.tasks:
            missing = [seed for seed in seeds if (task, seed) not in present]
            if missing:
                problems.append(
                    f"{leaderboard.benchmark}: the single-task models of seeds {_seeds_text(missing)} lack task {task}, so those seeds "
                    f"are left out of the single-task row. Run them: {reproduce_command(group[0], missing, task)}"
                )
    return problems


def _plain_single_task_identity(leaderboard: Leaderboard, template: Row, task: str) -> dict:
    """Return the identity of a single-task model of ``task`` with ``template``'s settings, without batch norm or dropout."""
    model_config = dict(template.model_config)
    if "batchnorm" in model_config:
        model_config["batchnorm"] = False
    if "dropout" in model_config:
        model_config["dropout"] = 0.0
    return {**_identity(leaderboard, template), "method": "single", "method_config": {}, "tasks": [task], "model_config": model_config}


def missing_baseline_problems(report: BenchmarkReport) -> list[str]:
    """Return a problem for each task whose single-task runs lack seeds that multi-task configurations have."""
    leaderboard = report.leaderboard
    baseline = report.comparison.baseline
    problems = []
    for task, seeds in report.comparison.missing_baseline_runs.items():
        if baseline is not None:
            identity = {**_identity(leaderboard, baseline), "tasks": [task]}
        else:
            template = next(row for row in leaderboard.rows if row.method != "single")
            identity = _plain_single_task_identity(leaderboard, template, task)
        problems.append(
            f"{leaderboard.benchmark}: delta_m needs single-task runs (method single) of task {task} for seeds {_seeds_text(seeds)}, "
            f"which multi-task configurations use; their delta_m shows \"-\" until then. Run them: {reproduce_command(identity, seeds, task)}"
        )
    return problems


def metric_problems(report: BenchmarkReport) -> list[str]:
    """Return problems with metrics: unknown directions, and multi-task records that disagree on the selection metric."""
    benchmark = report.benchmark
    problems = [
        f"{benchmark}: test metric '{name}' has no known direction (higher or lower is better), so it is neither ranked nor used in delta_m. "
        "Add it to METRIC_DIRECTIONS in mtbench/metrics/dense.py or mtbench/leaderboard/directions.py."
        for name in report.comparison.unknown_directions
    ]
    selection_metrics = sorted({
        record["selection_metric"] for record in report.records if record["status"] == "finished" and len(record["tasks"]) > 1
    })
    if len(selection_metrics) > 1:
        problems.append(
            f"{benchmark}: multi-task runs were selected on different validation metrics ({', '.join(selection_metrics)}); the table uses "
            f"{report.leaderboard.selection_metric}. Rerun the others with the benchmark's current selection metric and delete their old lines."
        )
    return problems


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def training_length_problems(report: BenchmarkReport) -> list[str]:
    """Return a problem when finished runs of the benchmark train for different numbers of epochs.

    Rows of one table should share the training budget. Otherwise a variant
    may select a configuration only because it trained longer.
    """
    runs_per_length = Counter(
        record["train_config"].get("epochs") for record in report.records if record["status"] == "finished"
    )
    if len(runs_per_length) < 2:
        return []
    lengths = "; ".join(f"{_count(epochs, 'epoch')}: {_count(count, 'run')}" for epochs, count in sorted(runs_per_length.items()))
    return [
        f"{report.benchmark}: finished runs train for different numbers of epochs ({lengths}), so the table compares unequal "
        "training budgets. Rerun the odd ones with the others' --epochs and delete their old lines, or keep trial runs in another --leaderboard-dir."
    ]


def missing_step_cost_problems(report: BenchmarkReport) -> list[str]:
    """Return a problem for each selected row whose configuration, or one of whose task models, has no entry in the step-cost file."""
    step_costs = report.step_costs
    if step_costs is None:
        return []
    problems = []
    for row in report.leaderboard.selected_rows:
        missing = step_costs.missing_config_ids(row.config_id)
        if not missing:
            continue
        configs = "configs" if len(missing) > 1 else "config"
        parts = "" if missing == [row.config_id] else f" for task model {configs} {', '.join(missing)}"
        problems.append(
            f"{report.benchmark}: {row.label} (config {row.config_id}) has no entry{parts} in {step_costs.path}, so its benchmark "
            f"step-cost columns show \"-\". Rerun `{step_costs.command}`, then `mtbench leaderboard`, and commit the regenerated files."
        )
    return problems


def unused_step_cost_problems(report: BenchmarkReport) -> list[str]:
    """Return a problem for each entry of the step-cost file whose config_id no record of the benchmark has."""
    step_costs = report.step_costs
    if step_costs is None:
        return []
    recorded = {record["config_id"] for record in report.records}
    return [
        f"{report.benchmark}: {step_costs.path} has an entry for config {config_id}, which no record in results/{report.benchmark}.jsonl "
        f"has. Rerun `{step_costs.command}` to measure the recorded configurations only, and commit the file."
        for config_id in sorted(set(step_costs.configurations) - recorded)
    ]


def _input_files_text(report: BenchmarkReport) -> str:
    benchmark = report.benchmark
    inputs = [f"results/{benchmark}.jsonl", f"published/{benchmark}.toml"]
    if report.step_costs is not None:
        inputs.append(f"{STEP_COSTS_FOLDER}/{benchmark}.json")
    return ", ".join(inputs[:-1]) + " and " + inputs[-1]


def stale_output_problems(report: BenchmarkReport) -> list[str]:
    """Return a problem for each generated file of ``report`` that is missing or differs from what the records, published rows and step costs give."""
    problems = []
    folder = report.leaderboard_dir
    for name, text in render_text_outputs(report).items():
        path = folder / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            problems.append(
                f"{path} is missing or out of date with {_input_files_text(report)}. Run `mtbench leaderboard` and commit the regenerated files."
            )
    for figure in report.figures:
        path = folder / "figures" / figure.file_name
        if not path.is_file():
            problems.append(f"{path} is missing. Run `mtbench leaderboard` and commit the regenerated files.")
    return problems


def _benchmark_problems(folder: Path, benchmark: str) -> list[str]:
    published_only = not results_path(folder, benchmark).is_file() and published_path(folder, benchmark).is_file()
    problems = [] if published_only else check_records(folder, benchmark)
    try:
        with warnings.catch_warnings():
            # check_records already lists every skipped line.
            warnings.simplefilter("ignore", RecordWarning)
            report = build_report(folder, benchmark)
    except MtbenchError as error:
        return problems + [str(error)]

    problems += incomplete_seed_problems(report.leaderboard)
    problems += incomplete_single_task_problems(report.leaderboard, report.records)
    problems += missing_baseline_problems(report)
    problems += metric_problems(report)
    problems += training_length_problems(report)
    problems += missing_step_cost_problems(report)
    problems += unused_step_cost_problems(report)
    problems += stale_output_problems(report)
    return problems


def check_leaderboard(leaderboard_dir: str | Path, benchmarks: list[str]) -> list[str]:
    """Return every problem of ``benchmarks`` in ``leaderboard_dir`` and of its index, or an empty list.

    A benchmark with a published file but no results file is not a problem;
    one with neither is.
    """
    folder = Path(leaderboard_dir)
    if not folder.is_dir():
        return [f"Leaderboard folder {folder} not found. Pass the folder that contains results/."]

    problems = []
    for benchmark in benchmarks:
        try:
            problems += _benchmark_problems(folder, benchmark)
        except MtbenchError as error:
            problems.append(str(error))

    index = folder / "README.md"
    if not index.is_file() or index.read_text(encoding="utf-8") != render_index_for(folder):
        problems.append(f"{index} is missing or out of date. Run `mtbench leaderboard` and commit the regenerated files.")
    return problems
