"""Depth estimation metrics over the valid pixels of the whole evaluation set.

A pixel is valid when its ground-truth depth is greater than 0 (0 marks a
missing measurement). ``update`` adds sums and counts in float64 and
``compute`` divides once, so the scores do not depend on batch size or
order. With d the predicted and g the true depth in metres, over the valid
pixels:

- ``rmse``: sqrt(mean((d - g)^2)), metres, lower is better;
- ``abs_error``: mean(|d - g|), metres, lower is better;
- ``abs_rel``: mean(|d - g| / g), lower is better;
- ``delta1``: fraction of pixels with max(d / g, g / d) < 1.25, higher is
  better. A prediction d <= 0 never satisfies it.
"""

import torch

DELTA1_THRESHOLD = 1.25


class DepthMetrics:
    """Sums and counts of depth errors over valid pixels.

    >>> metrics = DepthMetrics()
    >>> metrics.update(torch.tensor([0.5, 3.0, 3.0]), torch.tensor([0.0, 2.0, 4.0]))
    >>> metrics.compute()
    {'rmse': 1.0, 'abs_error': 1.0, 'abs_rel': 0.375, 'delta1': 0.0}
    """

    def __init__(self) -> None:
        self.count = 0
        self.absolute_sum = 0.0
        self.squared_sum = 0.0
        self.relative_sum = 0.0
        self.delta1_count = 0

    def update(self, predicted: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch of predicted and true depths in metres, of the same shape; raise ValueError otherwise."""
        if predicted.shape != target.shape:
            raise ValueError(f"DepthMetrics expects predictions and targets of one shape, got {tuple(predicted.shape)} and {tuple(target.shape)}.")
        predicted = predicted.detach().to("cpu", torch.float64)
        target = target.detach().to("cpu", torch.float64)

        valid = target > 0
        predicted, target = predicted[valid], target[valid]
        error = predicted - target
        self.count += int(target.numel())
        self.absolute_sum += float(error.abs().sum())
        self.squared_sum += float(error.square().sum())
        self.relative_sum += float((error.abs() / target).sum())
        within = (predicted < DELTA1_THRESHOLD * target) & (target < DELTA1_THRESHOLD * predicted)
        self.delta1_count += int(within.sum())

    def compute(self) -> dict[str, float]:
        """Return ``rmse``, ``abs_error``, ``abs_rel`` and ``delta1``; raise ValueError when no valid pixel was seen."""
        if self.count == 0:
            raise ValueError("DepthMetrics.compute() needs at least one valid pixel (ground-truth depth > 0).")
        return {
            "rmse": (self.squared_sum / self.count) ** 0.5,
            "abs_error": self.absolute_sum / self.count,
            "abs_rel": self.relative_sum / self.count,
            "delta1": self.delta1_count / self.count,
        }
