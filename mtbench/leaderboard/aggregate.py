"""Leaderboard rows: runs grouped by configuration, summarised over seeds, selected on validation.

A row is one configuration (one ``config_id``) and its seeds. Single-task runs
(method "single", one task per run) are joined into one row per setting, so
that a seed counts only when every task has a run. Rows are grouped into
variants by method, batch normalisation and dropout. Within a variant the row
with the best mean validation selection metric is the selected one, so
hyper-parameters such as CosReg's lambda are chosen on validation and never on
test.
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mtbench.leaderboard.directions import METRIC_DIRECTIONS, metric_direction
from mtbench.leaderboard.seed_statistics import Statistic, summarize
from mtbench.metrics.classification import harmonic_mean
from mtbench.metrics.dense import MEAN_TASK_SCORE, TASK_SCORES
from mtbench.train.config import DEFAULT_PRECISION

__all__ = [
    "METRIC_DIRECTIONS",
    "Leaderboard",
    "Row",
    "Statistic",
    "Variant",
    "aggregate",
    "metric_direction",
    "row_label",
    "summarize",
]

SELECTION_METRIC = "harmonic_accuracy"
COSINE_STATISTICS = ("sigma_cos", "mu_cos", "first_epoch_sigma_cos")

METHOD_TITLES = {"equal": "No reg", "single": "Single task", "cosreg": "CosReg"}
METHOD_ORDER = ("single", "equal", "cosreg")


@dataclass(frozen=True)
class Variant:
    """A family of rows that differ only in hyper-parameters: method, batch normalisation, dropout > 0, precision.

    A bf16 configuration is a variant of its own, so that it never replaces
    the float32 row of the same method in the validation selection.
    """

    method: str
    batchnorm: bool
    dropout: bool
    precision: str = DEFAULT_PRECISION

    @property
    def label(self) -> str:
        """Return the name without hyper-parameters, e.g. "CosReg + BatchNorm", "Dropout" or "No reg + bf16"."""
        label = _compose_label(METHOD_TITLES.get(self.method, self.method), self.method, "Dropout" if self.dropout else None, self.batchnorm)
        return _with_precision(label, self.precision)

    @property
    def sort_key(self) -> tuple:
        """Order: single task, equal weights, CosReg, then other methods by name; plain before dropout before batch norm; fp32 first."""
        rank = METHOD_ORDER.index(self.method) if self.method in METHOD_ORDER else len(METHOD_ORDER)
        return (rank, self.method, self.batchnorm, self.dropout, self.precision != DEFAULT_PRECISION, self.precision)


def _compose_label(method_title: str, method: str, dropout_title: str | None, batchnorm: bool) -> str:
    # Equal weights with dropout or batch norm is named after the regulariser alone.
    parts = [] if method == "equal" and (dropout_title or batchnorm) else [method_title]
    if dropout_title:
        parts.append(dropout_title)
    if batchnorm:
        parts.append("BatchNorm")
    return " + ".join(parts)


def _precision(train_config: dict | None) -> str:
    """Return the precision of a record's ``train_config``, which leaves the default out."""
    return (train_config or {}).get("precision", DEFAULT_PRECISION)


def _with_precision(label: str, precision: str) -> str:
    return label if precision == DEFAULT_PRECISION else f"{label} + {precision}"


def _format_setting(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def _method_title(method: str, method_config: dict) -> str:
    """Return e.g. "CosReg (lambda=0.1, scheduled)": a true boolean shows its name, a false one nothing."""
    settings = []
    for key in sorted(method_config):
        value = method_config[key]
        if value is True:
            settings.append(key)
        elif value is not False:
            settings.append(f"{key}={_format_setting(value)}")

    title = METHOD_TITLES.get(method, method)
    return f"{title} ({', '.join(settings)})" if settings else title


def variant_of(method: str, model_config: dict, train_config: dict | None = None) -> Variant:
    """Return the variant of a configuration; a missing "batchnorm" or "dropout" counts as off, a missing "precision" as fp32."""
    dropout = float(model_config.get("dropout", 0.0) or 0.0) > 0
    return Variant(method, bool(model_config.get("batchnorm", False)), dropout, _precision(train_config))


def row_label(method: str, method_config: dict, model_config: dict, train_config: dict | None = None) -> str:
    """Return a readable name of a configuration, e.g. "CosReg (lambda=0.1) + BatchNorm" or "Dropout (p=0.5)".

    A precision other than fp32 in ``train_config`` is added, e.g. "No reg + bf16".
    """
    dropout = float(model_config.get("dropout", 0.0) or 0.0)
    dropout_title = f"Dropout (p={dropout:g})" if dropout > 0 else None
    batchnorm = bool(model_config.get("batchnorm", False))
    label = _compose_label(_method_title(method, method_config), method, dropout_title, batchnorm)
    return _with_precision(label, _precision(train_config))


@dataclass
class Row:
    """One configuration summarised over its seeds.

    ``config_id`` is the configuration hash of the runs; a joined single-task
    row joins the config_ids of its task runs with "+", in task order.
    ``seconds_per_step`` of a joined single-task row is, per seed, the sum over
    its task models, so that it compares with one step of a multi-task model.
    Its ``peak_memory_mb`` is, per seed, the maximum over its task models,
    because they were trained one at a time. ``per_seed_test`` contains the
    test metrics of each seed, which delta_m compares seed by seed.
    """

    config_id: str
    label: str
    variant: Variant
    method: str
    method_config: dict
    tasks: list[str]
    model: str
    model_config: dict
    train_config: dict
    seeds: list[int]
    run_ids: list[str]
    test: dict[str, Statistic]
    validation: dict[str, Statistic]
    cosine: dict[str, Statistic]
    seconds_per_step: Statistic
    protocols: list[str]
    dataset_checksums: list[str]
    peak_memory_mb: Statistic = field(default_factory=lambda: Statistic(None, None, 0))
    per_seed_test: dict[int, dict[str, float]] = field(default_factory=dict)
    selected: bool = False

    @property
    def count(self) -> int:
        """Return the number of seeds."""
        return len(self.seeds)


@dataclass
class Leaderboard:
    """All rows of one benchmark, in display order, and notes about runs left out."""

    benchmark: str
    selection_metric: str
    tasks: list[str]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)

    @property
    def selected_rows(self) -> list[Row]:
        """Return the selected row of each variant, in variant order."""
        return [row for row in self.rows if row.selected]


def _summarize_metrics(per_seed: Sequence[dict[str, float]]) -> dict[str, Statistic]:
    names = sorted({name for metrics in per_seed for name in metrics})
    return {name: summarize(metrics.get(name) for metrics in per_seed) for name in names}


def _configuration_row(records: list[dict]) -> Row:
    """Summarise the finished records of one config_id."""
    records = sorted(records, key=lambda record: record["seed"])
    first = records[0]
    return Row(
        config_id=first["config_id"],
        label=row_label(first["method"], first["method_config"], first["model_config"], first["train_config"]),
        variant=variant_of(first["method"], first["model_config"], first["train_config"]),
        method=first["method"],
        method_config=first["method_config"],
        tasks=list(first["tasks"]),
        model=first["model"],
        model_config=first["model_config"],
        train_config=first["train_config"],
        seeds=[record["seed"] for record in records],
        run_ids=[record["run_id"] for record in records],
        test=_summarize_metrics([record["test"] for record in records]),
        validation=_summarize_metrics([record["validation"] for record in records]),
        cosine={name: summarize(record[name] for record in records) for name in COSINE_STATISTICS},
        seconds_per_step=summarize(record["seconds_per_step"] for record in records),
        protocols=sorted({record["protocol"] for record in records}),
        dataset_checksums=sorted({record["dataset_checksum"] for record in records}),
        peak_memory_mb=summarize(record.get("peak_memory_mb") for record in records),
        per_seed_test={record["seed"]: dict(record["test"]) for record in records},
    )


def is_single_task_run(record: dict) -> bool:
    """Return whether ``record`` trains one single-task model (method "single")."""
    return record["method"] == "single" and len(record["tasks"]) == 1


def group_configurations(records: Iterable[dict]) -> list[Row]:
    """Return one row per config_id of the finished multi-task records, in first-seen order."""
    groups: dict[str, list[dict]] = {}
    for record in records:
        if record["status"] == "finished" and not is_single_task_run(record):
            groups.setdefault(record["config_id"], []).append(record)
    return [_configuration_row(group) for group in groups.values()]


def benchmark_tasks(records: Iterable[dict]) -> list[str]:
    """Return the tasks of the finished records: multi-task runs' order first, then the rest as first seen."""
    records = [record for record in records if record["status"] == "finished"]
    ordered = [record for record in records if len(record["tasks"]) > 1] + records
    tasks: list[str] = []
    for record in ordered:
        tasks.extend(task for task in record["tasks"] if task not in tasks)
    return tasks


def _dense_task_score(metrics: dict[str, float], task: str) -> float | None:
    """Return the [0, 1] score of a dense task that mean_task_score averages (mIoU, delta1 or within 22.5 degrees), or None."""
    scores = [metrics[f"{task}_{score}"] for score in TASK_SCORES.values() if f"{task}_{score}" in metrics]
    return scores[0] if len(scores) == 1 else None


def _join_metrics(task_records: dict[str, dict], tasks: list[str], split: str) -> dict[str, float]:
    """Merge each task's own metrics ("<task>_...") of one seed and add the metrics that combine tasks.

    These are the harmonic accuracy when every task has an accuracy, and the
    mean task score of the dense evaluator when every task has a dense score,
    as a multi-task run of the same tasks records them.
    """
    joined = {}
    for task in tasks:
        joined.update({name: value for name, value in task_records[task][split].items() if name.startswith(f"{task}_")})

    accuracies = [joined.get(f"{task}_accuracy") for task in tasks]
    if len(tasks) > 1 and all(accuracy is not None for accuracy in accuracies):
        joined["harmonic_accuracy"] = harmonic_mean(accuracies)
    scores = [_dense_task_score(joined, task) for task in tasks]
    if len(tasks) > 1 and all(score is not None for score in scores):
        joined[MEAN_TASK_SCORE] = sum(scores) / len(scores)
    return joined


def _joined_peak_memory(task_records: dict[str, dict], tasks: list[str]) -> float | None:
    peaks = [task_records[task].get("peak_memory_mb") for task in tasks]
    return None if any(peak is None for peak in peaks) else max(peaks)


def single_task_setting(record: dict) -> str:
    """Return a key shared by the single-task runs that join into one row: protocol, model and all settings."""
    setting = [record["protocol"], record["model"], record["model_config"], record["train_config"], record["method_config"]]
    return json.dumps(setting, sort_keys=True)


def _joined_row(records: list[dict], tasks: list[str]) -> tuple[Row | None, list[str]]:
    """Join the single-task runs of one setting; return the row (None without a complete seed) and notes."""
    by_seed: dict[int, dict[str, dict]] = {}
    for record in records:
        by_seed.setdefault(record["seed"], {})[record["tasks"][0]] = record

    first = records[0]
    label = row_label("single", first["method_config"], first["model_config"], first["train_config"])
    complete = {seed: runs for seed, runs in sorted(by_seed.items()) if all(task in runs for task in tasks)}
    notes = []
    for seed, runs in sorted(by_seed.items()):
        missing = [task for task in tasks if task not in runs]
        if missing:
            notes.append(f"{label}: seed {seed} has no single-task run for {', '.join(missing)}, so it is left out.")
    if not complete:
        notes.append(f"{label}: no seed has a single-task run for every task ({', '.join(tasks)}), so the configuration has no row.")
        return None, notes

    joined_records = [runs[task] for runs in complete.values() for task in tasks]
    config_ids = [next(runs[task]["config_id"] for runs in complete.values()) for task in tasks]
    row = Row(
        config_id="+".join(config_ids),
        label=label,
        variant=variant_of("single", first["model_config"], first["train_config"]),
        method="single",
        method_config=first["method_config"],
        tasks=list(tasks),
        model=first["model"],
        model_config=first["model_config"],
        train_config=first["train_config"],
        seeds=list(complete),
        run_ids=[record["run_id"] for record in joined_records],
        test=_summarize_metrics([_join_metrics(runs, tasks, "test") for runs in complete.values()]),
        validation=_summarize_metrics([_join_metrics(runs, tasks, "validation") for runs in complete.values()]),
        cosine={name: Statistic(None, None, 0) for name in COSINE_STATISTICS},
        seconds_per_step=summarize(sum(runs[task]["seconds_per_step"] for task in tasks) for runs in complete.values()),
        protocols=sorted({record["protocol"] for record in joined_records}),
        dataset_checksums=sorted({record["dataset_checksum"] for record in joined_records}),
        peak_memory_mb=summarize(_joined_peak_memory(runs, tasks) for runs in complete.values()),
        per_seed_test={seed: _join_metrics(runs, tasks, "test") for seed, runs in complete.items()},
    )
    return row, notes


def join_single_task_runs(records: Iterable[dict], tasks: list[str]) -> tuple[list[Row], list[str]]:
    """Join finished single-task runs into one row per setting (model, model_config, train_config, method_config).

    For each seed that has a run for every task in ``tasks``, the joined
    metrics are each task's own metrics plus the harmonic mean of the task
    accuracies (classification) or the mean task score (dense tasks),
    computed per seed before the mean and std over seeds. Seeds missing a task
    are left out and described in the returned notes.
    """
    groups: dict[str, list[dict]] = {}
    for record in records:
        if record["status"] == "finished" and is_single_task_run(record):
            groups.setdefault(single_task_setting(record), []).append(record)

    rows: list[Row] = []
    notes: list[str] = []
    for group in groups.values():
        row, group_notes = _joined_row(group, tasks)
        notes.extend(group_notes)
        if row is not None:
            rows.append(row)
    return rows, notes


def _selection_key(row: Row, metric: str) -> tuple:
    """Return a key whose minimum is the best row: best mean, then more seeds, then the smaller config_id."""
    mean = row.validation[metric].mean
    signed = -mean if metric_direction(metric) == "higher" else mean
    return (signed, -row.count, row.config_id)


def select_configurations(rows: list[Row], metric: str = SELECTION_METRIC) -> list[str]:
    """Mark the best row of each variant on the mean validation ``metric``; return notes.

    Ties go to the row with more seeds, then to the lexically smaller
    config_id. A row without the validation metric is never selected, and a
    variant without any such row gets a note instead of a selection.
    """
    variants: dict[Variant, list[Row]] = {}
    for row in rows:
        row.selected = False
        variants.setdefault(row.variant, []).append(row)

    notes = []
    for variant, members in sorted(variants.items(), key=lambda item: item[0].sort_key):
        candidates = [row for row in members if metric in row.validation and row.validation[metric].mean is not None]
        if not candidates:
            notes.append(f"{variant.label}: no configuration has the validation metric {metric}, so none is selected.")
            continue
        min(candidates, key=lambda row: _selection_key(row, metric)).selected = True
    return notes


def _display_key(row: Row, metric: str) -> tuple:
    if metric in row.validation and row.validation[metric].mean is not None:
        return (row.variant.sort_key, 0, _selection_key(row, metric))
    return (row.variant.sort_key, 1, (row.config_id,))


def table_selection_metric(records: Iterable[dict]) -> str:
    """Return the selection metric of the finished multi-task records, the most frequent one if they differ.

    Ties go to the alphabetically first name; without multi-task records it is SELECTION_METRIC.
    """
    counts: dict[str, int] = {}
    for record in records:
        if record["status"] == "finished" and len(record["tasks"]) > 1:
            counts[record["selection_metric"]] = counts.get(record["selection_metric"], 0) + 1
    if not counts:
        return SELECTION_METRIC
    return min(counts, key=lambda name: (-counts[name], name))


def aggregate(records: Iterable[dict], benchmark: str, selection_metric: str | None = None) -> Leaderboard:
    """Build the leaderboard of ``benchmark`` from its records (failed ones are counted and left out).

    ``selection_metric`` defaults to the one the multi-task records name (see
    :func:`table_selection_metric`). Rows are ordered by variant, then best
    validation ``selection_metric`` first.
    """
    records = list(records)
    selection_metric = selection_metric or table_selection_metric(records)
    tasks = benchmark_tasks(records)

    rows = group_configurations(records)
    single_rows, notes = join_single_task_runs(records, tasks)
    rows.extend(single_rows)
    notes.extend(select_configurations(rows, selection_metric))
    rows.sort(key=lambda row: _display_key(row, selection_metric))

    failed = sum(1 for record in records if record["status"] == "failed")
    if failed:
        notes.append(f"{failed} failed run{'s' if failed > 1 else ''} left out of the tables; the results file keeps their error messages.")
    return Leaderboard(benchmark, selection_metric, tasks, rows, notes)
