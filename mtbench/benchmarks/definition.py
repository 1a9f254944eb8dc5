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
        return BenchmarkDefinition(
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
