"""delta_m: the formula, its metric-averaged variant, and the single-task baseline of a leaderboard."""

import pytest
from test_leaderboard_table import BENCHMARK, _single, make_record

from mtbench.leaderboard.aggregate import aggregate
from mtbench.leaderboard.comparison import compare
from mtbench.leaderboard.delta_m import (
    delta_m_metric_averaged,
    delta_m_task_averaged,
    group_metrics_by_task,
    signed_relative_change,
)

SINGLE = {"segmentation_miou": 0.40, "depth_abs_err": 0.50, "depth_rel_err": 0.20}
METHOD = {"segmentation_miou": 0.44, "depth_abs_err": 0.45, "depth_rel_err": 0.22}
DIRECTIONS = {"segmentation_miou": "higher", "depth_abs_err": "lower", "depth_rel_err": "lower"}
TASK_METRICS = {"segmentation": ["segmentation_miou"], "depth": ["depth_abs_err", "depth_rel_err"]}


def test_task_averaged_worked_example():
    # Changes +10 (mIoU), +10 (absolute error down), -10 (relative error up): tasks +10 and 0, mean +5.
    assert delta_m_task_averaged(METHOD, SINGLE, TASK_METRICS, DIRECTIONS) == pytest.approx(5.0)


def test_metric_averaged_worked_example():
    # Nash-MTL and FAMO sign: -(10 + 10 - 10) / 3, negative means better.
    metrics = ["segmentation_miou", "depth_abs_err", "depth_rel_err"]

    assert delta_m_metric_averaged(METHOD, SINGLE, metrics, DIRECTIONS) == pytest.approx(-10.0 / 3.0)


def test_signed_relative_change_directions():
    assert signed_relative_change(0.44, 0.40, "higher") == pytest.approx(10.0)
    assert signed_relative_change(0.45, 0.50, "lower") == pytest.approx(10.0)
    assert signed_relative_change(0.22, 0.20, "lower") == pytest.approx(-10.0)
    assert signed_relative_change(0.5, 0.0, "higher") is None
    with pytest.raises(ValueError, match="direction"):
        signed_relative_change(1.0, 1.0, "up")


def test_zero_baseline_gives_no_delta_m():
    baseline = {**SINGLE, "depth_rel_err": 0.0}

    assert delta_m_task_averaged(METHOD, baseline, TASK_METRICS, DIRECTIONS) is None
    assert delta_m_metric_averaged(METHOD, baseline, list(DIRECTIONS), DIRECTIONS) is None


def test_equal_to_baseline_is_zero():
    assert delta_m_task_averaged(SINGLE, SINGLE, TASK_METRICS, DIRECTIONS) == 0.0


def test_empty_task_rejected():
    with pytest.raises(ValueError, match="every task"):
        delta_m_task_averaged(METHOD, SINGLE, {"segmentation": []}, DIRECTIONS)


def test_group_metrics_by_task():
    names = ["harmonic_accuracy", "depth_rmse", "seg_fine_miou", "seg_miou", "depth_abs_rel"]

    groups = group_metrics_by_task(names, ["seg", "seg_fine", "depth"])

    assert groups == {"seg": ["seg_miou"], "seg_fine": ["seg_fine_miou"], "depth": ["depth_abs_rel", "depth_rmse"]}


def _multi(seed: int, left: float, right: float, **options) -> dict:
    return make_record(seed, test={"left_accuracy": left, "right_accuracy": right}, **options)


def test_leaderboard_delta_m_per_seed():
    # Seed 0: single (0.8, 0.5), multi (0.88, 0.45): +10 and -10 -> 0.  Seed 1: single (0.5, 0.5), multi (0.6, 0.6): +20, +20 -> +20.
    records = [_single(0, "left", 0.8), _single(0, "right", 0.5), _single(1, "left", 0.5), _single(1, "right", 0.5)]
    records += [_multi(0, 0.88, 0.45), _multi(1, 0.6, 0.6)]
    leaderboard = aggregate(records, BENCHMARK)

    comparison = compare(leaderboard, records)

    row = next(row for row in leaderboard.rows if row.method == "equal")
    delta = comparison.of(row).delta_m
    assert delta.mean == pytest.approx(10.0)
    assert delta.std == pytest.approx(14.142135623730951)
    assert delta.count == 2
    assert comparison.of(row).delta_m_metric_averaged.mean == pytest.approx(-10.0)
    assert comparison.task_metrics == {"left": ["left_accuracy"], "right": ["right_accuracy"]}
    assert comparison.missing_baseline_runs == {}


def test_leaderboard_missing_single_task_seed():
    records = [_single(0, "left", 0.8), _single(0, "right", 0.5), _single(1, "left", 0.5)]
    records += [_multi(0, 0.88, 0.45), _multi(1, 0.6, 0.6), _multi(2, 0.6, 0.6)]
    leaderboard = aggregate(records, BENCHMARK)

    comparison = compare(leaderboard, records)

    row = next(row for row in leaderboard.rows if row.method == "equal")
    assert comparison.of(row).delta_m.mean is None
    assert comparison.missing_baseline_runs == {"left": [2], "right": [1, 2]}
    assert any("task right: seeds 1, 2" in note for note in comparison.notes)


def test_leaderboard_without_single_task_runs():
    records = [_multi(0, 0.88, 0.45)]
    leaderboard = aggregate(records, BENCHMARK)

    comparison = compare(leaderboard, records)

    assert comparison.baseline is None
    assert comparison.of(leaderboard.rows[0]).delta_m.mean is None
    assert comparison.missing_baseline_runs == {"left": [0], "right": [0]}


def test_baseline_prefers_plain_single_task_row():
    records = [_single(0, "left", 0.8), _single(0, "right", 0.5)]
    records += [make_record(0, method="single", tasks=(task,), batchnorm=True, test={f"{task}_accuracy": 0.1}) for task in ("left", "right")]
    records.append(_multi(0, 0.88, 0.45))
    leaderboard = aggregate(records, BENCHMARK)

    comparison = compare(leaderboard, records)

    assert not comparison.baseline.model_config["batchnorm"]
    equal = next(row for row in leaderboard.rows if row.method == "equal")
    assert comparison.of(equal).delta_m.mean == pytest.approx(0.0)
