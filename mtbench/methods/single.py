"""Single-task learning: one model per task, each with one decoder."""

from mtbench.errors import MtbenchError
from mtbench.methods.equal import EqualWeights
from mtbench.methods.registry import register_method


@register_method
class SingleTask(EqualWeights):
    """Train a separate model with a single decoder for each task.

    ``mtbench run --method single`` trains one model per task of the benchmark,
    one after the other, and writes one record per task; the leaderboard joins
    the records of one seed into a single row. Each model minimises its task's
    loss alone.
    """

    name = "single"
    title = "Single-task models (one network per task)"
    single_task = True

    def __init__(self, tasks: list[str]) -> None:
        if len(tasks) != 1:
            raise MtbenchError(f"Method 'single' trains one task per model, but received tasks {tasks}.")
        super().__init__(tasks)
