"""Nash-MTL: task weights alpha from the Nash bargaining solution alpha_k (G G^T alpha)_k = 1."""

import math
import warnings

import numpy as np
import torch

from mtbench.errors import MtbenchError
from mtbench.methods._gram import row_norms, scaled_gram
from mtbench.methods.base import Hyperparameter, StepContext
from mtbench.methods.gradient_method import GRADIENTS, GradientMethod, weights_logged
from mtbench.methods.registry import register_method

DEFAULT_UPDATE_WEIGHTS_EVERY = 1
DEFAULT_OPTIM_NITER = 20
DEFAULT_MAX_NORM = 1.0

# The solver stops once max_k |alpha_k (A alpha)_k - 1| is at most this (dimensionless).
RESIDUAL_TOLERANCE = 1e-6

# Below this Newton decrement the full Newton step is taken; above it the damped step 1 / (1 + decrement).
FULL_STEP_DECREMENT = 0.25


def nash_bargaining_weights(gram: np.ndarray, max_iterations: int) -> np.ndarray | None:
    """Return alpha > 0 with alpha_k (gram alpha)_k = 1 for every k, or None when no such alpha is found.

    alpha minimises f(alpha) = 1/2 alpha^T A alpha - sum_k log alpha_k, whose
    gradient vanishes exactly at the Nash equation. f is strictly convex and
    self-concordant, so damped Newton steps stay positive and converge
    quadratically near the solution. A solution exists if and only if no
    convex combination of the task gradients is zero. Otherwise f is
    unbounded below: a zero gradient, all-zero gradients, or gradients that
    cancel, such as g and -g. The solver then returns None within
    ``max_iterations`` Newton iterations.

    The problem is solved on A = gram / ||gram||_F and alpha is rescaled back,
    so the result solves the equation for ``gram`` itself. It starts from
    alpha_k = 1 / sqrt(A_kk), the solution for orthogonal gradients, scaled
    so that alpha^T A alpha = K, as at the solution.

    Gradients (2, 0) and (0, 0.5), with gram diag(4, 0.25), give alpha = (0.5, 2).
    """
    gram = np.asarray(gram, dtype=np.float64)
    task_count = gram.shape[0]
    frobenius = float(np.linalg.norm(gram))
    if not (math.isfinite(frobenius) and frobenius > 0.0):
        return None
    normalised = gram / frobenius

    diagonal = normalised.diagonal()
    if np.any(diagonal <= 0.0):
        return None
    alpha = 1.0 / np.sqrt(diagonal)
    quadratic = float(alpha @ normalised @ alpha)
    if quadratic <= 0.0:
        return None
    alpha = alpha * math.sqrt(task_count / quadratic)

    for iteration in range(max_iterations + 1):
        product = normalised @ alpha
        if np.max(np.abs(alpha * product - 1.0)) <= RESIDUAL_TOLERANCE:
            return alpha / math.sqrt(frobenius)
        if iteration == max_iterations:
            break

        gradient = product - 1.0 / alpha
        hessian = normalised + np.diag(1.0 / alpha**2)
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            return None
        decrement = math.sqrt(max(float(gradient @ step), 0.0))
        if decrement >= FULL_STEP_DECREMENT:
            step = step / (1.0 + decrement)
        alpha = alpha - step
        if not np.all(np.isfinite(alpha)) or np.any(alpha <= 0.0):
            return None
    return None


def clip_norm(direction: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Return ``direction`` scaled down to norm ``max_norm`` when it is longer; 0 disables the clipping."""
    if max_norm <= 0.0:
        return direction
    norm = float(row_norms(direction.unsqueeze(0))[0])
    if norm <= max_norm:
        return direction
    return direction * (max_norm / norm)


@register_method
class NashMTL(GradientMethod):
    """Follow d = sum_k alpha_k g_k with alpha the Nash bargaining solution of the tasks, clipped to norm max_norm.

    From "Multi-Task Learning as a Bargaining Game" (Navon, Shamsian,
    Achituve, Maron, Kawaguchi, Chechik and Fetaya, ICML 2022). alpha > 0
    solves (G G^T alpha)_k = 1 / alpha_k for every task k, so
    <g_k, d> = 1 / alpha_k and ||d||^2 = K. mtbench solves this equation with
    Newton's method (:func:`nash_bargaining_weights`) on the float32 Gram
    matrix of G divided by its largest absolute entry. The authors solve it
    with a sequence of convex programmes in cvxpy (the same solver TorchJD
    0.18 wraps), which mtbench does not depend on. The authors divide
    G G^T by its Frobenius norm n before solving. But their constraint
    multiplies alpha by n again and their objective is divided by n, so their
    alpha solves the equation for the unnormalised G G^T and the direction
    does not change. mtbench undoes its own scalings in the same way.

    Hyper-parameters, with the authors' defaults:

    - ``update_weights_every`` (1): alpha is recomputed every this many
      steps, and in between the last alpha weights the new gradients.
    - ``optim_niter`` (20): the most solver iterations per computation of
      alpha. They are Newton iterations here and convex programmes for the
      authors. The tests check that 10 suffice on random problems with up to 8 tasks.
    - ``max_norm`` (1.0): the direction d is scaled to norm max_norm when it
      is longer, as the authors' clip_grad_norm_ on the shared parameters
      does. 0 disables the clipping.

    Edge cases: when no alpha exists (all-zero gradients, one zero gradient,
    or opposite gradients g and -c g with c > 0) or Newton does not converge
    within ``optim_niter`` iterations, the previous step's alpha is kept, as
    the authors' code does when its solver fails, and a warning is issued
    once per method instance. At the first step there is no previous alpha,
    so MtbenchError is raised. Tiny and huge gradients give the same
    direction as gradients of norm 1: alpha scales with 1 / ||g||. Identical
    gradients g give alpha_k = 1 / (||g|| sqrt(K)). A single task gives
    alpha = 1 / ||g|| and d = g / ||g||.

    Logged per step: ``weight/<task>``, alpha_k before clipping, and
    ``nash_fallback``, 1 when the step reused the previous alpha because no
    solution was found and 0 otherwise. alpha, whether it exists and the
    step count are buffers, saved in checkpoints.
    """

    name = "nash-mtl"
    title = "Navon, Shamsian, Achituve, Maron, Kawaguchi, Chechik and Fetaya, 2022: Multi-Task Learning as a Bargaining Game"
    hyperparameters = (
        Hyperparameter(
            "update_weights_every",
            int,
            DEFAULT_UPDATE_WEIGHTS_EVERY,
            "recompute alpha every this many training steps and reuse it in between (>= 1)",
        ),
        Hyperparameter("optim_niter", int, DEFAULT_OPTIM_NITER, "most Newton iterations per computation of alpha (>= 1)"),
        Hyperparameter(
            "max_norm",
            float,
            DEFAULT_MAX_NORM,
            "largest Euclidean norm of the shared update direction, in gradient units; 0 disables the clipping",
        ),
        GRADIENTS,
    )
    representation_refusal = (
        "max_norm bounds the norm of the shared-parameter update, and the bargaining weights of representation "
        "gradients differ from those of parameter gradients, which the authors use."
    )

    def __init__(
        self,
        tasks: list[str],
        update_weights_every: int = DEFAULT_UPDATE_WEIGHTS_EVERY,
        optim_niter: int = DEFAULT_OPTIM_NITER,
        max_norm: float = DEFAULT_MAX_NORM,
        gradients: str = "parameters",
    ) -> None:
        super().__init__(tasks, gradients)
        self.update_weights_every = _positive_integer(update_weights_every, "update_weights_every")
        self.optim_niter = _positive_integer(optim_niter, "optim_niter")
        max_norm = float(max_norm)
        if not (math.isfinite(max_norm) and max_norm >= 0.0):
            raise MtbenchError(
                f"Invalid max_norm={max_norm} for method 'nash-mtl': use a finite number >= 0 (0 disables the clipping), "
                f"such as {DEFAULT_MAX_NORM}."
            )
        self.max_norm = max_norm

        self.register_buffer("alpha", torch.ones(len(self.tasks)))
        self.register_buffer("has_alpha", torch.tensor(False))
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))
        self._warned_no_solution = False

    def combine(self, gradients: torch.Tensor, context: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        fallback = 0.0
        if int(self.step) % self.update_weights_every == 0:
            alpha = self._solve(gradients)
            if alpha is None:
                fallback = 1.0
                self._use_previous_alpha(context)
            else:
                self.alpha.copy_(alpha)
                self.has_alpha.fill_(True)
        self.step.add_(1)

        alpha = self.alpha.to(device=gradients.device, dtype=torch.float32)
        direction = clip_norm(alpha @ gradients.float(), self.max_norm)
        logged = weights_logged(self.tasks, alpha)
        logged["nash_fallback"] = fallback
        return direction, logged

    def _solve(self, gradients: torch.Tensor) -> torch.Tensor | None:
        """Return alpha for the unscaled gradients as float32, or None when there is none or it overflows float32."""
        gram, scale = scaled_gram(gradients)
        scaled_alpha = nash_bargaining_weights(gram.cpu().double().numpy(), self.optim_niter)
        if scaled_alpha is None:
            return None
        # alpha solves the equation for G / scale, so the gradients G themselves need alpha / scale.
        alpha = torch.from_numpy(scaled_alpha / scale).float()
        if not bool(alpha.isfinite().all()):
            return None
        return alpha

    def _use_previous_alpha(self, context: StepContext) -> None:
        if not bool(self.has_alpha):
            raise MtbenchError(
                f"Nash-MTL found no task weights at training step {context.step}, its first weight update, so there "
                "are no previous weights to reuse. Either the task gradients have no Nash bargaining solution, because "
                "a convex combination of them is zero (a task gradient is zero, or gradients cancel), or Newton's method "
                "did not converge within optim_niter iterations. Check that every task loss depends on the shared "
                "parameters, raise optim_niter, or choose another method."
            )
        if not self._warned_no_solution:
            warnings.warn(
                f"Nash-MTL found no task weights at training step {context.step}: a convex combination of the task "
                "gradients is zero, or Newton's method did not converge within optim_niter iterations. This step and "
                "later such steps reuse the previous weights, and the logged value nash_fallback marks them.",
                RuntimeWarning,
                stacklevel=3,
            )
            self._warned_no_solution = True


def _positive_integer(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise MtbenchError(f"Invalid {name}={value!r} for method 'nash-mtl': use a whole number >= 1.")
    return int(value)
