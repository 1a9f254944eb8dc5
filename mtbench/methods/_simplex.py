"""Euclidean projection onto the probability simplex."""

import torch


def project_onto_simplex(vector: torch.Tensor) -> torch.Tensor:
    """Return the point w with w_k >= 0 and sum_k w_k = 1 that is closest to ``vector`` in Euclidean distance.

    ``vector`` is 1-D and finite. The projection is w_k = max(v_k - theta, 0)
    with the one threshold theta that makes the entries sum to 1, found from
    the sorted entries ("Projection onto the probability simplex: An
    efficient algorithm with a simple proof, and an application", Wang and
    Carreira-Perpinan, 2013). A point already on the simplex is returned
    unchanged up to rounding.

    (0.45, 0.3) projects to (0.575, 0.425) and (0.9, -0.3) to (1, 0).
    """
    # The projection ignores a common shift. Moving the largest entry to 0 keeps the 1 in the sums
    # below from being lost next to entries of magnitude 1e18 or more.
    shifted = vector - vector.max()
    task_count = shifted.shape[0]
    descending = torch.sort(shifted, descending=True).values
    cumulative = torch.cumsum(descending, dim=0) - 1.0
    positions = torch.arange(1, task_count + 1, device=shifted.device, dtype=shifted.dtype)

    # The support is the largest prefix of sorted entries that stay positive after the shift. It always contains the first.
    in_support = descending - cumulative / positions > 0
    support_size = int(in_support.nonzero().max()) + 1
    threshold = cumulative[support_size - 1] / support_size
    return (shifted - threshold).clamp(min=0.0)
