"""MoCo: tracked task gradients Y and simplex weights lambda updated by a projected step on Y^T Y lambda."""

import math

import torch

from mtbench.errors import MtbenchError
from mtbench.methods._gram import scaled_gram, unit_rows
from mtbench.methods._simplex import project_onto_simplex
from mtbench.methods._state import adopt_buffer_shapes
from mtbench.methods.base import Hyperparameter, StepContext
from mtbench.methods.gradient_method import GRADIENTS, GradientMethod, weights_logged
from mtbench.methods.registry import register_method

DEFAULT_BETA = 0.5
DEFAULT_BETA_SIGMA = 0.5
DEFAULT_GAMMA = 0.1
DEFAULT_GAMMA_SIGMA = 0.5
DEFAULT_RHO = 0.0


def weight_step(tracked_gradients: torch.Tensor, weights: torch.Tensor, gamma_t: float, rho: float) -> torch.Tensor:
    """Return Pi(lambda - gamma_t (Y^T Y + rho I) lambda), with Pi the projection onto the simplex, in float32.

    ``tracked_gradients`` contains the y_k as rows, so Y^T Y is their K x K Gram
    matrix. It is formed from Y divided by its largest entry and multiplied
    back in float64, so neither tiny nor huge gradients underflow or
    overflow. A huge step only pushes lambda to a vertex of the simplex.
    """
    gram, scale = scaled_gram(tracked_gradients)
    gram = gram.cpu().double()
    weights_double = weights.cpu().double()
    product = scale**2 * (gram @ weights_double) + rho * weights_double
    return project_onto_simplex(weights_double - gamma_t * product).float().to(weights.device)


@register_method
class MoCo(GradientMethod):
    """Follow d = Y lambda, with y_k tracking the task gradients and lambda on the simplex.

    From "Mitigating Gradient Bias in Multi-objective Learning: A Provably
    Convergent Approach" (Fernando, Shen, Liu, Chaudhury, Murugesan and Chen,
    ICLR 2023). At training step t (counted from 1), with h_k the stochastic
    gradient of task k:

        y_k    <- y_k - beta_t (y_k - h_k),                     beta_t  = beta / t^beta_sigma
        lambda <- Pi(lambda - gamma_t (Y^T Y + rho I) lambda),  gamma_t = gamma / t^gamma_sigma
        d       = Y lambda = sum_k lambda_k y_k

    where Pi is the Euclidean projection onto the simplex
    (:func:`project_onto_simplex`). The tracking variables y_k correct the
    bias of weights computed from a single batch. They start at zero and
    lambda at 1 / K, as in LibMTL's implementation, which its authors based
    on code from the MoCo authors. TorchJD 0.18 has no MoCo, so it is written here.

    Hyper-parameters, with LibMTL's defaults: ``beta`` (0.5), ``beta_sigma``
    (0.5), ``gamma`` (0.1), ``gamma_sigma`` (0.5), ``rho`` (0). With
    ``normalize_gradients`` (default false) each h_k is replaced by
    L_k g_k / ||g_k||, as LibMTL's implementation does. The lambda step has
    units of gamma times squared gradient norm, so without this option
    gamma's effect depends on the scale of the gradients.

    Edge cases: zero gradients leave lambda unchanged and give a zero
    direction (y_k decays towards zero). Opposite gradients g and -g keep
    lambda at 1 / K and give d = 0. Tiny gradients give a negligible lambda
    step; huge ones push lambda to a vertex of the simplex. A single task
    has lambda = 1 and d = y.

    NOTE: the update and defaults were checked against LibMTL's code, not
    against the publication's text.

    Logged per step: ``weight/<task>``, the lambda_k used for the direction.
    Y, lambda and the step count are buffers, saved in checkpoints.
    """

    name = "moco"
    title = (
        "Fernando, Shen, Liu, Chaudhury, Murugesan and Chen, 2023: Mitigating Gradient Bias in Multi-objective Learning: "
        "A Provably Convergent Approach"
    )
    hyperparameters = (
        Hyperparameter("beta", float, DEFAULT_BETA, "step size of the tracking variables y_k towards the task gradients, in (0, 1]"),
        Hyperparameter("beta_sigma", float, DEFAULT_BETA_SIGMA, "decay exponent: step t uses beta / t^beta_sigma (>= 0)"),
        Hyperparameter(
            "gamma", float, DEFAULT_GAMMA, "step size of the task weights lambda, in 1 / (squared gradient norm) (>= 0)"
        ),
        Hyperparameter("gamma_sigma", float, DEFAULT_GAMMA_SIGMA, "decay exponent: step t uses gamma / t^gamma_sigma (>= 0)"),
        Hyperparameter("rho", float, DEFAULT_RHO, "l2 regularisation of the lambda step, added as rho I to Y^T Y (>= 0)"),
        Hyperparameter(
            "normalize_gradients", bool, False, "track L_k g_k / ||g_k|| instead of g_k, as LibMTL's implementation does"
        ),
        GRADIENTS,
    )
    representation_refusal = (
        "it tracks each task's gradient across training steps, and the representation gradients of different "
        "batches belong to different samples; their number of rows also changes when the last batch is smaller."
    )

    def __init__(
        self,
        tasks: list[str],
        beta: float = DEFAULT_BETA,
        beta_sigma: float = DEFAULT_BETA_SIGMA,
        gamma: float = DEFAULT_GAMMA,
        gamma_sigma: float = DEFAULT_GAMMA_SIGMA,
        rho: float = DEFAULT_RHO,
        normalize_gradients: bool = False,
        gradients: str = "parameters",
    ) -> None:
        super().__init__(tasks, gradients)
        self.beta = _checked(beta, "beta", minimum=0.0, maximum=1.0, open_minimum=True)
        self.beta_sigma = _checked(beta_sigma, "beta_sigma")
        self.gamma = _checked(gamma, "gamma")
        self.gamma_sigma = _checked(gamma_sigma, "gamma_sigma")
        self.rho = _checked(rho, "rho")
        if not isinstance(normalize_gradients, bool):
            raise MtbenchError(f"Invalid normalize_gradients={normalize_gradients!r} for method 'moco': use true or false.")
        self.normalize_gradients = normalize_gradients

        task_count = len(self.tasks)
        # K x N once the first step has fixed N, the number of shared parameters.
        self.register_buffer("tracked_gradients", torch.zeros(0))
        self.register_buffer("task_weights", torch.full((task_count,), 1.0 / task_count))
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

    def combine(self, gradients: torch.Tensor, context: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        targets = gradients.detach().float()
        if self.normalize_gradients:
            losses = context.loss_vector(self.tasks).detach().float().to(targets.device)
            targets = unit_rows(targets).mul_(losses.unsqueeze(1))

        tracked = self._tracked_for(targets)
        self.step.add_(1)
        step = int(self.step)
        beta_t = self.beta / step**self.beta_sigma
        gamma_t = self.gamma / step**self.gamma_sigma
        # y - beta_t (y - h) = (1 - beta_t) y + beta_t h, in place so that no K x N temporary is made.
        tracked.mul_(1.0 - beta_t).add_(targets, alpha=beta_t)
        self.tracked_gradients = tracked

        weights = weight_step(tracked, self.task_weights, gamma_t, self.rho)
        self.task_weights.copy_(weights)

        direction = weights.to(tracked.device) @ tracked
        return direction, weights_logged(self.tasks, weights)

    def _tracked_for(self, targets: torch.Tensor) -> torch.Tensor:
        if self.tracked_gradients.numel() == 0:
            return torch.zeros_like(targets)
        if self.tracked_gradients.shape != targets.shape:
            raise MtbenchError(
                f"MoCo's tracked gradients have shape {tuple(self.tracked_gradients.shape)} but the task gradients have "
                f"shape {tuple(targets.shape)}, so the method state belongs to another model. Build a new method for this model."
            )
        return self.tracked_gradients.to(targets.device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        adopt_buffer_shapes(self, state_dict, prefix, ["tracked_gradients"])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _checked(value: float, name: str, minimum: float = 0.0, maximum: float = math.inf, open_minimum: bool = False) -> float:
    """Return ``value`` as a float. Raise MtbenchError unless it lies in [minimum, maximum], or (minimum, maximum] when open."""
    value = float(value)
    below = value <= minimum if open_minimum else value < minimum
    if not math.isfinite(value) or below or value > maximum:
        low = "(" if open_minimum else "["
        high = f"{maximum:g}]" if math.isfinite(maximum) else "infinity)"
        raise MtbenchError(f"Invalid {name}={value} for method 'moco': use a number in {low}{minimum:g}, {high}.")
    return value
