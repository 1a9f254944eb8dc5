"""`mtbench run --precision bf16`, `--channels-last` and `--compile` on the CPU: results, configuration ids and resume."""

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from test_all_methods import interrupt_and_resume
from test_dense_benchmark import small_definitions, write_nyuv2
from test_dense_pipeline import TINY_SEGNET, _assert_finite_scores
from test_dense_pipeline import _run as dense_run
from test_trainer import QUIET, make_config, without_timings

from mtbench.cli.main import build_parser, main
from mtbench.cli.run_command import build_run_config
from mtbench.errors import MtbenchError
from mtbench.leaderboard.aggregate import row_label
from mtbench.methods import get_method, list_methods
from mtbench.sweep import read_definition, resolve_runs
from mtbench.train.config import RunConfig, TrainConfig, configuration_id
from mtbench.train.runtime_options import autocast_dtype
from mtbench.train.trainer import Trainer, mean_step_seconds

COMMITTED_RECORDS = Path(__file__).resolve().parents[1] / "leaderboard" / "results" / "multidigitmnist.jsonl"
# aot_eager traces the model and its backward pass like inductor but runs PyTorch's own kernels: no C++ compilation.
COMPILE = {"compile": True, "compile_backend": "aot_eager"}
BF16 = {"precision": "bf16"}


pytestmark = pytest.mark.usefixtures("one_thread")


def configure(data_root: Path, folder: Path, method: str = "equal", epochs: int = 1, precision: str = "fp32", **options) -> RunConfig:
    """Return the tiny MultiDigitMNIST configuration of test_trainer.py with ``precision`` and the RunConfig fields ``options``."""
    config = make_config(data_root, folder, method=method, epochs=epochs)
    return dataclasses.replace(config, train=dataclasses.replace(config.train, precision=precision), **options)


def run_once(data_root: Path, folder: Path, **settings) -> tuple[Trainer, dict]:
    """Train the configuration of :func:`configure`; return the trainer and its record."""
    trainer = Trainer(configure(data_root, folder, **settings), QUIET)
    return trainer, trainer.run()


def assert_finite(record: dict) -> None:
    assert all(math.isfinite(value) for value in record["test"].values())
    assert all(math.isfinite(value) for entry in record["history"] for value in entry["train_loss"].values())


@pytest.fixture(scope="module")
def default_record(tiny_data_root, tmp_path_factory) -> dict:
    _, record = run_once(tiny_data_root, tmp_path_factory.mktemp("default"))
    return record


# Configuration ids.


def test_default_precision_is_left_out_of_the_identity():
    assert "precision" not in TrainConfig().identity()
    assert "precision" not in TrainConfig(precision="fp32").identity()
    assert TrainConfig(precision="bf16").identity()["precision"] == "bf16"


def test_committed_records_keep_their_config_ids():
    """Every committed record's configuration, rebuilt with the current TrainConfig, gives the record's id."""
    records = [json.loads(line) for line in COMMITTED_RECORDS.read_text().splitlines()]
    assert records
    for record in records:
        config = RunConfig(
            benchmark=record["benchmark"],
            protocol=record["protocol"],
            method=record["method"],
            method_config=record["method_config"],
            tasks=tuple(record["tasks"]),
            model=record["model"],
            model_config=record["model_config"],
            train=TrainConfig(**record["train_config"]),
            seed=record["seed"],
        )
        assert config.config_id == record["config_id"], record["run_id"]
        assert config.run_id == record["run_id"]


def test_runtime_options_are_not_in_the_config_id(tiny_data_root, tmp_path):
    config = configure(tiny_data_root, tmp_path)
    changed = dataclasses.replace(config, channels_last=True, compile=True, compile_backend="eager")
    assert changed.config_id == config.config_id


# bfloat16 autocast.


def test_bf16_run_gets_own_config_id(default_record, tiny_data_root, tmp_path):
    _, record = run_once(tiny_data_root, tmp_path, **BF16)

    assert_finite(record)
    assert record["train_config"]["precision"] == "bf16"
    assert "precision" not in default_record["train_config"]
    assert record["config_id"] != default_record["config_id"]
    # The id of the fp32 run as computed before TrainConfig had a precision field.
    config = configure(tiny_data_root, tmp_path)
    earlier_train_config = {name: value for name, value in dataclasses.asdict(config.train).items() if value is not None and name != "precision"}
    assert default_record["config_id"] == configuration_id({**config.identity(), "train_config": earlier_train_config})


def test_bf16_autocast_skips_methods(tiny_data_root, tmp_path, monkeypatch):
    seen = {}
    original = Trainer._method_backward

    def recording(self, context):
        seen["representation"] = context.shared_representation.dtype
        seen["autocast"] = torch.is_autocast_enabled("cpu")
        return original(self, context)

    monkeypatch.setattr(Trainer, "_method_backward", recording)
    run_once(tiny_data_root, tmp_path, **BF16)
    assert seen == {"representation": torch.bfloat16, "autocast": False}


def test_bf16_without_gpu_support_names_the_fix(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *arguments, **keywords: False)
    with pytest.raises(MtbenchError, match="--precision fp32"):
        autocast_dtype("bf16", torch.device("cuda"))
    assert autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    assert autocast_dtype("fp32", torch.device("cuda")) is None


def test_row_label_shows_bf16_only():
    assert row_label("cosreg", {"lambda": 0.1}, {"batchnorm": True}) == "CosReg (lambda=0.1) + BatchNorm"
    assert row_label("cosreg", {"lambda": 0.1}, {"batchnorm": True}, {"epochs": 12}) == "CosReg (lambda=0.1) + BatchNorm"
    assert row_label("equal", {}, {"dropout": 0.5}, {"precision": "fp32"}) == "Dropout (p=0.5)"
    assert row_label("equal", {}, {}, {"precision": "bf16"}) == "No reg + bf16"


# Channels-last memory format.


def test_channels_last_keeps_id_and_metrics(default_record, tiny_data_root, tmp_path):
    trainer, record = run_once(tiny_data_root, tmp_path, channels_last=True)

    assert trainer.model.shared_parameters()[0].is_contiguous(memory_format=torch.channels_last)
    assert record["config_id"] == default_record["config_id"]
    assert record["runtime"] == {"channels_last": True, "compile_backend": None}
    # Channels-last convolutions use other CPU kernels, which sum in another order: equal up to float32 rounding.
    for entry, default_entry in zip(record["history"], default_record["history"]):
        for task, loss in entry["train_loss"].items():
            assert loss == pytest.approx(default_entry["train_loss"][task], rel=1e-4)
    assert record["test"] == pytest.approx(default_record["test"], abs=0.02)


# torch.compile.


@pytest.mark.parametrize("method", ["equal", "mgda"])
def test_compiled_run_finishes_with_eager_checkpoint_keys(method, tiny_data_root, tmp_path):
    trainer, record = run_once(tiny_data_root, tmp_path, method=method, **COMPILE)

    assert_finite(record)
    assert trainer.model.encoder._compiled_call_impl is not None
    state = torch.load(trainer.checkpoint_path, weights_only=True)
    assert not [key for key in state["model"] if "_orig_mod" in key]
    eager = Trainer(configure(tiny_data_root, tmp_path / "eager", method=method), QUIET)
    assert list(state["model"]) == list(eager.model.state_dict())


def without_runtime(record: dict) -> dict:
    """Return ``record`` without its timings and its runtime settings, which differ between the runs compared."""
    return {key: value for key, value in without_timings(record).items() if key != "runtime"}


def test_compiled_graddrop_keeps_representation_gradients(tiny_data_root, tmp_path):
    """GradDrop works on gradients with respect to the shared representation, which a single compiled graph would lose."""
    _, eager = run_once(tiny_data_root, tmp_path / "eager", method="graddrop")
    _, compiled = run_once(tiny_data_root, tmp_path / "compiled", method="graddrop", **COMPILE)
    assert compiled["runtime"] == {"channels_last": False, "compile_backend": "aot_eager"}
    assert eager["runtime"] == {"channels_last": False, "compile_backend": None}
    assert without_runtime(compiled) == without_runtime(eager)


def test_methods_with_double_backward_are_marked():
    marked = [name for name in list_methods() if get_method(name).needs_double_backward]
    assert marked == ["cosreg"]


def test_compile_backend_without_compile_is_rejected(tmp_path):
    arguments = build_parser().parse_args(["run", "--method", "equal", "--compile-backend", "aot_eager", "--data-root", str(tmp_path)])
    with pytest.raises(MtbenchError, match="--compile-backend aot_eager has no effect without --compile"):
        build_run_config(arguments)


def test_compile_rejects_cosreg_before_data(tmp_path):
    arguments = build_parser().parse_args(["run", "--method", "cosreg", "--compile", "--data-root", str(tmp_path / "absent")])
    with pytest.raises(MtbenchError, match=r"Method 'cosreg' .*double backward.* without --compile"):
        build_run_config(arguments)

    config = configure(tmp_path / "absent", tmp_path, method="cosreg", **COMPILE)
    with pytest.raises(MtbenchError, match=r"Method 'cosreg' .* without --compile"):
        Trainer(config, QUIET)


def test_unknown_compile_backend_rejected(tiny_data_root):
    arguments = build_parser().parse_args(["run", "--method", "equal", "--compile", "--compile-backend", "nonsense", "--data-root", str(tiny_data_root)])
    with pytest.raises(MtbenchError, match="Unknown --compile-backend 'nonsense'.*inductor"):
        build_run_config(arguments)


@pytest.mark.parametrize(
    "switches", [["--precision", "bf16"], ["--channels-last"], ["--compile", "--compile-backend", "aot_eager"]], ids=["bf16", "channels-last", "compile"]
)
def test_segnet_trains_with_switch(switches, tmp_path, monkeypatch):
    repository = small_definitions(tmp_path / "repository")
    data = tmp_path / "data"
    write_nyuv2(data / "nyuv2", (32, 32), (8, 8))
    monkeypatch.setenv("MTBENCH_ROOT", str(repository))

    record = dense_run(tmp_path, "--benchmark", "nyuv2", "--method", "mgda", "--batch-size", "4", "--data-root", str(data), *TINY_SEGNET, *switches)

    _assert_finite_scores(record)
    assert all(math.isfinite(value) for value in record["history"][0]["train_loss"].values())


# Resume.


@pytest.mark.parametrize("options", [BF16, {"channels_last": True}, COMPILE], ids=["bf16", "channels-last", "compile"])
def test_resume_gives_the_uninterrupted_record(options, tiny_data_root, tmp_path):
    straight, record = run_once(tiny_data_root, tmp_path / "straight", epochs=2, **options)

    resumed, resumed_record = interrupt_and_resume(configure(tiny_data_root, tmp_path / "interrupted", epochs=2, **options))

    assert without_timings(resumed_record) == without_timings(record)
    for name, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def test_resumed_compiled_run_leaves_out_both_compile_steps(tiny_data_root, tmp_path):
    resumed, _ = interrupt_and_resume(configure(tiny_data_root, tmp_path, epochs=2, **COMPILE))

    steps_per_epoch = len(resumed.step_seconds) // 2
    assert resumed.compile_steps == [0, steps_per_epoch]


def test_uncompiled_run_leaves_out_no_step(tiny_data_root, tmp_path):
    trainer, _ = run_once(tiny_data_root, tmp_path)

    assert trainer.compile_steps == []


@pytest.mark.parametrize(
    ("compile_steps", "expected"),
    [([], 2.5), ([0], 2.0), ([0, 2], 1.5), ([0, 1, 2, 3], 2.5)],
    ids=["eager", "compiled", "compiled-and-resumed", "only-compile-steps"],
)
def test_mean_step_seconds(compile_steps, expected):
    assert mean_step_seconds([4.0, 1.0, 3.0, 2.0], compile_steps) == expected


def test_mean_step_seconds_without_steps():
    assert mean_step_seconds([], []) == 0.0


# Command line and sweeps.


def test_options_appear_in_run_help(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    for option in ("--precision {fp32,bf16}", "--channels-last", "--compile", "--compile-backend NAME"):
        assert option in out


def test_unknown_precision_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["run", "--method", "equal", "--precision", "fp16"])
    assert stopped.value.code == 2
    assert "invalid choice: 'fp16'" in capsys.readouterr().err


def test_command_line_sets_the_options(tmp_path):
    arguments = build_parser().parse_args(
        ["run", "--method", "equal", "--precision", "bf16", "--channels-last", "--compile", "--compile-backend", "aot_eager", "--data-root", str(tmp_path)]
    )
    config, _ = build_run_config(arguments)
    assert (config.train.precision, config.channels_last, config.compile, config.compile_backend) == ("bf16", True, True, "aot_eager")


def test_sweep_passes_the_options(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(
        'benchmark = "multidigitmnist"\nseeds = [0]\n[options]\nchannels_last = true\n'
        '[[runs]]\nmethod = "equal"\noptions = { precision = ["fp32", "bf16"], compile = true, compile_backend = "aot_eager" }\n'
    )
    fp32, bf16 = resolve_runs(read_definition(path))

    assert fp32.config_id != bf16.config_id
    assert "precision" not in fp32.identity["train_config"]
    assert bf16.identity["train_config"]["precision"] == "bf16"
    assert (fp32.label, bf16.label) == ("No reg, seed 0", "No reg + bf16, seed 0")
    assert {"--channels-last", "--compile"} <= set(bf16.arguments)
    assert bf16.arguments[bf16.arguments.index("--compile-backend") + 1] == "aot_eager"


def test_sweep_rejects_compiled_cosreg(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text('benchmark = "multidigitmnist"\nseeds = [0]\n[[runs]]\nmethod = "cosreg"\noptions = { compile = true }\n')
    with pytest.raises(MtbenchError, match=r"runs\[0\] \(cosreg compile=True\): Method 'cosreg' .* without --compile"):
        resolve_runs(read_definition(path))
