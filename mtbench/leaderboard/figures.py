"""Figures of a benchmark's leaderboard, as PNG bytes: gradient cosines and sigma_cos.

Three figures, each drawn only when the records hold its data:

- ``cosine_distribution``: violins of the per-step cosines between task
  gradients (all task pairs, all seeds) of each selected multi-task row, read
  from the runs' ``cosines_file``;
- ``sigma_cos_per_epoch``: sigma_cos of every epoch, mean over seeds, of each
  selected multi-task row, from the runs' ``history``;
- ``first_epoch_sigma_cos``: first-epoch sigma_cos against the validation
  selection metric at the selected epoch, one point per finished multi-task
  run, with the Pearson correlation coefficient in the title.

Rendering uses the Agg canvas directly with matplotlib's default style and
no PNG "Software" entry, so the same input gives the same bytes with the same
matplotlib version.
"""

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtbench.leaderboard.aggregate import Leaderboard, Row
from mtbench.leaderboard.formatting import display_scale, metric_header

FIGURE_SIZE = (10.0, 4.5)
DOTS_PER_INCH = 100
# Width per violin, so that 30 configurations keep readable labels.
INCHES_PER_VIOLIN = 0.45
# Matplotlib's default cycle has 10 colours; markers tell apart the labels that share one.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
COLOURS_PER_CYCLE = 10
FIGURE_NAMES = ("cosine_distribution", "sigma_cos_per_epoch", "first_epoch_sigma_cos")


def figure_file_name(benchmark: str, name: str) -> str:
    """Return the PNG file name of figure ``name`` of ``benchmark``."""
    return f"{benchmark}_{name}.png"


@dataclass(frozen=True)
class Figure:
    """One figure of a benchmark: its file name under ``figures/``, alt text and caption."""

    name: str
    file_name: str
    alt: str
    caption: str


def _multi_task_selected(leaderboard: Leaderboard) -> list[Row]:
    return [row for row in leaderboard.selected_rows if len(row.tasks) > 1]


def _records_of(row: Row, records_by_run: dict[str, dict]) -> list[dict]:
    return [records_by_run[run_id] for run_id in row.run_ids if run_id in records_by_run]


def _cosine_samples(row: Row, records_by_run: dict[str, dict], leaderboard_dir: Path) -> np.ndarray:
    """Return every stored per-step cosine of ``row``'s runs as one flat array; missing files are skipped."""
    arrays = []
    for record in _records_of(row, records_by_run):
        path = leaderboard_dir / record["cosines_file"] if record.get("cosines_file") else None
        if path is not None and path.is_file():
            arrays.append(np.load(path, allow_pickle=False).astype(np.float64).ravel())
    return np.concatenate(arrays) if arrays else np.zeros(0)


def _sigma_cos_curve(row: Row, records_by_run: dict[str, dict]) -> tuple[list[int], list[float]]:
    """Return the epochs and the mean over seeds of each epoch's sigma_cos, for epochs where a seed has one."""
    by_epoch: dict[int, list[float]] = {}
    for record in _records_of(row, records_by_run):
        for entry in record.get("history", []):
            if isinstance(entry.get("epoch"), int) and isinstance(entry.get("sigma_cos"), (int, float)):
                by_epoch.setdefault(entry["epoch"], []).append(float(entry["sigma_cos"]))
    epochs = sorted(by_epoch)
    return epochs, [float(np.mean(by_epoch[epoch])) for epoch in epochs]


def _scatter_points(records: list[dict], selection_metric: str) -> list[tuple[str, float, float]]:
    points = []
    for record in records:
        if record["status"] != "finished" or len(record["tasks"]) < 2:
            continue
        sigma = record.get("first_epoch_sigma_cos")
        score = record["validation"].get(selection_metric)
        if sigma is not None and score is not None:
            points.append((record["run_id"], float(sigma), float(score)))
    return sorted(points)


def pearson_correlation(x: list[float], y: list[float]) -> float | None:
    """Return Pearson's r of two equally long sequences; None for fewer than 3 points or a constant sequence."""
    if len(x) < 3:
        return None
    x_array, y_array = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    x_centred, y_centred = x_array - x_array.mean(), y_array - y_array.mean()
    denominator = math.sqrt(float((x_centred**2).sum()) * float((y_centred**2).sum()))
    if denominator == 0.0:
        return None
    return float((x_centred * y_centred).sum()) / denominator


class FigureData:
    """Data of the figures of one leaderboard, read once from the records and cosines files."""

    def __init__(self, leaderboard: Leaderboard, records: list[dict], leaderboard_dir: Path) -> None:
        records_by_run = {record["run_id"]: record for record in records}
        rows = _multi_task_selected(leaderboard)
        self.benchmark = leaderboard.benchmark
        self.selection_metric = leaderboard.selection_metric
        self.cosines = [(row.label, samples) for row in rows if (samples := _cosine_samples(row, records_by_run, leaderboard_dir)).size]
        self.curves = [(row.label, *curve) for row in rows if (curve := _sigma_cos_curve(row, records_by_run))[0]]
        labels = {run_id: row.label for row in leaderboard.rows for run_id in row.run_ids}
        self.points = [(labels.get(run_id, "other"), sigma, score) for run_id, sigma, score in _scatter_points(records, leaderboard.selection_metric)]

    def figures(self) -> list[Figure]:
        """Return the figures that have data, in page order."""
        benchmark = self.benchmark
        figures = []
        if self.cosines:
            figures.append(Figure(
                "cosine_distribution", figure_file_name(benchmark, "cosine_distribution"), "Distribution of gradient cosines per method",
                "Distribution of the cosine between task gradients at the last shared layer over all training steps, "
                "task pairs and seeds of each selected configuration (line: median).",
            ))
        if self.curves:
            figures.append(Figure(
                "sigma_cos_per_epoch", figure_file_name(benchmark, "sigma_cos_per_epoch"), "sigma_cos per epoch per method",
                "σ_cos of each epoch, mean over seeds, for each selected configuration.",
            ))
        if self.points:
            figures.append(Figure(
                "first_epoch_sigma_cos", figure_file_name(benchmark, "first_epoch_sigma_cos"), "First-epoch sigma_cos against validation score",
                f"First-epoch σ_cos against the validation {self.selection_metric} of the selected epoch, one point per "
                "finished multi-task run of any configuration; the title gives Pearson's r over all points.",
            ))
        return figures

    def render(self, figure: Figure) -> bytes:
        """Return the PNG bytes of ``figure``."""
        draw: Callable = {
            "cosine_distribution": self._draw_cosines,
            "sigma_cos_per_epoch": self._draw_curves,
            "first_epoch_sigma_cos": self._draw_scatter,
        }[figure.name]
        width = max(FIGURE_SIZE[0], INCHES_PER_VIOLIN * len(self.cosines)) if figure.name == "cosine_distribution" else FIGURE_SIZE[0]
        return _render(draw, (width, FIGURE_SIZE[1]))

    def _draw_cosines(self, axes) -> None:
        labels = [label for label, _ in self.cosines]
        axes.violinplot([samples for _, samples in self.cosines], showmedians=True, showextrema=False)
        axes.set_xticks(range(1, len(labels) + 1), labels, rotation=60, ha="right", fontsize="x-small")
        axes.axhline(0.0, color="grey", linewidth=0.8)
        axes.set_ylim(-1.0, 1.0)
        axes.set_ylabel("cosine between task gradients")
        axes.set_title(f"{self.benchmark}: gradient cosines over training steps")

    def _draw_curves(self, axes) -> None:
        for index, (label, epochs, values) in enumerate(self.curves):
            axes.plot(epochs, values, marker=_marker(index), label=label)
        axes.set_xlabel("epoch")
        axes.set_ylabel("σ_cos (mean over seeds)")
        axes.set_title(f"{self.benchmark}: σ_cos per epoch")
        _legend_beside(axes)

    def _draw_scatter(self, axes) -> None:
        scale = display_scale(self.selection_metric)
        for index, label in enumerate(sorted({label for label, _, _ in self.points})):
            points = [(sigma, score * scale) for point_label, sigma, score in self.points if point_label == label]
            axes.scatter([sigma for sigma, _ in points], [score for _, score in points], label=label, s=18, marker=_marker(index))
        correlation = pearson_correlation([sigma for _, sigma, _ in self.points], [score for _, _, score in self.points])
        r_text = "undefined" if correlation is None else f"{correlation:+.2f}"
        axes.set_xlabel("first-epoch σ_cos")
        axes.set_ylabel(f"validation {metric_header(self.selection_metric)}")
        axes.set_title(f"{self.benchmark}: first-epoch σ_cos vs validation score\nPearson r = {r_text} over {len(self.points)} runs")
        _legend_beside(axes)


def _marker(index: int) -> str:
    return MARKERS[(index // COLOURS_PER_CYCLE) % len(MARKERS)]


def _legend_beside(axes) -> None:
    """Place the legend below the plot, in two columns when it is long; the saved image grows to fit it."""
    count = len(axes.get_legend_handles_labels()[1])
    axes.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2 if count > 6 else 1)


def _render(draw: Callable, size: tuple[float, float] = FIGURE_SIZE) -> bytes:
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MatplotlibFigure

    with matplotlib.style.context("default"):
        figure = MatplotlibFigure(figsize=size, dpi=DOTS_PER_INCH)
        FigureCanvasAgg(figure)
        draw(figure.add_subplot())
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DOTS_PER_INCH, metadata={"Software": None}, bbox_inches="tight")
    return buffer.getvalue()
