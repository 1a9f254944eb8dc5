import json
import os
import subprocess
import sys
import textwrap
import warnings

import pytest

import mtbench.methods.stch
from mtbench.cli.main import _warning_format, main
from mtbench.errors import MtbenchError


def run_cli(capsys, *arguments) -> tuple[int, str, str]:
    status = main(list(arguments))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_run_before_prepare_names_the_fix(capsys, tmp_path):
    status, _, err = run_cli(capsys, "run", "--method", "equal", "--data-root", str(tmp_path / "empty"), "--leaderboard-dir", str(tmp_path / "lb"))
    assert status == 2
    assert "mtbench prepare multidigitmnist" in err
    assert "Traceback" not in err
    assert not (tmp_path / "lb").exists()


def test_unknown_method(capsys, tmp_path):
    status, _, err = run_cli(capsys, "run", "--method", "gradnorm-typo", "--data-root", str(tmp_path))
    assert status == 2
    assert "Unknown method 'gradnorm-typo'" in err


def test_unknown_benchmark(capsys, tmp_path):
    status, _, err = run_cli(capsys, "run", "--benchmark", "imagenet", "--method", "equal")
    assert status == 2
    assert "Unknown benchmark 'imagenet'" in err
    assert "multidigitmnist" in err


def test_unknown_hyperparameter(capsys, tiny_data_root):
    status, _, err = run_cli(capsys, "run", "--method", "cosreg", "--param", "lamda=1", "--data-root", str(tiny_data_root))
    assert status == 2
    assert "Unknown hyper-parameter 'lamda'" in err
    assert "Valid names: lambda, scheduled" in err


def test_malformed_hyperparameter(capsys):
    status, _, err = run_cli(capsys, "run", "--method", "cosreg", "--param", "lambda")
    assert status == 2
    assert "NAME=VALUE" in err


def test_invalid_hyperparameter_value(capsys):
    status, _, err = run_cli(capsys, "run", "--method", "cosreg", "--param", "lambda=big")
    assert status == 2
    assert "Invalid value 'big' for lambda" in err


def test_nonpositive_epochs(capsys):
    status, _, err = run_cli(capsys, "run", "--method", "equal", "--epochs", "0")
    assert status == 2
    assert "--epochs 0" in err


def test_unknown_task(capsys, tiny_data_root):
    status, _, err = run_cli(capsys, "run", "--method", "single", "--task", "middle", "--data-root", str(tiny_data_root))
    assert status == 2
    assert "middle" in err


def test_failing_plugin(capsys, tmp_path):
    plugin = tmp_path / "bad_plugin.py"
    plugin.write_text("import not_a_real_module_xyz\n")
    status, _, err = run_cli(capsys, "run", "--plugin", str(plugin), "--method", "equal")
    assert status == 2
    assert "bad_plugin.py failed to import: ModuleNotFoundError" in err


def test_run_with_plugin_method_end_to_end(capsys, tiny_data_root, tmp_path):
    plugin = tmp_path / "scaled.py"
    plugin.write_text(
        textwrap.dedent(
            """
            import torch
            from mtbench.methods import Hyperparameter, Method, register_method

            @register_method
            class ScaledSum(Method):
                name = "scaled-sum-cli-test"
                hyperparameters = (Hyperparameter("scale", float, 1.0, "factor"),)

                def __init__(self, tasks, scale=1.0):
                    super().__init__(tasks)
                    self.scale = scale

                def loss(self, context):
                    return self.scale * torch.stack(list(context.task_losses.values())).sum(), {}
            """
        )
    )
    leaderboard = tmp_path / "lb"
    status, out, err = run_cli(
        capsys, "run", "--plugin", str(plugin), "--method", "scaled-sum-cli-test", "--param", "scale=0.5",
        "--epochs", "1", "--width", "4", "--data-root", str(tiny_data_root), "--leaderboard-dir", str(leaderboard),
        "--runs-dir", str(tmp_path / "runs"), "--device", "cpu",
    )
    assert status == 0, err
    (line,) = (leaderboard / "results" / "multidigitmnist.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["method"] == "scaled-sum-cli-test"
    assert record["method_config"] == {"scale": 0.5}
    assert record["model_config"]["width"] == 4
    assert "epoch 1/1" in out


def test_methods_lists_builtins(capsys):
    status, out, _ = run_cli(capsys, "methods")
    assert status == 0
    for name in ("equal", "single", "cosreg", "lambda"):
        assert name in out


def test_datasets_shows_prepared_state(capsys, tiny_data_root, tmp_path):
    status, out, _ = run_cli(capsys, "datasets", "--data-root", str(tiny_data_root))
    assert status == 0
    assert "sha256" in out or "multidigitmnist" in out
    status, out, _ = run_cli(capsys, "datasets", "--data-root", str(tmp_path))
    assert "not prepared" in out


def test_console_script_prints_no_traceback(tmp_path):
    environment = {**os.environ, "MTBENCH_DATA": str(tmp_path)}
    completed = subprocess.run(
        [sys.executable, "-m", "mtbench", "run", "--method", "equal", "--leaderboard-dir", str(tmp_path / "lb")],
        capture_output=True, text=True, env=environment, check=False,
    )
    assert completed.returncode == 2
    assert completed.stderr.startswith("mtbench: error:")
    assert "Traceback" not in completed.stderr


def test_help_gives_units_and_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "Adam learning rate" in out
    assert "default: auto" in out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--seed", "-1"], "Invalid --seed -1"),
        (["--seed", "5", "5"], "Duplicate seeds"),
        (["--lr", "nan"], "Invalid --lr nan"),
        (["--device", "meta"], "Invalid --device 'meta'"),
        (["--task", "left", "--task", "left"], "Duplicate task"),
    ],
)
def test_run_rejects_invalid_options(capsys, tiny_data_root, options, message):
    status, _, err = run_cli(capsys, "run", "--method", "equal", "--data-root", str(tiny_data_root), *options)
    assert status == 2
    assert message in err


def test_nonfinite_hyperparameter(capsys):
    status, _, err = run_cli(capsys, "run", "--method", "cosreg", "--param", "lambda=inf")
    assert status == 2
    assert "use a finite number" in err


def test_leaderboard_missing_folder(capsys, tmp_path):
    status, _, err = run_cli(capsys, "leaderboard", "--leaderboard-dir", str(tmp_path / "typo"), "--check")
    assert status == 2
    assert "typo not found" in err


def test_leaderboard_check_unknown_benchmark(capsys, tmp_path):
    status, _, err = run_cli(capsys, "leaderboard", "--leaderboard-dir", str(tmp_path), "--check", "--benchmark", "nosuch")
    assert status == 1
    assert "results file not found" in err


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("return context.task_losses['left'].detach() + 0, {}", "failed at training step 0: RuntimeError"),
        ("return torch.stack(list(context.task_losses.values())), {}", "failed at training step 0: RuntimeError"),
        ("return torch.stack(list(context.task_losses.values())).sum() * float('nan'), {}", "NaN or infinite gradients at training step 0"),
        ("return torch.stack(list(context.task_losses.values())).sum(), {'penalty': float('nan')}", "logged penalty = nan at training step 0"),
    ],
)
def test_broken_plugin_method_stops_run(capsys, tiny_data_root, tmp_path, body, message):
    plugin = tmp_path / "broken_method.py"
    plugin.write_text(
        "import torch\n"
        "from mtbench.methods import Method, register_method\n"
        "@register_method\n"
        "class Broken(Method):\n"
        f"    name = 'broken-{abs(hash(body))}'\n"
        "    def loss(self, context):\n"
        f"        {body}\n"
    )
    leaderboard = tmp_path / "lb"
    status, _, err = run_cli(
        capsys, "run", "--plugin", str(plugin), "--method", f"broken-{abs(hash(body))}", "--epochs", "1", "--width", "4",
        "--batch-size", "1000", "--data-root", str(tiny_data_root), "--leaderboard-dir", str(leaderboard), "--runs-dir", str(tmp_path / "runs"),
    )
    assert status == 2
    assert message in err
    assert not (leaderboard / "results" / "multidigitmnist.jsonl").exists()


def test_plugin_exception_of_any_type_is_reported(capsys, tiny_data_root, tmp_path):
    plugin = tmp_path / "zerodiv.py"
    plugin.write_text(
        "from mtbench.methods import Method, register_method\n"
        "@register_method\n"
        "class ZeroDivision(Method):\n"
        "    name = 'zerodiv-test'\n"
        "    def loss(self, context):\n"
        "        return 1 / 0\n"
    )
    status, _, err = run_cli(
        capsys, "run", "--plugin", str(plugin), "--method", "zerodiv-test", "--epochs", "1", "--width", "4",
        "--data-root", str(tiny_data_root), "--leaderboard-dir", str(tmp_path / "lb"), "--runs-dir", str(tmp_path / "runs"),
    )
    assert status == 2
    assert "failed at training step 0: ZeroDivisionError" in err


def test_results_folder_fails_early(capsys, tiny_data_root, tmp_path):
    leaderboard = tmp_path / "lb"
    (leaderboard / "results" / "multidigitmnist.jsonl").mkdir(parents=True)
    status, out, err = run_cli(
        capsys, "run", "--method", "equal", "--epochs", "1", "--width", "4",
        "--data-root", str(tiny_data_root), "--leaderboard-dir", str(leaderboard), "--runs-dir", str(tmp_path / "runs"),
    )
    assert status == 2
    assert "is not a regular file" in err
    assert "epoch 1/1" not in out


def test_same_plugin_file_name_in_two_folders(tmp_path):
    from mtbench.methods import load_plugin

    source = (
        "from mtbench.methods import Method, register_method\n"
        "@register_method\n"
        "class Same(Method):\n"
        "    name = 'same-name-test'\n"
    )
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "m.py").write_text(source)
    load_plugin(tmp_path / "a" / "m.py")
    with pytest.raises(MtbenchError, match="already registered"):
        load_plugin(tmp_path / "b" / "m.py")


def test_own_warnings_print_as_one_line():
    format_warning = _warning_format(warnings.formatwarning)
    text = format_warning(RuntimeWarning("warm-up too long"), RuntimeWarning, mtbench.methods.stch.__file__, 140, "code line")

    assert text == "mtbench: warning: warm-up too long\n"


def test_other_warnings_keep_python_format(tmp_path):
    format_warning = _warning_format(warnings.formatwarning)
    text = format_warning(UserWarning("deprecated"), UserWarning, str(tmp_path / "other.py"), 7, "code line")

    assert text == warnings.formatwarning(UserWarning("deprecated"), UserWarning, str(tmp_path / "other.py"), 7, "code line")
    assert "mtbench: warning" not in text
