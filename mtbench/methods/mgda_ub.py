"""MGDA-UB: MGDA on the task gradients with respect to the shared representation."""

from mtbench.methods.base import Hyperparameter
from mtbench.methods.gradient_method import GRADIENTS
from mtbench.methods.mgda import DEFAULT_MAX_ITERATIONS, DEFAULT_TOLERANCE, MGDA
from mtbench.methods.registry import register_method


@register_method
class MGDAUB(MGDA):
    """MGDA with weights computed from the gradients of the task losses with respect to the representation Z.

    From "Multi-Task Learning as Multi-Objective Optimization" (Ozan Sener
    and Vladlen Koltun, NeurIPS 2018), the method the authors propose and
    train. With Z the encoder output, the shared-parameter gradient is
    g_k = (dZ/dtheta)^T grad_Z L_k, so

        || sum_k w_k g_k || <= || dZ/dtheta || * || sum_k w_k grad_Z L_k ||.

    MGDA-UB minimises the right-hand side, the upper bound: it runs MGDA's
    Frank-Wolfe solver on the K rows grad_Z L_k (one entry per value of Z in
    the batch) and propagates d_Z = sum_k w_k grad_Z L_k back through the
    encoder. The encoder therefore receives sum_k w_k dL_k/dtheta at the cost
    of one encoder backward pass instead of K. The publication shows that, when
    dZ/dtheta has full rank, the result is either Pareto-stationary or a
    descent direction for every task.

    It is :class:`~mtbench.methods.mgda.MGDA` with ``gradients`` defaulting to
    "representation", and shares its hyper-parameters, solver
    (:func:`~mtbench.methods.mgda.frank_wolfe_weights`) and edge-case behaviour. The authors' sample
    configuration uses MGDA-UB with ``normalization_type`` "loss+" on CelebA,
    but their MultiMNIST runs used "none", the default here.
    """

    name = "mgda-ub"
    title = "Sener and Koltun, 2018: Multi-Task Learning as Multi-Objective Optimization"
    hyperparameters = (
        Hyperparameter("gradients", str, "representation", GRADIENTS.help),
        *MGDA.hyperparameters[1:],
    )

    def __init__(
        self,
        tasks: list[str],
        gradients: str = "representation",
        normalization: str = "none",
        max_iterations: int = DEFAULT_MAX_ITERATIONS,
        tolerance: float = DEFAULT_TOLERANCE,
    ) -> None:
        super().__init__(tasks, gradients, normalization, max_iterations, tolerance)
