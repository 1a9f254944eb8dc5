"""Cosines between task gradients, the diagnostic reported for every run.

"Regularizing Deep Multi-Task Networks using Orthogonal Gradients" reports the
distribution of cos(g_i, g_j) over training steps, its mean mu_cos and its
standard deviation sigma_cos, and finds that the first epoch's sigma_cos
predicts final validation accuracy.
"""

import math

import numpy as np
import torch

# A gradient with a norm below this counts as zero: its unit vector is zero,
# so its cosine with every other gradient is 0 (orthogonal), not NaN.
ZERO_NORM = 1e-12


def normalize_rows(gradients: torch.Tensor) -> torch.Tensor:
    """Scale each row of ``gradients`` to unit length; a zero row stays zero."""
    norms = gradients.norm(dim=1, keepdim=True)
    return gradients / norms.clamp_min(ZERO_NORM)


def pairwise_cosines(gradients: torch.Tensor) -> torch.Tensor:
    """Return cos(g_i, g_j) for every pair i < j of the rows of the K x P matrix ``gradients``.

    The result has K (K - 1) / 2 entries in row-major pair order (0-1, 0-2, ...,
    1-2, ...), so it is empty for a single task. It is computed in float32 or wider.
    """
    unit = normalize_rows(gradients.float())
    gram = unit @ unit.T
    rows, columns = torch.triu_indices(gram.shape[0], gram.shape[1], offset=1, device=gram.device)
    return gram[rows, columns]


class CosineTracker:
    """Collect per-step pairwise cosines and summarise them per epoch and per run."""

    def __init__(self) -> None:
        self._epochs: list[list[np.ndarray]] = []

    def start_epoch(self) -> None:
        self._epochs.append([])

    def update(self, cosines: torch.Tensor) -> None:
        if not self._epochs:
            self.start_epoch()
        self._epochs[-1].append(cosines.detach().to("cpu", torch.float64).numpy())

    def state(self) -> list[torch.Tensor]:
        """Return the recorded cosines as one float64 tensor per epoch (steps x pairs), for checkpoints."""
        return [torch.from_numpy(np.stack(epoch)) if epoch else torch.zeros(0, 0, dtype=torch.float64) for epoch in self._epochs]

    def load_state(self, state: list[torch.Tensor]) -> None:
        """Replace the recorded cosines with those returned by :meth:`state`."""
        self._epochs = [list(epoch.numpy()) for epoch in state]

    def steps(self) -> np.ndarray:
        """Return every recorded step as rows of an (steps, pairs) float32 array."""
        rows = [row for epoch in self._epochs for row in epoch]
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack(rows).astype(np.float32)

    @staticmethod
    def _summary(rows: list[np.ndarray]) -> tuple[float | None, float | None]:
        values = np.concatenate(rows) if rows else np.zeros(0)
        if values.size == 0:
            return None, None
        mean = float(values.mean())
        std = float(values.std(ddof=1)) if values.size > 1 else 0.0
        return mean, (std if math.isfinite(std) else None)

    def epoch_summary(self, epoch_index: int = -1) -> tuple[float | None, float | None]:
        """Return (mu_cos, sigma_cos) of one epoch over all its steps and task pairs."""
        return self._summary(self._epochs[epoch_index]) if self._epochs else (None, None)

    def run_summary(self) -> tuple[float | None, float | None]:
        """Return (mu_cos, sigma_cos) over every step and pair of the run."""
        return self._summary([row for epoch in self._epochs for row in epoch])
