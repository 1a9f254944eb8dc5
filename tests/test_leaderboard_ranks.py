"""Ranks with ties, mean ranks, seed statistics with confidence intervals, and metric directions."""

import math

import pytest
from test_leaderboard_table import BENCHMARK, _single, make_record

from mtbench.errors import MtbenchError
from mtbench.leaderboard import directions
from mtbench.leaderboard.aggregate import aggregate
from mtbench.leaderboard.comparison import compare
from mtbench.leaderboard.directions import known_direction, metric_direction
from mtbench.leaderboard.formatting import format_half_width, format_rank
from mtbench.leaderboard.ranking import competition_ranks, mean_ranks
from mtbench.leaderboard.seed_statistics import confidence_half_width, summarize, t_quantile


def test_ranks_higher_with_ties():
    ranks = competition_ranks({"a": 0.9, "b": 0.8, "c": 0.9, "d": 0.7}, "higher")

    assert ranks == {"a": 1, "c": 1, "b": 3, "d": 4}


def test_ranks_lower_with_ties_and_missing():
    ranks = competition_ranks({"a": 0.5, "b": 0.3, "c": 0.3, "d": 0.3, "e": None, "f": 0.9}, "lower")

    assert ranks == {"b": 1, "c": 1, "d": 1, "a": 4, "f": 5}


def test_ranks_tie_within_tolerance():
    # 0.1 + 0.2 differs from 0.3 in the last bit only.
    ranks = competition_ranks({"a": 0.1 + 0.2, "b": 0.3, "c": 0.31}, "lower")

    assert ranks == {"a": 1, "b": 1, "c": 3}


def test_ranks_reject_unknown_direction():
    with pytest.raises(ValueError, match="direction"):
        competition_ranks({"a": 1.0}, "best")


def test_mean_ranks():
    ranks = {"left": {"a": 1, "b": 2, "c": 2}, "right": {"a": 3, "b": 1, "c": 1}}

    means = mean_ranks(ranks, ["a", "b", "c", "d"])

    assert means == {"a": 2.0, "b": 1.5, "c": 1.5, "d": None}
    assert format_rank(means["b"]) == "1.50"
    assert format_rank(2) == "2"
    assert format_rank(None) == "-"


def test_leaderboard_ranks_share_ties():
    records = [_single(0, "left", 0.8), _single(0, "right", 0.7)]
    records.append(make_record(0, test={"left_accuracy": 0.9, "right_accuracy": 0.7}))
    records.append(make_record(0, batchnorm=True, test={"left_accuracy": 0.9, "right_accuracy": 0.6}))
    leaderboard = aggregate(records, BENCHMARK)

    comparison = compare(leaderboard, records)

    by_label = {row.label: comparison.of(row) for row in leaderboard.selected_rows}
    assert by_label["No reg"].ranks["left_accuracy"] == 1
    assert by_label["BatchNorm"].ranks["left_accuracy"] == 1
    assert by_label["Single task"].ranks["left_accuracy"] == 3
    assert by_label["Single task"].ranks["right_accuracy"] == 1
    assert by_label["No reg"].ranks["right_accuracy"] == 1
    assert by_label["BatchNorm"].ranks["right_accuracy"] == 3
    # Mean rank over the task metrics only, not the harmonic accuracy.
    assert by_label["No reg"].mean_rank == pytest.approx(1.0)
    assert by_label["BatchNorm"].mean_rank == pytest.approx(2.0)
    assert by_label["Single task"].mean_rank == pytest.approx(2.0)
    assert comparison.ranked_metrics == ["harmonic_accuracy", "left_accuracy", "right_accuracy"]


def test_t_quantile_matches_table():
    # Two-sided 95% critical values of Student's t for 1, 2 and 4 degrees of freedom.
    assert t_quantile(0.975, 1) == pytest.approx(12.7062, abs=1e-4)
    assert t_quantile(0.975, 2) == pytest.approx(4.3027, abs=1e-4)
    assert t_quantile(0.975, 4) == pytest.approx(2.7764, abs=1e-4)


def test_summary_confidence_interval():
    statistic = summarize([0.90, 0.92, 0.97])

    # std = sqrt(0.0013) = 0.036056; half-width = 4.3027 * 0.036056 / sqrt(3) = 0.089567.
    assert statistic.ci95 == pytest.approx(4.302653 * math.sqrt(0.0013) / math.sqrt(3), rel=1e-6)
    assert confidence_half_width(0.1, 3) == pytest.approx(0.24841, abs=1e-5)
    assert format_half_width(statistic, "harmonic_accuracy") == "±8.96"
    assert format_half_width(statistic, "depth_rmse") == "±0.090"


def test_single_seed_has_no_deviation_or_interval():
    statistic = summarize([0.5])

    assert statistic.mean == 0.5
    assert statistic.std is None
    assert statistic.ci95 is None
    assert format_half_width(statistic, "depth_rmse") == "-"


def test_direction_longest_suffix():
    assert known_direction("depth_abs_rel") == "lower"
    assert known_direction("segmentation_pixel_accuracy") == "higher"
    assert known_direction("Segmentation_mIoU") == "higher"
    assert known_direction("depth_rel_err") == "lower"
    assert known_direction("weird_score") is None
    with pytest.raises(MtbenchError, match="METRIC_DIRECTIONS"):
        metric_direction("weird_score")


def test_direction_from_dense_module(monkeypatch):
    import types

    dense = types.ModuleType("mtbench.metrics.dense")
    dense.METRIC_DIRECTIONS = {"weird_score": "lower"}
    monkeypatch.setitem(__import__("sys").modules, "mtbench.metrics.dense", dense)
    directions.metric_directions.cache_clear()
    try:
        assert known_direction("depth_weird_score") == "lower"
        dense.METRIC_DIRECTIONS = {"weird_score": "smaller"}
        directions.metric_directions.cache_clear()
        with pytest.raises(MtbenchError, match="weird_score"):
            known_direction("depth_weird_score")
    finally:
        monkeypatch.undo()
        directions.metric_directions.cache_clear()
