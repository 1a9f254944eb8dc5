"""MGDA: the min-norm point in the convex hull of the task gradients, found by Frank-Wolfe."""

import math

import torch
from mtbench.errors import MtbenchError
from mtbench.methods._gram import check_finite_gradients, combine_rows, scaled_gram
from mtbench.methods.base import Hyperparameter, StepContext
from mtbench.methods.gradient_method import GRADIENTS, GradientMethod, weights_logged
from mtbench.methods.registry import register_method

NORMALIZATIONS = ("none", "l2", "loss", "loss+")

# The authors' code stops its solver after 250 iterations.
DEFAULT_MAX_ITERATIONS = 250
DEFAULT_TOLERANCE = 1e-5


def normalization_factors(gramian: torch.Tensor, losses: torch.Tensor, normalization: str) -> torch.Tensor:
    """Return c_k = 1 / n_k, the factor applied to task k's gradient before the min-norm problem.

    The normaliser n_k is 1 for "none", ||g_k|| for "l2", L_k for "loss" and
    L_k ||g_k|| for "loss+". The norms come from the diagonal of ``gramian``
    and ``losses`` are the detached task losses. A normaliser of zero, from a
    zero loss or a zero gradient, gives c_k = 1. The factors are divided by
    the largest, which changes no weight and keeps c_k <= 1.

    Raises MtbenchError when "loss" or "loss+" meets a negative loss, whose
    sign would reverse the task gradient. Losses (2, 4) with "loss" give
    c = (1/2, 1/4) before the division and (1, 1/2) after it.
    """
    if normalization not in NORMALIZATIONS:
        raise MtbenchError(f"Invalid MGDA normalization {normalization!r}: use one of {', '.join(NORMALIZATIONS)}.")

    norms = gramian.diagonal().clamp_min(0).sqrt()
    losses = losses.detach().float().cpu()
    if normalization in ("loss", "loss+") and bool((losses < 0).any()):
        raise MtbenchError(
            f"MGDA normalization {normalization!r} divides each gradient by its task loss, but the losses are "
            f"{losses.tolist()}. Use normalization 'none' or 'l2' with losses that can be negative."
        )

    normalizers = {
        "none": torch.ones_like(norms),
        "l2": norms,
        "loss": losses,
        "loss+": losses * norms,
    }[normalization]
    factors = torch.where(normalizers > 0, 1.0 / normalizers.clamp_min(torch.finfo(torch.float32).tiny), 1.0)
    return factors / factors.max()


def frank_wolfe_weights(gramian: torch.Tensor, tolerance: float, max_iterations: int) -> torch.Tensor:
    """Return the min-norm weights w for the K x K ``gramian``, by the Frank-Wolfe solver of Sener and Koltun's Algorithm 2.

    Start at w = (1/K, ..., 1/K). Each iteration moves towards the vertex e_t
    whose task t has the smallest (G w)_t. The step gamma comes from the exact
    line search of their Algorithm 1 on the segment from w to e_t. The loop
    stops when gamma falls below ``tolerance`` or after ``max_iterations``
    iterations.
    This is the loop of TorchJD's ``MGDAWeighting``, run in float64 Python
    arithmetic: for K = 3 it takes a tenth of the time of the same loop on
    tensors, which could reach 14 ms per step when it ran all 250 iterations.

    Gram matrix [[1, -1], [-1, 2]] (gradients (1, 0) and (-1, 1)) gives w = (0.6, 0.4).
    """
    entries = gramian.detach().double().cpu().tolist()
    count = len(entries)
    weights = [1.0 / count] * count
    for _ in range(max_iterations):
        products = [sum(row[j] * weights[j] for j in range(count)) for row in entries]
        target = min(range(count), key=products.__getitem__)
        toward = products[target]  # w . G e_t, since G is symmetric
        current = sum(weights[i] * products[i] for i in range(count))  # w . G w
        vertex = entries[target][target]  # e_t . G e_t
        if vertex <= toward:
            gamma = 1.0
        elif current <= toward:
            gamma = 0.0
        else:
            gamma = (current - toward) / (current + vertex - 2.0 * toward)
        weights = [(1.0 - gamma) * weight for weight in weights]
        weights[target] += gamma
        if gamma < tolerance:
            break
    return torch.tensor(weights, dtype=torch.float32)


@register_method
class MGDA(GradientMethod):
    """Update the shared network along the min-norm point of the convex hull of the task gradients.

    From "Multi-Task Learning as Multi-Objective Optimization" (Ozan Sener
    and Vladlen Koltun, NeurIPS 2018). The weights solve

        min_w || sum_k w_k g_k ||^2   subject to   w_k >= 0, sum_k w_k = 1,

    and the shared parameters receive d = sum_k w_k g_k. Either d = 0, and the
    shared parameters are Pareto-stationary for the batch, or -d decreases
    every task loss to first order. Each decoder receives the unweighted
    gradient of its own loss, as in the publication's Algorithm 2, where the
    authors' code weights it by w_k. :func:`frank_wolfe_weights` computes w
    with the Frank-Wolfe solver of the publication's Algorithm 2: start at
    w = (1/K, ..., 1/K), move towards the task t whose gradient has the
    smallest inner product with the current point, with the exact line
    search of Algorithm 1 as step size gamma, and stop when gamma falls
    below ``tolerance`` or after ``max_iterations`` steps.

    ``normalization`` divides each g_k by n_k (see
    :func:`normalization_factors`) before the solver, as the authors' code
    can. The weights then multiply the raw gradients, as in the authors' code,
    so normalisation changes the weights but not the gradients they combine.
    The authors' comment calls normalisation optional and not part of the
    publication, and Ozan Sener stated on the authors' repository
    (isl-org/MultiObjectiveOptimization) that their MultiMNIST runs used
    ``normalization_type=none``. That is the default here.

    Hyper-parameters: ``gradients`` ("parameters"; "representation" gives
    MGDA-UB, also registered as ``mgda-ub``), ``normalization`` ("none"),
    ``max_iterations`` (250, the authors' code) and ``tolerance`` (1e-5). The
    publication states no iteration limit or tolerance.

    Edge cases. A zero task gradient is itself the min-norm point, so that task
    gets weight 1 and d = 0. All-zero gradients give d = 0 and weight 1 on the
    first task. Tiny gradients (1e-20) give the same weights as their
    rescaled copies. Identical gradients g, g give d = g with weights (1, 0).
    Opposite gradients g, -g give d = 0 with weights (1/2, 1/2). A single
    task gets weight 1 and d = g_1. Logged per step: ``weight/<task>``.

    Gradients (1, 0) and (-1, 1) give w = (0.6, 0.4) and d = (0.2, 0.4).
    """

    name = "mgda"
    title = "Sener and Koltun, 2018: Multi-Task Learning as Multi-Objective Optimization"
    hyperparameters = (
        GRADIENTS,
        Hyperparameter(
            "normalization",
            str,
            "none",
            "divide each task gradient before the min-norm solver by 'none' (1), 'l2' (its norm), 'loss' (its task loss) "
            "or 'loss+' (loss times norm); the weights still combine the raw gradients",
        ),
        Hyperparameter(
            "max_iterations", int, DEFAULT_MAX_ITERATIONS, "maximum number of Frank-Wolfe iterations per step (>= 1)"
        ),
        Hyperparameter(
            "tolerance",
            float,
            DEFAULT_TOLERANCE,
            "stop Frank-Wolfe when its step size gamma, a fraction in [0, 1], falls below this value (> 0)",
        ),
    )
    supports_representation = True

    def __init__(
        self,
        tasks: list[str],
        gradients: str = "parameters",
        normalization: str = "none",
        max_iterations: int = DEFAULT_MAX_ITERATIONS,
        tolerance: float = DEFAULT_TOLERANCE,
    ) -> None:
        super().__init__(tasks, gradients)
        if normalization not in NORMALIZATIONS:
            raise MtbenchError(
                f"Invalid value normalization={normalization!r} for method '{self.name}': "
                f"use one of {', '.join(NORMALIZATIONS)} (the authors used 'none' on MultiMNIST)."
            )
        if isinstance(max_iterations, bool) or int(max_iterations) != max_iterations or max_iterations < 1:
            raise MtbenchError(
                f"Invalid value max_iterations={max_iterations!r} for method '{self.name}': use an integer >= 1, such as 250."
            )
        tolerance = float(tolerance)
        if not (math.isfinite(tolerance) and tolerance > 0):
            raise MtbenchError(
                f"Invalid value tolerance={tolerance!r} for method '{self.name}': use a finite number > 0, such as 1e-5."
            )
        self.normalization = normalization
        self.max_iterations = int(max_iterations)
        self.tolerance = tolerance

    def min_norm_weights(self, gramian: torch.Tensor) -> torch.Tensor:
        """Return the Frank-Wolfe weights for the K x K Gram matrix of the (normalised) task gradients."""
        if gramian.shape[0] == 1:
            # The loop would take all max_iterations steps of gamma = 1 to return the same weight.
            return torch.ones(1)
        return frank_wolfe_weights(gramian, self.tolerance, self.max_iterations)

    def combine(self, gradients: torch.Tensor, context: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        check_finite_gradients(gradients, self.tasks, self.name)
        gramian, _ = scaled_gram(gradients)
        gramian = gramian.cpu()
        factors = normalization_factors(gramian, context.loss_vector(self.tasks), self.normalization)
        weights = self.min_norm_weights(gramian * torch.outer(factors, factors))
        return combine_rows(weights, gradients), weights_logged(self.tasks, weights)
