"""CAGrad: the direction with the best worst-case task improvement within a ball around the mean gradient."""

import math
import warnings

import numpy as np
import quadprog
import torch
from scipy.optimize import minimize_scalar

from mtbench.errors import MtbenchError
from mtbench.methods._gram import scaled_gram
from mtbench.methods.base import Hyperparameter, StepContext
from mtbench.methods.gradient_method import GRADIENTS, GradientMethod, weights_logged
from mtbench.methods.registry import register_method

DEFAULT_C = 0.4
DEFAULT_RESCALE = 1

# The rescale options of the authors' code and what each does to the direction.
RESCALE_OPTIONS = {0: "no rescaling", 1: "divide by 1 + c^2", 2: "divide by 1 + c"}

# Added to the Gram matrix (normalised to a largest diagonal entry of 1) in the inner quadratic
# programme, which quadprog needs strictly convex. It moves the weights by about this much.
RIDGE = 1e-9

# A combination g_w shorter than this fraction of the longest task gradient counts as zero:
# its direction is rounding noise, so the conflict-averse correction is left out.
ZERO_COMBINATION = 1e-6

# The outer search for mu = ||g_w|| starts this far above zero, in units of the longest task gradient.
SMALLEST_COMBINATION_NORM = 1e-9


def _positive_semidefinite(gram: np.ndarray) -> np.ndarray:
    """Return the symmetric part of ``gram`` with negative eigenvalues (float32 rounding) set to zero."""
    symmetric = (gram + gram.T) / 2.0
    eigenvalues, eigenvectors = np.linalg.eigh(symmetric)
    return (eigenvectors * np.clip(eigenvalues, 0.0, None)) @ eigenvectors.T


def _solve_dual(gram: np.ndarray, radius: float) -> np.ndarray:
    """Return w on the simplex minimising F(w) = w^T b + radius sqrt(w^T gram w), with b = gram 1 / K.

    ``gram`` is positive semi-definite with largest diagonal entry 1. Because
    sqrt(q) = min over mu > 0 of (q / mu + mu) / 2, F is the minimum over mu
    of a function that is jointly convex in (w, mu). For a fixed mu the
    minimum over w is a quadratic programme on the simplex, which quadprog
    solves exactly. The remaining problem in mu is one-dimensional and convex,
    so bounded Brent search solves it. At the optimum mu = ||g_w|| <= 1.

    Raises ValueError when quadprog fails.
    """
    task_count = gram.shape[0]
    mean_weights = np.full(task_count, 1.0 / task_count)
    linear = gram @ mean_weights
    quadratic = gram + RIDGE * np.eye(task_count)
    # The columns of constraints are the rows of C^T w >= bounds: sum_k w_k = 1 first (an equality), then w_k >= 0.
    constraints = np.hstack([np.ones((task_count, 1)), np.eye(task_count)])
    bounds = np.concatenate([[1.0], np.zeros(task_count)])

    def inner_weights(mu: float) -> np.ndarray:
        # F(w, mu) times mu / radius is 1/2 w^T gram w + (mu / radius) w^T b plus a constant.
        weights = quadprog.solve_qp(quadratic, -(mu / radius) * linear, constraints, bounds, 1)[0]
        weights = np.clip(weights, 0.0, None)
        return weights / weights.sum()

    def joint_objective(mu: float) -> float:
        weights = inner_weights(mu)
        return float(weights @ linear + radius * (weights @ gram @ weights / mu + mu) / 2.0)

    search = minimize_scalar(joint_objective, bounds=(SMALLEST_COMBINATION_NORM, 1.0), method="bounded", options={"xatol": 1e-12})
    return inner_weights(float(search.x))


def conflict_averse_weights(gram: np.ndarray, c: float) -> np.ndarray:
    """Return a with d = sum_k a_k g_k, the CAGrad direction before rescaling, for the K x K Gram matrix of G.

    g0 is the mean gradient, w solves the dual problem (see
    :func:`_solve_dual`) with radius c ||g0||, g_w = sum_k w_k g_k, and
    a_k = 1 / K + c ||g0|| w_k / ||g_w||. The weights do not change when G is
    multiplied by a constant. When c ||g0|| = 0 or ||g_w|| is below
    ``ZERO_COMBINATION`` times the longest task gradient, a_k = 1 / K and
    d = g0. Raises ValueError when quadprog fails.

    Gradients (3, 0) and (0, 4) with c = 0.4 give a = (5/6, 1/2) and d = (2.5, 2).
    """
    task_count = gram.shape[0]
    mean_weights = np.full(task_count, 1.0 / task_count)
    gram = _positive_semidefinite(np.asarray(gram, dtype=np.float64))
    longest_squared = gram.diagonal().max()
    if longest_squared <= 0.0:
        return mean_weights
    gram = gram / longest_squared

    radius = c * math.sqrt(max(float(mean_weights @ gram @ mean_weights), 0.0))
    if radius == 0.0:
        return mean_weights

    dual_weights = _solve_dual(gram, radius)
    combination_norm = math.sqrt(max(float(dual_weights @ gram @ dual_weights), 0.0))
    if combination_norm <= ZERO_COMBINATION:
        return mean_weights
    return mean_weights + (radius / combination_norm) * dual_weights


@register_method
class CAGrad(GradientMethod):
    """Follow d = g0 + c ||g0|| g_w / ||g_w||, the direction that best improves the worst task near g0.

    From "Conflict-Averse Gradient Descent for Multi-task Learning" (Liu, Liu,
    Jin, Stone and Liu, NeurIPS 2021). With g0 = (1/K) sum_k g_k the mean
    gradient, CAGrad maximises min_k <g_k, d> over the ball
    ||d - g0|| <= c ||g0||. Its dual is

        min over w in the simplex of  g_w^T g0 + sqrt(phi) ||g_w||,  phi = c^2 ||g0||^2,

    with g_w = sum_k w_k g_k, and the direction is
    d = g0 + (sqrt(phi) / ||g_w||) g_w, divided by 1, 1 + c^2 or 1 + c as
    ``rescale`` is 0, 1 or 2. The dual is solved on the float32 Gram matrix
    of G divided by its largest absolute entry, in float64, by
    :func:`conflict_averse_weights`. TorchJD 0.18 implements CAGrad with
    cvxpy, which mtbench does not depend on, so it is written here with
    quadprog and scipy.

    Hyper-parameters: ``c`` (default 0.4, the value in the authors' NYUv2
    and Cityscapes scripts; LibMTL defaults to 0.5) and ``rescale`` (default 1,
    the option the authors' NYUv2 and Cityscapes code uses: divide by 1 + c^2).
    c = 0 gives the mean gradient g0 whatever ``rescale`` is.

    Edge cases: all-zero gradients give a zero direction. When the dual
    optimum has g_w = 0, as with one zero gradient, d = g0. Exactly opposite
    gradients of equal norm have g0 = 0, so d = 0, and opposite gradients of
    unequal norm follow the dual like any others. Tiny and huge gradients
    give the same weights as gradients of norm 1, because G is rescaled
    before its Gram matrix is formed. Identical gradients g give
    d = (1 + c) g / divisor, and so does a single task. Should quadprog fail,
    the step uses g0 and a warning is issued once per method instance.

    Logged per step: ``weight/<task>``, the a_k divided by the rescaling
    divisor, so the shared update is sum_k weight_k g_k.
    """

    name = "cagrad"
    title = "Liu, Liu, Jin, Stone and Liu, 2021: Conflict-Averse Gradient Descent for Multi-task Learning"
    hyperparameters = (
        Hyperparameter(
            "c", float, DEFAULT_C, "radius of the ball around the mean gradient g0, as a multiple of ||g0|| (dimensionless, >= 0)"
        ),
        Hyperparameter(
            "rescale",
            int,
            DEFAULT_RESCALE,
            "divide the direction by 1 (0), 1 + c^2 (1, the authors' default) or 1 + c (2)",
        ),
        GRADIENTS,
    )
    representation_refusal = (
        "its ball constraint ||d - g0|| <= c ||g0|| and its worst-case improvement are defined "
        "for the update of the shared parameters, and a ball in representation space is a different set."
    )

    def __init__(self, tasks: list[str], c: float = DEFAULT_C, rescale: int = DEFAULT_RESCALE, gradients: str = "parameters") -> None:
        super().__init__(tasks, gradients)
        c = float(c)
        if not (math.isfinite(c) and c >= 0.0):
            raise MtbenchError(f"Invalid c={c} for method 'cagrad': use a finite number >= 0, such as {DEFAULT_C}.")
        if isinstance(rescale, bool) or rescale not in RESCALE_OPTIONS:
            options = ", ".join(f"{option} ({meaning})" for option, meaning in RESCALE_OPTIONS.items())
            raise MtbenchError(f"Invalid rescale={rescale!r} for method 'cagrad': use one of {options}.")
        self.c = c
        self.rescale = int(rescale)
        self._warned_solver_failure = False

    def divisor(self) -> float:
        """Return the number the direction is divided by: 1, 1 + c^2 or 1 + c."""
        return {0: 1.0, 1: 1.0 + self.c**2, 2: 1.0 + self.c}[self.rescale]

    def combine(self, gradients: torch.Tensor, context: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        gram, _ = scaled_gram(gradients)
        try:
            weights = conflict_averse_weights(gram.cpu().double().numpy(), self.c)
        except ValueError as error:
            if not self._warned_solver_failure:
                warnings.warn(
                    f"CAGrad's quadratic programme failed ({error}); this step and any later failing step "
                    "use the mean gradient g0 instead of the conflict-averse direction.",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self._warned_solver_failure = True
            weights = np.full(len(self.tasks), 1.0 / len(self.tasks))

        weights = torch.from_numpy(weights / self.divisor()).to(device=gradients.device, dtype=torch.float32)
        direction = weights @ gradients.float()
        return direction, weights_logged(self.tasks, weights)
