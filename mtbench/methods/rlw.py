"""Random Loss Weighting: task weights drawn afresh at every training step."""

import torch

from mtbench.methods.base import Method, StepContext
from mtbench.methods.registry import register_method


def random_loss_weights(task_count: int) -> torch.Tensor:
    """Return lambda = softmax(z) with z ~ N(0, I_K), a float32 vector on the CPU.

    The weights are positive and sum to 1. z is drawn from torch's global CPU
    generator, which the trainer seeds with the run's seed, so a run draws the
    same weights for the same seed on any device. Each call advances that
    generator by K normal draws.
    """
    z = torch.randn(task_count)
    return torch.softmax(z, dim=0)


@register_method
class RandomLossWeighting(Method):
    """Minimise sum_k lambda_k L_k with lambda = softmax(z), z ~ N(0, I), drawn again at every step.

    From "Reasonable Effectiveness of Random Weighting: A Litmus Test for
    Multi-Task Learning" (Lin, Ye, Xu, Zhang and Tsang, TMLR 2022). The weights
    do not depend on the losses or the model. They are detached constants, so
    each step descends along a random convex combination of the task losses.
    The weights sum to 1, not to K, so the objective is on the scale of the
    mean task loss rather than of the sum that ``equal`` minimises.

    No hyper-parameters: the published default samples z from the standard
    normal distribution.
    """

    name = "rlw"
    title = (
        "Lin, Ye, Xu, Zhang and Tsang, 2022: Reasonable Effectiveness of Random Weighting: "
        "A Litmus Test for Multi-Task Learning"
    )

    def loss(self, context: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        losses = context.loss_vector(self.tasks)
        weights = random_loss_weights(len(self.tasks))

        total = (weights.to(losses) * losses).sum()
        logged = {f"weight/{task}": value for task, value in zip(self.tasks, weights.tolist())}
        return total, logged
