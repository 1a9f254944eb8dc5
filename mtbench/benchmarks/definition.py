"""Benchmark definitions stored as data in ``datasets/<name>/benchmark.toml``."""

import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from mtbench.errors import MtbenchError
from mtbench.paths import project_root


@dataclass(frozen=True)
class TaskDefinition:
    name: str
    kind: str
    classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class BenchmarkDefinition:
    """The fixed protocol of a benchmark: tasks, model, selection metric and training defaults."""

    name: str
    protocol: str
    title: str
    model: str
    selection_metric: str
    tasks: tuple[TaskDefinition, ...]
    training: dict = field(default_factory=dict)

    @property
    def task_names(self) -> list[str]:
        return [task.name for task in self.tasks]


def definitions_folder() -> Path:
    return project_root() / "datasets"


def read_definition(name: str) -> BenchmarkDefinition:
    """Read ``datasets/<name>/benchmark.toml``."""
    path = definitions_folder() / name / "benchmark.toml"
    if not path.is_file():
        raise MtbenchError(
            f"Benchmark definition not found: {path}. Run mtbench from its repository checkout "
            "or set MTBENCH_ROOT to the folder that contains datasets/."
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        tasks = tuple(
            TaskDefinition(task["name"], task["kind"], tuple(task.get("classes", ()))) for task in data["tasks"]
        )
        definition = BenchmarkDefinition(
            name=data["name"],
            protocol=data["protocol"],
            title=data["title"],
            model=data["model"],
            selection_metric=data["selection_metric"],
            tasks=tasks,
            training=dict(data.get("training", {})),
        )
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as error:
        raise MtbenchError(f"Invalid benchmark definition {path}: {error}. Restore the file from the repository.") from error

    problem = _find_problem(definition)
    if problem:
        raise MtbenchError(f"Invalid benchmark definition {path}: {problem}. Restore the file from the repository.")
    return definition


# The trainer implements only Adam, so a definition may not ask for another optimiser.
SUPPORTED_OPTIMIZERS = ("adam",)


def _find_problem(definition: BenchmarkDefinition) -> str | None:
    """Return what is wrong with ``definition``, or None."""
    training = definition.training
    for key, kind in (("epochs", int), ("batch_size", int), ("learning_rate", (int, float))):
        value = training.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind) or value <= 0):
            return f"training.{key} = {value!r} must be a positive number"
    if training.get("optimizer", "adam") not in SUPPORTED_OPTIMIZERS:
        return f"training.optimizer = {training['optimizer']!r} is not supported (use one of {SUPPORTED_OPTIMIZERS})"
    if not definition.tasks:
        return "no [[tasks]] defined"
    for task in definition.tasks:
        if task.kind == "classification" and len(task.classes) < 2:
            return f"task '{task.name}' needs at least two classes"
    metrics = {"harmonic_accuracy"} | {f"{task.name}_accuracy" for task in definition.tasks}
    if definition.selection_metric not in metrics:
        return f"selection_metric = {definition.selection_metric!r} is not one of {sorted(metrics)}"
    return None
