"""Uncertainty weighting: task weights learned as homoscedastic log-variances."""

import math
from collections.abc import Sequence

import torch
from torch import nn

from mtbench.errors import MtbenchError
from mtbench.methods.base import Hyperparameter, Method, StepContext
from mtbench.methods.registry import register_method

FORMS = ("kendall", "simplified")

# After every optimiser step each log-variance is projected onto
# [-LOG_VARIANCE_BOUND, LOG_VARIANCE_BOUND], so a task weight exp(-s) stays
# within [4.5e-5, 22026]. Without the bound a task whose loss reaches 0 drives s
# towards -infinity, and exp(-s) * 0 becomes NaN once exp(-s) overflows.
LOG_VARIANCE_BOUND = 10.0

ALL_TASKS = "all"


def uncertainty_weighted_loss(
    losses: torch.Tensor, log_variances: torch.Tensor, classification: Sequence[bool], form: str
) -> torch.Tensor:
    """Return sum_k (c_k exp(-s_k) L_k + r s_k) for task losses L and log-variances s = log sigma^2.

    ``losses`` and ``log_variances`` are vectors with one entry per task, and
    ``classification[k]`` is True when task k uses the classification form.
    With ``form="kendall"`` a regression task has c_k = 1/2, from
    L / (2 sigma^2) + log sigma, and a classification task has c_k = 1, from
    L / sigma^2 + log sigma. Both have r = 1/2. With ``form="simplified"``
    every task has c_k = 1 and r = 1, which is twice the regression form.
    The result is differentiable with respect to both arguments.

    Losses (1, 4) with s = (0, 0) give 2.5 when both tasks use the regression
    form, 3.0 when the first uses the classification form, and 5.0 simplified.
    """
    if form not in FORMS:
        raise MtbenchError(f"Invalid uncertainty form {form!r}: use one of {', '.join(FORMS)}.")

    if form == "simplified":
        return (torch.exp(-log_variances) * losses + log_variances).sum()

    loss_scales = torch.tensor([1.0 if is_classification else 0.5 for is_classification in classification])
    loss_scales = loss_scales.to(device=losses.device, dtype=losses.dtype)
    return (loss_scales * torch.exp(-log_variances) * losses + 0.5 * log_variances).sum()


def parse_classification_tasks(text: str, tasks: list[str]) -> tuple[bool, ...]:
    """Return, per task in ``tasks``, whether ``text`` names it as a classification task.

    ``text`` is a comma-separated list of task names. The word "all" marks
    every task, so a task that is itself named "all" cannot be marked alone,
    and an empty string marks none. Raises MtbenchError when a name is not one
    of ``tasks``.
    """
    if not isinstance(text, str):
        raise MtbenchError(
            f"Invalid classification_tasks {text!r}: write the task names as one comma-separated string, e.g. \"left,right\"."
        )

    if text.strip() == ALL_TASKS:
        return tuple(True for _ in tasks)

    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in tasks]
    if unknown:
        raise MtbenchError(
            f"Invalid classification_tasks {text!r}: not a trained task: {', '.join(unknown)}. "
            f"Name tasks from {', '.join(tasks)}, or write \"all\" or an empty string."
        )
    return tuple(task in names for task in tasks)


def _check_initial_log_variance(value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and -LOG_VARIANCE_BOUND <= value <= LOG_VARIANCE_BOUND):
        raise MtbenchError(
            f"Invalid initial_log_variance {value}: use a number in "
            f"[{-LOG_VARIANCE_BOUND:g}, {LOG_VARIANCE_BOUND:g}] (0 starts every task at sigma = 1)."
        )
    return value


@register_method
class UncertaintyWeighting(Method):
    """Weight each task loss by a learned precision exp(-s_k) and add a penalty on s_k = log sigma_k^2.

    From "Multi-Task Learning Using Uncertainty to Weigh Losses for Scene
    Geometry and Semantics" (Kendall, Gal and Cipolla, CVPR 2018). Each task
    has one learnable log-variance s_k, a parameter of this method that the
    trainer's Adam optimiser updates together with the model. The objective per
    task is given by :func:`uncertainty_weighted_loss`. For a fixed loss L the
    regression form is minimal at s = log L, the classification form at
    s = log(2 L), and the simplified form at s = log L.

    The task kinds are set by ``classification_tasks``. Its default "all" fits
    MultiDigitMNIST, whose tasks ``left`` and ``right`` are both digit
    classification, so each uses exp(-s) L + s / 2. At s = 0 this objective
    equals the unweighted sum of the losses. ``form="simplified"`` ignores
    ``classification_tasks``.

    After each optimiser step the log-variances are clamped to
    [-LOG_VARIANCE_BOUND, LOG_VARIANCE_BOUND]. The clamp acts on the parameter
    and not in the forward pass, so the gradient at the bound stays non-zero
    and s can move back inside.
    """

    name = "uncertainty"
    title = "Kendall, Gal and Cipolla, 2018: Multi-Task Learning Using Uncertainty to Weigh Losses for Scene Geometry and Semantics"
    hyperparameters = (
        Hyperparameter(
            "form",
            str,
            "kendall",
            "kendall: exp(-s) L + s/2 for classification tasks and exp(-s) L / 2 + s/2 for the others; "
            "simplified: exp(-s) L + s for every task",
        ),
        Hyperparameter(
            "classification_tasks",
            str,
            ALL_TASKS,
            "comma-separated names of the tasks that use the classification form; \"all\" for every task, empty for none",
        ),
        Hyperparameter(
            "initial_log_variance",
            float,
            0.0,
            f"starting value of every s = log sigma^2 (dimensionless), within [-{LOG_VARIANCE_BOUND:g}, {LOG_VARIANCE_BOUND:g}]",
        ),
    )

    def __init__(
        self,
        tasks: list[str],
        form: str = "kendall",
        classification_tasks: str = ALL_TASKS,
        initial_log_variance: float = 0.0,
    ) -> None:
        super().__init__(tasks)
        if form not in FORMS:
            raise MtbenchError(f"Invalid form {form!r} for method 'uncertainty': use one of {', '.join(FORMS)}.")

        self.form = form
        self.classification_tasks = classification_tasks
        self.classification = parse_classification_tasks(classification_tasks, self.tasks)
        self.initial_log_variance = _check_initial_log_variance(initial_log_variance)
        self.log_variances = nn.Parameter(torch.full((len(self.tasks),), self.initial_log_variance))

    def loss(self, context: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        losses = context.loss_vector(self.tasks)
        total = uncertainty_weighted_loss(losses, self.log_variances, self.classification, self.form)

        values = self.log_variances.detach().cpu().tolist()
        logged = {f"log_variance/{task}": value for task, value in zip(self.tasks, values)}
        return total, logged

    def after_optimizer_step(self) -> None:
        with torch.no_grad():
            self.log_variances.clamp_(-LOG_VARIANCE_BOUND, LOG_VARIANCE_BOUND)
