"""The selection metric, tasks and metric names a leaderboard table takes from a benchmark definition.

The definition is ``datasets/<benchmark>/benchmark.toml``. A table built from
records takes its selection metric and tasks from them. A table without
multi-task records, such as one showing published rows only, takes them from
the definition, so that its columns match those of the runs that will fill
it. The metric names let a published file's columns be checked.
"""

from mtbench.benchmarks.definition import DENSE_KINDS, BenchmarkDefinition, definitions_folder, read_definition
from mtbench.metrics.dense import MEAN_TASK_SCORE, task_metric_names


def find_definition(benchmark: str) -> BenchmarkDefinition | None:
    """Return the definition of ``benchmark``, or None when the repository has no ``datasets/<benchmark>/benchmark.toml``.

    Raises MtbenchError for a definition that exists but is invalid.
    """
    if not (definitions_folder() / benchmark / "benchmark.toml").is_file():
        return None
    return read_definition(benchmark)


def recorded_metric_names(definition: BenchmarkDefinition) -> set[str]:
    """Return the names of the test metrics that multi-task and single-task runs of ``definition`` record.

    Classification tasks record ``<task>_accuracy`` and, with two or more,
    ``harmonic_accuracy``. Dense tasks record ``<task>_<metric>`` for every
    metric of their kind and, with two or more, ``mean_task_score``.
    """
    classification = [task.name for task in definition.tasks if task.kind == "classification"]
    dense = [task for task in definition.tasks if task.kind in DENSE_KINDS]

    names = {f"{task}_accuracy" for task in classification}
    if len(classification) > 1:
        names.add("harmonic_accuracy")
    for task in dense:
        names.update(task_metric_names(task.name, task.kind))
    if len(dense) > 1:
        names.add(MEAN_TASK_SCORE)
    return names
