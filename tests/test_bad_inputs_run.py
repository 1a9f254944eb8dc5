"""Bad inputs to `mtbench run` and `mtbench leaderboard`.

The cases are broken plugins, diverging training, foreign or damaged
checkpoints, damaged results files, and full or read-only output folders.

Every test starts from the outputs of one finished run (a results file with
its record, a cosines file and a checkpoint) and checks that the failed
command leaves them byte for byte.
"""

import errno
import importlib.util
import json
import shutil

import pytest
import torch

from mtbench.benchmarks.multidigitmnist import MultiDigitMNISTBenchmark
from mtbench.cli.main import main
from mtbench.train.config import configuration_id, run_id_for
from test_bad_inputs import assert_user_error, fail_writes_under, isolated_paths, run_cli, tree_digest  # noqa: F401

RUN_OPTIONS = ("--epochs", "1", "--width", "4", "--device", "cpu")


@pytest.fixture(scope="module")
def finished_run(tiny_data_root, tmp_path_factory):
    """The leaderboard and runs folders of one finished 1-epoch run of equal weights, seed 0."""
    base = tmp_path_factory.mktemp("finished")
    status = main(
        ["run", "--method", "equal", *RUN_OPTIONS, "--data-root", str(tiny_data_root),
         "--leaderboard-dir", str(base / "leaderboard"), "--runs-dir", str(base / "runs")]
    )  # fmt: skip
    assert status == 0
    return base


@pytest.fixture
def outputs(finished_run, tmp_path, capsys):
    """Writable copies of the finished run's leaderboard and runs folders, as (leaderboard, runs)."""
    for name in ("leaderboard", "runs"):
        shutil.copytree(finished_run / name, tmp_path / name)
    capsys.readouterr()
    return tmp_path / "leaderboard", tmp_path / "runs"


def run_method(capsys, tiny_data_root, outputs, *options):
    leaderboard, runs = outputs
    return run_cli(capsys, "run", *RUN_OPTIONS, "--data-root", tiny_data_root, "--leaderboard-dir", leaderboard, "--runs-dir", runs, *options)


def results_file(leaderboard):
    return leaderboard / "results" / "multidigitmnist.jsonl"


def only_checkpoint(runs):
    (checkpoint,) = runs.glob("multidigitmnist/*/checkpoint.pt")
    return checkpoint


def interrupted_checkpoint(leaderboard, runs):
    """Return the checkpoint of the run after removing its record, as if the run had been killed before its end."""
    results_file(leaderboard).write_text("")
    return only_checkpoint(runs)


def write_plugin(tmp_path, source: str):
    plugin = tmp_path / "plugin_method.py"
    plugin.write_text(source)
    return plugin


# Plugins and training.


def test_plugin_that_raises_on_import(capsys, tiny_data_root, outputs, tmp_path):
    plugin = write_plugin(tmp_path, "raise RuntimeError('licence server unreachable')\n")
    digest = tree_digest(tmp_path / "leaderboard") | tree_digest(tmp_path / "runs")

    result = run_method(capsys, tiny_data_root, outputs, "--plugin", plugin, "--method", "equal")
    assert_user_error(result, f"Plugin {plugin} failed to import: RuntimeError: licence server unreachable", "line 1")
    assert tree_digest(tmp_path / "leaderboard") | tree_digest(tmp_path / "runs") == digest


def test_plugin_that_registers_nothing(capsys, tiny_data_root, outputs, tmp_path):
    plugin = write_plugin(tmp_path, "from mtbench.methods import Method\n\nclass Unregistered(Method):\n    name = 'unregistered-test'\n")
    digest = tree_digest(tmp_path / "leaderboard") | tree_digest(tmp_path / "runs")

    result = run_method(capsys, tiny_data_root, outputs, "--plugin", plugin, "--method", "unregistered-test")
    assert_user_error(result, f"Plugin {plugin} defines Unregistered but registered no method. Decorate the class with @register_method")
    assert tree_digest(tmp_path / "leaderboard") | tree_digest(tmp_path / "runs") == digest


DIRECTION_PLUGIN = """
import torch
from mtbench.methods import register_method
from mtbench.methods.gradient_method import GRADIENTS, GradientMethod


@register_method
class ShortDirection(GradientMethod):
    name = "short-direction-test"
    hyperparameters = (GRADIENTS,)

    def combine(self, gradients, context):
        return gradients.sum(dim=0)[:-1], {}


@register_method
class MatrixDirection(GradientMethod):
    name = "matrix-direction-test"
    hyperparameters = (GRADIENTS,)

    def combine(self, gradients, context):
        return gradients, {}


@register_method
class InfiniteDirection(GradientMethod):
    name = "infinite-direction-test"
    hyperparameters = (GRADIENTS,)

    def combine(self, gradients, context):
        return gradients.sum(dim=0) * float("inf"), {}
"""


@pytest.fixture(scope="module")
def direction_plugin(tmp_path_factory):
    """One file for the whole module, because the registry refuses a method name that another file registered."""
    return write_plugin(tmp_path_factory.mktemp("plugin"), DIRECTION_PLUGIN)


@pytest.mark.parametrize(("method", "shape"), [("short-direction-test", "(179,)"), ("matrix-direction-test", "(2, 180)")])
def test_plugin_direction_of_wrong_shape(capsys, tiny_data_root, outputs, tmp_path, direction_plugin, method, shape):
    digest = tree_digest(tmp_path / "leaderboard")

    result = run_method(capsys, tiny_data_root, outputs, "--plugin", direction_plugin, "--method", method)
    assert_user_error(result, f"A method returned a direction of shape {shape} for 180 shared values")
    assert tree_digest(tmp_path / "leaderboard") == digest


def test_plugin_direction_error_names_method_and_step(capsys, tiny_data_root, outputs, direction_plugin):
    result = run_method(capsys, tiny_data_root, outputs, "--plugin", direction_plugin, "--method", "short-direction-test")
    assert_user_error(result, "Method 'short-direction-test'", "training step 0")


def test_plugin_nonfinite_direction(capsys, tiny_data_root, outputs, tmp_path, direction_plugin):
    digest = tree_digest(tmp_path / "leaderboard")

    result = run_method(capsys, tiny_data_root, outputs, "--plugin", direction_plugin, "--method", "infinite-direction-test")
    assert_user_error(result, "Method 'infinite-direction-test' produced NaN or infinite gradients at training step 0", "no record was written")
    assert tree_digest(tmp_path / "leaderboard") == digest


def test_plugin_loss_not_a_scalar(capsys, tiny_data_root, outputs, tmp_path):
    plugin = write_plugin(
        tmp_path,
        "import torch\n"
        "from mtbench.methods import Method, register_method\n"
        "@register_method\n"
        "class VectorLoss(Method):\n"
        "    name = 'vector-loss-test'\n"
        "    def loss(self, context):\n"
        "        return torch.stack(list(context.task_losses.values())), {}\n",
    )
    digest = tree_digest(tmp_path / "leaderboard")

    result = run_method(capsys, tiny_data_root, outputs, "--plugin", plugin, "--method", "vector-loss-test")
    assert_user_error(result, "Method 'vector-loss-test' failed at training step 0: RuntimeError", "a scalar tensor")
    assert tree_digest(tmp_path / "leaderboard") == digest


def test_nan_loss_in_training(capsys, monkeypatch, tiny_data_root, outputs, tmp_path):
    original = MultiDigitMNISTBenchmark.task_loss
    calls = {"count": 0}

    def loss_with_nan(self, task, output, target):
        calls["count"] += 1
        loss = original(self, task, output, target)
        # Two tasks per step: call 6 is task 'right' of step 2.
        return loss * float("nan") if calls["count"] == 6 else loss

    monkeypatch.setattr(MultiDigitMNISTBenchmark, "task_loss", loss_with_nan)
    digest = tree_digest(tmp_path / "leaderboard") | tree_digest(tmp_path / "runs")

    result = run_method(capsys, tiny_data_root, outputs, "--method", "equal", "--seed", "1")
    assert_user_error(result, "The loss of task 'right' is nan at training step 2 with method 'equal'", "no record was written")
    assert tree_digest(tmp_path / "leaderboard") | tree_digest(tmp_path / "runs") == digest


# Checkpoints for --resume.


def test_resume_from_checkpoint_of_another_run(capsys, tiny_data_root, outputs):
    leaderboard, runs = outputs
    checkpoint = interrupted_checkpoint(leaderboard, runs)
    torch.save({**torch.load(checkpoint, weights_only=True), "run_id": "0123456789abcdef"}, checkpoint)
    digest = tree_digest(leaderboard) | tree_digest(runs)

    result = run_method(capsys, tiny_data_root, outputs, "--method", "equal", "--resume")
    assert_user_error(result, f"The checkpoint {checkpoint} belongs to run 0123456789abcdef, not to run {checkpoint.parent.name}")
    assert tree_digest(leaderboard) | tree_digest(runs) == digest


@pytest.mark.parametrize("damage", ["truncated", "not a checkpoint"])
def test_resume_from_corrupt_checkpoint(capsys, tiny_data_root, outputs, damage):
    leaderboard, runs = outputs
    checkpoint = interrupted_checkpoint(leaderboard, runs)
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000] if damage == "truncated" else b"garbage")
    digest = tree_digest(leaderboard) | tree_digest(runs)

    result = run_method(capsys, tiny_data_root, outputs, "--method", "equal", "--resume")
    assert_user_error(result, f"Cannot read the checkpoint {checkpoint}", "without --resume")
    assert tree_digest(leaderboard) | tree_digest(runs) == digest


def _without_rng(state: dict) -> dict:
    return {key: value for key, value in state.items() if key != "rng"}


def _with_narrow_weights(state: dict) -> dict:
    return {**state, "model": {name: tensor[..., :1] if tensor.ndim else tensor for name, tensor in state["model"].items()}}


@pytest.mark.parametrize("damage", [_without_rng, _with_narrow_weights], ids=["missing entry", "wrong tensor shapes"])
def test_resume_from_incomplete_checkpoint(capsys, tiny_data_root, outputs, damage):
    leaderboard, runs = outputs
    checkpoint = interrupted_checkpoint(leaderboard, runs)
    torch.save(damage(torch.load(checkpoint, weights_only=True)), checkpoint)
    digest = tree_digest(leaderboard) | tree_digest(runs)

    try:
        result = run_method(capsys, tiny_data_root, outputs, "--method", "equal", "--resume")
    except (KeyError, RuntimeError) as error:
        pytest.fail(f"traceback instead of a message: {type(error).__name__}: {error}")
    assert_user_error(result, str(checkpoint), "without --resume")
    assert tree_digest(leaderboard) | tree_digest(runs) == digest


# Results files.


def test_results_file_with_corrupt_line(capsys, outputs):
    leaderboard, _ = outputs
    results = results_file(leaderboard)
    results.write_bytes(results.read_bytes() + b'{"schema_version": 1, "status": }\n')
    digest = tree_digest(leaderboard)

    result = run_cli(capsys, "leaderboard", "--leaderboard-dir", leaderboard, "--check")
    assert_user_error(result, f"{results}:2: skipped: not valid JSON", status=1)
    assert tree_digest(leaderboard) == digest


def test_results_file_with_truncated_last_line(capsys, outputs):
    leaderboard, _ = outputs
    results = results_file(leaderboard)
    first_line = results.read_bytes()
    results.write_bytes(first_line + first_line[:100])
    digest = tree_digest(leaderboard)

    result = run_cli(capsys, "leaderboard", "--leaderboard-dir", leaderboard, "--check")
    assert_user_error(result, f"{results}:2: skipped: truncated last line", status=1)
    assert tree_digest(leaderboard) == digest


def add_record_of_other_protocol(results) -> None:
    """Append a copy of the file's first record under the protocol "multidigitmnist-v0", with matching ids."""
    record = json.loads(results.read_text().splitlines()[0])
    record["protocol"] = "multidigitmnist-v0"
    record["config_id"] = configuration_id(record)
    record["run_id"] = run_id_for(record["config_id"], record["seed"])
    with open(results, "a") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")


def test_record_of_other_protocol_is_reported(capsys, outputs):
    leaderboard, _ = outputs
    add_record_of_other_protocol(results_file(leaderboard))
    digest = tree_digest(leaderboard)

    result = run_cli(capsys, "leaderboard", "--leaderboard-dir", leaderboard, "--check")
    assert_user_error(result, "finished runs mix several values of protocol: multidigitmnist-v0 (1 run), multidigitmnist-v1 (1 run)", status=1)
    assert tree_digest(leaderboard) == digest


def test_record_of_other_protocol_stops_regeneration(capsys, outputs):
    leaderboard, _ = outputs
    assert run_cli(capsys, "leaderboard", "--leaderboard-dir", leaderboard).status == 0
    add_record_of_other_protocol(results_file(leaderboard))
    digest = tree_digest(leaderboard)

    result = run_cli(capsys, "leaderboard", "--leaderboard-dir", leaderboard)
    assert_user_error(result, "mix several values of protocol")
    assert tree_digest(leaderboard) == digest


def test_results_path_is_a_folder(capsys, tiny_data_root, tmp_path):
    leaderboard = tmp_path / "leaderboard"
    (results_file(leaderboard) / "kept.txt").parent.mkdir(parents=True)
    (results_file(leaderboard) / "kept.txt").write_text("kept")

    result = run_method(capsys, tiny_data_root, (leaderboard, tmp_path / "runs"), "--method", "equal")
    assert_user_error(result, f"{results_file(leaderboard)} is not a regular file")
    assert "epoch 1/1" not in result.out
    assert (results_file(leaderboard) / "kept.txt").read_text() == "kept"


# Full and read-only output folders.


def test_record_append_on_full_disk(capsys, tiny_data_root, outputs):
    leaderboard, runs = outputs
    digest = tree_digest(leaderboard)

    with pytest.MonkeyPatch.context() as faults:
        fail_writes_under(faults, leaderboard, errno.ENOSPC)
        # Single-task runs have no cosines file, so the record is the first thing written.
        result = run_method(capsys, tiny_data_root, outputs, "--method", "single", "--task", "left")

    assert_user_error(result, f"No space left on the device while writing {results_file(leaderboard)}")
    assert tree_digest(leaderboard) == digest


def test_checkpoint_on_full_disk(capsys, tiny_data_root, outputs):
    leaderboard, runs = outputs
    digest = tree_digest(leaderboard) | tree_digest(runs)

    with pytest.MonkeyPatch.context() as faults:
        fail_writes_under(faults, runs, errno.ENOSPC)
        # The finished run's configuration again, so its checkpoint is the one to be replaced.
        result = run_method(capsys, tiny_data_root, outputs, "--method", "equal")

    assert_user_error(result, f"No space left on the device while writing {only_checkpoint(runs)}")
    assert tree_digest(leaderboard) | tree_digest(runs) == digest


def test_read_only_leaderboard_folder(capsys, tiny_data_root, outputs):
    leaderboard, runs = outputs
    digest = tree_digest(leaderboard) | tree_digest(runs)

    with pytest.MonkeyPatch.context() as faults:
        fail_writes_under(faults, leaderboard, errno.EROFS)
        result = run_method(capsys, tiny_data_root, outputs, "--method", "equal", "--seed", "2")

    assert_user_error(result, f"Cannot write {leaderboard / 'results' / 'multidigitmnist' / 'cosines'}", "permission denied")
    assert "epoch 1/1" not in result.out
    assert tree_digest(leaderboard) | tree_digest(runs) == digest


def test_compile_with_cosreg(capsys, tiny_data_root, outputs):
    before = tree_digest(outputs[0].parent)

    result = run_method(capsys, tiny_data_root, outputs, "--method", "cosreg", "--compile")

    assert_user_error(result, "Method 'cosreg' differentiates through task gradients (double backward)", "without --compile")
    assert tree_digest(outputs[0].parent) == before


def test_compile_backend_without_compile(capsys, tiny_data_root, outputs):
    before = tree_digest(outputs[0].parent)

    result = run_method(capsys, tiny_data_root, outputs, "--method", "equal", "--compile-backend", "aot_eager")

    assert_user_error(result, "--compile-backend aot_eager has no effect without --compile")
    assert tree_digest(outputs[0].parent) == before


def test_unknown_compile_backend(capsys, tiny_data_root, outputs):
    before = tree_digest(outputs[0].parent)

    result = run_method(capsys, tiny_data_root, outputs, "--method", "equal", "--compile", "--compile-backend", "nonsense")

    assert_user_error(result, "Unknown --compile-backend 'nonsense'")
    assert tree_digest(outputs[0].parent) == before


@pytest.mark.skipif(importlib.util.find_spec("tvm") is not None, reason="tvm is installed here")
def test_compile_backend_without_its_package(capsys, tiny_data_root, outputs):
    before = tree_digest(outputs[0].parent)

    result = run_method(capsys, tiny_data_root, outputs, "--method", "equal", "--compile", "--compile-backend", "tvm")

    assert_user_error(result, "--compile-backend tvm needs the Python package 'tvm', which is not installed")
    assert tree_digest(outputs[0].parent) == before


def test_empty_compile_backend(capsys, tiny_data_root, outputs):
    result = run_method(capsys, tiny_data_root, outputs, "--method", "equal", "--compile", "--compile-backend", "")

    assert_user_error(result, "Unknown --compile-backend ''")


def test_compile_backend_for_testing_pytorch(capsys, tiny_data_root, outputs):
    """PyTorch's own test backends, listed by torch._dynamo, are no choice for a run."""
    result = run_method(capsys, tiny_data_root, outputs, "--method", "equal", "--compile", "--compile-backend", "relu_compile_error_TESTING_ONLY")

    assert_user_error(result, "Unknown --compile-backend 'relu_compile_error_TESTING_ONLY'")
    assert "TESTING_ONLY" not in result.err.split("Backends:")[1]


def test_step_cost_file_is_a_folder(capsys, outputs):
    leaderboard, _ = outputs
    (leaderboard / "step_costs" / "multidigitmnist.json").mkdir(parents=True)
    before = tree_digest(leaderboard)

    result = run_cli(capsys, "leaderboard", "--leaderboard-dir", leaderboard)

    assert_user_error(result, "step_costs/multidigitmnist.json exists but is not a readable file")
    assert tree_digest(leaderboard) == before


def test_step_cost_file_not_json(capsys, outputs):
    leaderboard, _ = outputs
    path = leaderboard / "step_costs" / "multidigitmnist.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"schema_version": 1,', encoding="utf-8")
    before = tree_digest(leaderboard)

    result = run_cli(capsys, "leaderboard", "--leaderboard-dir", leaderboard)

    assert_user_error(result, f"Cannot read the step-cost file {path}", "leaderboard_step_cost.py --benchmark multidigitmnist")
    assert tree_digest(leaderboard) == before
