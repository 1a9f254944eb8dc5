"""Benchmark definitions stored as data in ``datasets/<name>/benchmark.toml``."""

import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from mtbench.errors import MtbenchError
from mtbench.metrics.dense import MEAN_TASK_SCORE, METRIC_DIRECTIONS, TASK_METRICS
from mtbench.paths import project_root

DENSE_KINDS = tuple(TASK_METRICS)
TASK_KINDS = ("classification", *DENSE_KINDS)
# The losses each task kind accepts. The first one is the default.
TASK_LOSSES = {
    "classification": ("cross_entropy",),
    "segmentation": ("cross_entropy",),
    "depth": ("l1", "mse"),
    "normal": ("cosine", "mse"),
}
AUGMENTATIONS = ("horizontal_flip",)


@dataclass(frozen=True)
class TaskDefinition:
    """One task: its name (also the prepared data field of dense tasks), kind, class names and loss."""

    name: str
    kind: str
    classes: tuple[str, ...] = ()
    loss: str = ""


@dataclass(frozen=True)
class BenchmarkDefinition:
    """The fixed protocol of a benchmark: tasks, model, selection metric and training defaults.

    Dense benchmarks also set ``input_size`` and ``target_size`` as (height,
    width) in pixels, the default ``model_options`` of their model, and the
    ``augmentation`` applied to training batches.
    """

    name: str
    protocol: str
    title: str
    model: str
    selection_metric: str
    tasks: tuple[TaskDefinition, ...]
    training: dict = field(default_factory=dict)
    input_size: tuple[int, ...] | None = None
    target_size: tuple[int, ...] | None = None
    model_options: dict = field(default_factory=dict)
    augmentation: tuple[str, ...] = ()

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
            TaskDefinition(task["name"], task["kind"], tuple(task.get("classes", ())), task.get("loss", _default_loss(task["kind"])))
            for task in data["tasks"]
        )
        definition = BenchmarkDefinition(
            name=data["name"],
            protocol=data["protocol"],
            title=data["title"],
            model=data["model"],
            selection_metric=data["selection_metric"],
            tasks=tasks,
            training=dict(data.get("training", {})),
            input_size=_optional_tuple(data.get("input_size")),
            target_size=_optional_tuple(data.get("target_size")),
            model_options=dict(data.get("model_options", {})),
            augmentation=tuple(data.get("augmentation", ())),
        )
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as error:
        raise MtbenchError(f"Invalid benchmark definition {path}: {error}. Restore the file from the repository.") from error

    problem = _find_problem(definition)
    if problem:
        raise MtbenchError(f"Invalid benchmark definition {path}: {problem}. Restore the file from the repository.")
    return definition


def _default_loss(kind: str) -> str:
    return TASK_LOSSES.get(kind, ("",))[0]


def _optional_tuple(value: object) -> tuple | None:
    return None if value is None else tuple(value)


# The trainer implements only Adam, so a definition may not ask for another optimiser.
SUPPORTED_OPTIMIZERS = ("adam",)


def _find_problem(definition: BenchmarkDefinition) -> str | None:
    """Return what is wrong with ``definition``, or None."""
    for find in (_find_training_problem, _find_task_problem, _find_dense_problem, _find_selection_problem):
        problem = find(definition)
        if problem:
            return problem
    return None


def _is_positive_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _find_training_problem(definition: BenchmarkDefinition) -> str | None:
    training = definition.training
    for key, kind in (("epochs", int), ("batch_size", int), ("learning_rate", (int, float)), ("evaluation_batch_size", int), ("lr_decay_every", int)):
        value = training.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind) or value <= 0):
            return f"training.{key} = {value!r} must be a positive number"
    factor = training.get("lr_decay_factor")
    if factor is not None and (isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor <= 1):
        return f"training.lr_decay_factor = {factor!r} must be a number in (0, 1]"
    if training.get("optimizer", "adam") not in SUPPORTED_OPTIMIZERS:
        return f"training.optimizer = {training['optimizer']!r} is not supported (use one of {SUPPORTED_OPTIMIZERS})"
    return None


def _find_task_problem(definition: BenchmarkDefinition) -> str | None:
    if not definition.tasks:
        return "no [[tasks]] defined"
    names = definition.task_names
    if len(set(names)) != len(names):
        return f"task names {names} are not distinct"
    for task in definition.tasks:
        if task.kind not in TASK_KINDS:
            return f"task '{task.name}' has unknown kind {task.kind!r} (use one of {TASK_KINDS})"
        if task.kind in ("classification", "segmentation") and len(task.classes) < 2:
            return f"task '{task.name}' needs at least two classes"
        if task.loss not in TASK_LOSSES[task.kind]:
            return f"task '{task.name}' has loss {task.loss!r}, but a {task.kind} task accepts {TASK_LOSSES[task.kind]}"
    return None


def _find_dense_problem(definition: BenchmarkDefinition) -> str | None:
    dense = any(task.kind in DENSE_KINDS for task in definition.tasks)
    for key in ("input_size", "target_size"):
        size = getattr(definition, key)
        if size is None and dense:
            return f"{key} is missing: dense tasks need it as [height, width] in pixels"
        if size is not None and (len(size) != 2 or not all(_is_positive_integer(side) for side in size)):
            return f"{key} = {list(size)!r} must be [height, width], two positive integers"
    unknown = [name for name in definition.augmentation if name not in AUGMENTATIONS]
    if unknown:
        return f"augmentation {unknown!r} is not supported (use names from {AUGMENTATIONS})"
    return None


def selection_metric_choices(definition: BenchmarkDefinition) -> set[str]:
    """Return the validation metrics a definition may select on, only higher-is-better ones because the trainer maximises."""
    choices: set[str] = set()
    for task in definition.tasks:
        if task.kind == "classification":
            choices |= {"harmonic_accuracy", f"{task.name}_accuracy"}
        elif task.kind in DENSE_KINDS:
            choices.add(MEAN_TASK_SCORE)
            choices |= {f"{task.name}_{metric}" for metric in TASK_METRICS[task.kind] if METRIC_DIRECTIONS[metric] == "higher"}
    return choices


def _find_selection_problem(definition: BenchmarkDefinition) -> str | None:
    choices = selection_metric_choices(definition)
    if definition.selection_metric not in choices:
        return f"selection_metric = {definition.selection_metric!r} is not one of {sorted(choices)}"
    return None
