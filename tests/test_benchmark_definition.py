import shutil

import pytest

from mtbench.benchmarks.definition import read_definition
from mtbench.errors import MtbenchError
from mtbench.paths import project_root


def test_multidigitmnist_definition():
    definition = read_definition("multidigitmnist")
    assert definition.task_names == ["left", "right"]
    assert definition.training["batch_size"] == 64
    assert definition.selection_metric == "harmonic_accuracy"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("epochs = 12", 'epochs = "twelve"', "training.epochs = 'twelve' must be a positive number"),
        ('optimizer = "adam"', 'optimizer = "sgd"', "'sgd' is not supported"),
        ('selection_metric = "harmonic_accuracy"', 'selection_metric = "foo"', "selection_metric = 'foo'"),
        ('classes = ["0", "2", "4", "6", "8"]', 'classes = ["0"]', "task 'left' needs at least two classes"),
        ("[[tasks]]", "[[tasks", "Invalid benchmark definition"),
    ],
)
def test_invalid_definition_is_named(tmp_path, monkeypatch, old, new, message):
    copy = tmp_path / "datasets" / "multidigitmnist"
    shutil.copytree(project_root() / "datasets" / "multidigitmnist", copy)
    path = copy / "benchmark.toml"
    path.write_text(path.read_text().replace(old, new, 1))
    monkeypatch.setenv("MTBENCH_ROOT", str(tmp_path))
    with pytest.raises(MtbenchError, match=message):
        read_definition("multidigitmnist")


def test_missing_definition(tmp_path, monkeypatch):
    monkeypatch.setenv("MTBENCH_ROOT", str(tmp_path))
    with pytest.raises(MtbenchError, match="Benchmark definition not found"):
        read_definition("multidigitmnist")
