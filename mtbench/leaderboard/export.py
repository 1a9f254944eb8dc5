"""CSV and JSON exports of a benchmark's leaderboard: one row per configuration and per published row.

Numbers are in display units (accuracies in percent, delta_m in percent,
seconds per training step, peak memory in MiB) and rounded to 8 significant
digits, so the files change only when the results do. With a step-cost file
(see :mod:`step_costs`) each configuration also gets its benchmark-measured
``step_cost_ratio_cpu`` and ``step_cost_gflop_per_step``. Published rows carry
``source = "published"`` and the numbers as printed. A printed column that
compares with an mtbench metric fills that metric's cells. A printed column
that matches no metric fills ``published_<key>``, and ``published_<key>_std``
when some row prints a standard deviation of it.
"""

import csv
import io
import json

from mtbench.leaderboard.aggregate import COSINE_STATISTICS, Row, Variant
from mtbench.leaderboard.comparison import RowComparison
from mtbench.leaderboard.delta_m import DELTA_M_FORMULA, DELTA_M_METRIC_AVERAGED_FORMULA
from mtbench.leaderboard.formatting import display_scale, round_significant
from mtbench.leaderboard.published import STD_SUFFIX, PublishedRow, PublishedTable
from mtbench.leaderboard.report import BenchmarkReport
from mtbench.leaderboard.seed_statistics import Statistic
from mtbench.leaderboard.step_costs import STEP_COSTS_FOLDER, StepCosts, reference_label

UNITS = "accuracies and delta_m in percent, seconds_per_step in seconds per training step, peak_memory_mb in MiB"
STEP_COST_COLUMNS = ["step_cost_ratio_cpu", "step_cost_gflop_per_step"]
STEP_COST_DEFINITION = (
    "step_cost_ratio_cpu is the CPU time of one training step divided by that of the reference configuration, timed "
    "interleaved in one process; step_cost_gflop_per_step counts the floating-point operations of matrix products and "
    "convolutions in one step, forward and backward, in 1e9; a joined single-task row sums both over its task models"
)


def _metric_order(report: BenchmarkReport) -> list[str]:
    tasks = report.leaderboard.tasks
    names = {name for row in report.leaderboard.rows for name in row.test}
    if report.published is not None:
        names.update(metric for metric in report.published.metrics if metric not in COSINE_STATISTICS)

    def order(name: str) -> tuple:
        task_index = next((index for index, task in enumerate(tasks) if name.startswith(f"{task}_")), len(tasks))
        return (name != report.leaderboard.selection_metric, task_index, name)

    return sorted(names, key=order)


def columns(report: BenchmarkReport) -> list[str]:
    """Return the column names, in order."""
    names = ["source", "label", "method", "variant", "config_id", "selected", "seeds", "seed_count"]
    for metric in _metric_order(report):
        names += [f"test_{metric}_mean", f"test_{metric}_std", f"test_{metric}_ci95"]
    published = report.published
    for column in published.unmapped_columns if published is not None else []:
        names.append(f"published_{column.key}")
        if any(column.key + STD_SUFFIX in row.values for row in published.rows):
            names.append(f"published_{column.key}{STD_SUFFIX}")
    selection = report.leaderboard.selection_metric
    names += [f"validation_{selection}_mean", f"validation_{selection}_std"]
    names += ["delta_m_mean", "delta_m_std", "delta_m_ci95", "delta_m_metric_averaged_mean", "delta_m_metric_averaged_std"]
    names += [f"rank_{metric}" for metric in report.comparison.ranked_metrics] + ["mean_rank"]
    for statistic in COSINE_STATISTICS:
        names += [f"{statistic}_mean", f"{statistic}_std"]
    names += ["seconds_per_step_mean", "peak_memory_mb_mean"]
    return names + (STEP_COST_COLUMNS if report.step_costs is not None else [])


def _statistic_cells(prefix: str, statistic: Statistic | None, scale: float = 1.0, with_ci: bool = True) -> dict:
    statistic = statistic or Statistic(None, None, 0)

    def scaled(value: float | None) -> float | None:
        return None if value is None else round_significant(value * scale)

    cells = {f"{prefix}_mean": scaled(statistic.mean), f"{prefix}_std": scaled(statistic.std)}
    if with_ci:
        cells[f"{prefix}_ci95"] = scaled(statistic.ci95)
    return cells


def _step_cost_cells(row: Row, step_costs: StepCosts | None) -> dict:
    cost = step_costs.cost_of(row.config_id) if step_costs is not None else None
    if cost is None:
        return {}
    return {"step_cost_ratio_cpu": round_significant(cost.ratio_cpu), "step_cost_gflop_per_step": round_significant(cost.gflop_per_step)}


def _measured(row: Row, comparison: RowComparison, report: BenchmarkReport) -> dict:
    cells = {
        "source": "mtbench",
        "label": row.label,
        "method": row.method,
        "variant": row.variant.label,
        "config_id": row.config_id,
        "selected": row.selected,
        "seeds": list(row.seeds),
        "seed_count": row.count,
    }
    for metric in _metric_order(report):
        cells.update(_statistic_cells(f"test_{metric}", row.test.get(metric), display_scale(metric)))
    selection = report.leaderboard.selection_metric
    cells.update(_statistic_cells(f"validation_{selection}", row.validation.get(selection), display_scale(selection), with_ci=False))
    cells.update(_statistic_cells("delta_m", comparison.delta_m))
    cells.update(_statistic_cells("delta_m_metric_averaged", comparison.delta_m_metric_averaged, with_ci=False))
    cells.update({f"rank_{metric}": comparison.ranks.get(metric) for metric in report.comparison.ranked_metrics})
    cells["mean_rank"] = round_significant(comparison.mean_rank)
    for statistic in COSINE_STATISTICS:
        cells.update(_statistic_cells(statistic, row.cosine[statistic], with_ci=False))
    cells["seconds_per_step_mean"] = round_significant(row.seconds_per_step.mean)
    cells["peak_memory_mb_mean"] = round_significant(row.peak_memory_mb.mean)
    return cells | _step_cost_cells(row, report.step_costs)


def _published(table: PublishedTable, row: PublishedRow) -> dict:
    cells = {"source": "published", "label": row.label, "method": row.variant.method, "variant": row.variant.label, "seed_count": table.runs}
    for column in table.columns:
        mean, std = row.values.get(column.key), row.values.get(column.key + STD_SUFFIX)
        if column.metric is None:
            cells[f"published_{column.key}"], cells[f"published_{column.key}{STD_SUFFIX}"] = mean, std
            continue
        prefix = column.metric if column.metric in COSINE_STATISTICS else f"test_{column.metric}"
        cells[f"{prefix}_mean"], cells[f"{prefix}_std"] = mean, std
    return cells


def export_rows(report: BenchmarkReport) -> list[dict]:
    """Return every row as a dict of all columns (None where a row has no value), measured rows before published ones of each variant."""
    names = columns(report)
    published: dict[Variant, list[PublishedRow]] = {}
    for row in report.published.rows if report.published is not None else []:
        published.setdefault(row.variant, []).append(row)
    measured: dict[Variant, list[Row]] = {}
    for row in report.leaderboard.rows:
        measured.setdefault(row.variant, []).append(row)

    rows = []
    for variant in sorted(set(measured) | set(published), key=lambda variant: variant.sort_key):
        rows += [_measured(row, report.comparison.of(row), report) for row in measured.get(variant, [])]
        rows += [_published(report.published, row) for row in published.get(variant, [])]
    return [{name: row.get(name) for name in names} for row in rows]


def render_csv(report: BenchmarkReport) -> str:
    """Return the CSV text: a header line, then one line per row; empty cells for missing values, seeds separated by spaces."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = columns(report)
    writer.writerow(names)
    for row in export_rows(report):
        writer.writerow([_csv_cell(row[name]) for name in names])
    return buffer.getvalue()


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _step_cost_metadata(report: BenchmarkReport) -> dict:
    """Return where the step_cost_* columns come from, or an empty dict without a step-cost file."""
    step_costs = report.step_costs
    if step_costs is None:
        return {}
    return {
        "step_costs": {
            "file": f"{STEP_COSTS_FOLDER}/{step_costs.path.name}",
            "measured_on": step_costs.measured_on,
            "machine": step_costs.machine,
            "command": step_costs.command,
            "reference_config_id": step_costs.reference,
            "reference_label": reference_label(step_costs, report.records),
            "definition": STEP_COST_DEFINITION,
        }
    }


def render_json(report: BenchmarkReport) -> str:
    """Return the JSON document: the table's metadata and its rows."""
    baseline = report.comparison.baseline
    document = {
        "benchmark": report.benchmark,
        "selection_metric": report.leaderboard.selection_metric,
        "tasks": report.leaderboard.tasks,
        "units": UNITS,
        "delta_m": DELTA_M_FORMULA,
        "delta_m_metric_averaged": DELTA_M_METRIC_AVERAGED_FORMULA,
        "delta_m_task_metrics": report.comparison.task_metrics,
        "baseline_config_id": baseline.config_id if baseline is not None else None,
        "confidence_interval": "ci95 is the half-width of the 95% confidence interval of the mean over seeds, Student t with n - 1 degrees of freedom",
        **_step_cost_metadata(report),
        "columns": columns(report),
        "rows": export_rows(report),
    }
    return json.dumps(document, indent=2, sort_keys=False, ensure_ascii=False, allow_nan=False) + "\n"
