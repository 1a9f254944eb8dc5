"""`mtbench sweep` with the real `mtbench run`: one epoch on the tiny fixture dataset, then nothing left to do."""

from mtbench.cli.main import main
from mtbench.leaderboard import read_records
from mtbench.sweep import read_definition, resolve_runs

BENCHMARK = "multidigitmnist"


def test_sweep_with_real_run(tmp_path, tiny_data_root, capsys):
    definition = tmp_path / "sweep.toml"
    definition.write_text('benchmark = "multidigitmnist"\nseeds = [0]\n[options]\nepochs = 1\nwidth = 4\n[[runs]]\nmethod = "equal"\n')
    arguments = [
        "sweep", str(definition), "--device", "cpu", "--leaderboard-dir", str(tmp_path / "leaderboard"),
        "--runs-dir", str(tmp_path / "runs"), "--data-root", str(tiny_data_root),
    ]

    assert main(arguments) == 0
    (record,) = read_records(tmp_path / "leaderboard", BENCHMARK)
    assert main(arguments) == 0

    (run,) = resolve_runs(read_definition(definition))
    assert (record["config_id"], record["seed"]) == (run.config_id, 0)
    assert record["model_config"]["width"] == 4
    assert len(read_records(tmp_path / "leaderboard", BENCHMARK)) == 1
    assert "Every run is done" in capsys.readouterr().out
