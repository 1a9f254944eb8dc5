"""Command-line checks that stop a command before it reads data or trains."""

import pytest

from mtbench.cli.main import build_parser, main
from mtbench.cli.run_command import build_run_config


def _config(*options: str):
    return build_run_config(build_parser().parse_args(["run", *options]))


def test_abbreviated_option_is_rejected(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--method", "equal", "--see", "7"])
    assert "unrecognized arguments: --see 7" in capsys.readouterr().err


def test_negative_zero_gives_the_configuration_of_zero():
    negative, _ = _config("--method", "cosreg", "--param", "lambda=-0")
    positive, _ = _config("--method", "cosreg", "--param", "lambda=0")
    assert negative.config_id == positive.config_id


def test_rejected_hyper_parameter_stops_before_training(capsys, tmp_path):
    status = main(["run", "--method", "cosreg", "--param", "lambda=-1", "--data-root", str(tmp_path / "missing")])
    assert status == 2
    assert "Invalid CosReg lambda -1.0" in capsys.readouterr().err


def test_refused_representation_mode_stops_before_training(capsys, tmp_path):
    status = main(["run", "--method", "pcgrad", "--param", "gradients=representation", "--data-root", str(tmp_path / "missing")])
    error = capsys.readouterr().err
    assert status == 2
    assert "Method 'pcgrad' cannot use gradients with respect to the shared representation" in error


def test_single_task_method_is_checked_per_task():
    config, seeds = _config("--method", "single", "--seed", "3")
    assert config.method == "single"
    assert seeds == [3]


def test_missing_mnist_folder_is_an_error(capsys, tmp_path):
    status = main(["prepare", "multidigitmnist", "--mnist-folder", str(tmp_path / "nowhere"), "--data-root", str(tmp_path / "data")])
    assert status == 2
    assert f"--mnist-folder {tmp_path / 'nowhere'} is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "data" / "multidigitmnist").exists()
