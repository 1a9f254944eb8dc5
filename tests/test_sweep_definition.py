"""Sweep files: parsing, validation, grid expansion and resolution to runs with their ids."""

from pathlib import Path

import pytest

from mtbench.errors import MtbenchError
from mtbench.methods import list_methods
from mtbench.sweep import DONE, TO_RUN, read_definition, resolve_runs, run_statuses
from mtbench.sweep.plan import spec_arguments

REPOSITORY = Path(__file__).resolve().parents[1]
SWEEPS = REPOSITORY / "leaderboard" / "sweeps"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


def test_table1_definition_expands_to_published_grid():
    definition = read_definition(SWEEPS / "multidigitmnist_table1.toml")

    specs = definition.expand(list_methods())

    assert [(spec.method, spec.params, spec.options) for spec in specs] == [
        ("single", {}, {"epochs": 12}),
        ("equal", {}, {"epochs": 12, "dropout": 0.0}),
        ("equal", {}, {"epochs": 12, "dropout": 0.25}),
        ("equal", {}, {"epochs": 12, "batchnorm": True}),
        ("cosreg", {"lambda": 0.1}, {"epochs": 12, "batchnorm": False}),
        ("cosreg", {"lambda": 0.1}, {"epochs": 12, "batchnorm": True}),
        ("cosreg", {"lambda": 1.0}, {"epochs": 12, "batchnorm": False}),
        ("cosreg", {"lambda": 1.0}, {"epochs": 12, "batchnorm": True}),
        ("cosreg", {"lambda": 10.0}, {"epochs": 12, "batchnorm": False}),
        ("cosreg", {"lambda": 10.0}, {"epochs": 12, "batchnorm": True}),
    ]
    assert all(spec.seeds == (0, 1, 2, 3, 4) for spec in specs)


def test_table1_runs_match_committed_records():
    runs = resolve_runs(read_definition(SWEEPS / "multidigitmnist_table1.toml"))

    statuses = run_statuses(runs, REPOSITORY / "leaderboard")

    # Single-task models: 2 tasks x 5 seeds; 9 multi-task configurations x 5 seeds.
    assert len(runs) == 55
    assert len({run.run_id for run in runs}) == 55
    # The committed leaderboard contains seeds 0 to 2 of every configuration, so the sweep's ids match its records.
    assert [run.run_id for run in runs if run.seed <= 2 and statuses[run.run_id] != DONE] == []
    assert set(statuses.values()) <= {DONE, TO_RUN}
    single = [run for run in runs if run.identity["method"] == "single"]
    assert {(run.task, run.seed) for run in single} == {(task, seed) for task in ("left", "right") for seed in range(5)}
    assert single[0].arguments[-4:] == ("--task", "left", "--seed", "0")


def test_all_methods_definition_lists_every_method():
    definition = read_definition(SWEEPS / "multidigitmnist_all_methods.toml")

    specs = definition.expand(list_methods())

    with_defaults = [spec for spec in specs if spec.params == {}]
    assert sorted(spec.method for spec in with_defaults) == sorted(list_methods())
    assert [(spec.method, spec.params) for spec in specs if spec.params] == [("famo", {"logit_update": "same-batch"})]
    assert all(spec.seeds == (0, 1, 2) for spec in specs)


def test_all_methods_exclude(tmp_path):
    path = _write(tmp_path, 'benchmark = "multidigitmnist"\nseeds = [0]\n[[runs]]\nmethod = "all"\nexclude = ["single", "equal"]\n')

    methods = [spec.method for spec in read_definition(path).expand(["cosreg", "equal", "single"])]

    assert methods == ["cosreg"]


def test_spec_arguments_flags_and_values(tmp_path):
    path = _write(tmp_path, 'benchmark = "multidigitmnist"\nseeds = [3]\n[[runs]]\nmethod = "cosreg"\n'
                  'params = { lambda = 1, scheduled = true }\noptions = { batchnorm = false, hidden_units = 8, dropout = 0.5 }\n')
    (spec,) = read_definition(path).expand([])

    arguments = spec_arguments("multidigitmnist", spec, ())

    assert arguments == [
        "run", "--benchmark", "multidigitmnist", "--method", "cosreg", "--param", "lambda=1", "--param", "scheduled=true",
        "--hidden-units", "8", "--dropout", "0.5",
    ]


def test_entry_seeds_override(tmp_path):
    path = _write(tmp_path, 'benchmark = "multidigitmnist"\nseeds = [0, 1]\n[[runs]]\nmethod = "equal"\nseeds = [7]\n[[runs]]\nmethod = "cosreg"\n')

    specs = read_definition(path).expand([])

    assert [spec.seeds for spec in specs] == [(7,), (0, 1)]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('benchmark = "multidigitmnist"\nseeds = [0]\nrun = []\n', "'run'"),
        ('seeds = [0]\n[[runs]]\nmethod = "equal"\n', "'benchmark'"),
        ('benchmark = "multidigitmnist"\nseeds = [0]\n', "'runs'"),
        ('benchmark = "multidigitmnist"\n[[runs]]\nmethod = "equal"\n', "'runs[0].seeds'"),
        ('benchmark = "multidigitmnist"\nseeds = [0, 0]\n[[runs]]\nmethod = "equal"\n', "'seeds'"),
        ('benchmark = "multidigitmnist"\nseeds = [-1]\n[[runs]]\nmethod = "equal"\n', "'seeds'"),
        ('benchmark = "multidigitmnist"\nseeds = [0]\n[[runs]]\nparams = {}\n', "'runs[0].method'"),
        ('benchmark = "multidigitmnist"\nseeds = [0]\n[[runs]]\nmethod = "all"\nparams = { lambda = 1 }\n', "'runs[0].params'"),
        ('benchmark = "multidigitmnist"\nseeds = [0]\n[[runs]]\nmethod = "equal"\nexclude = ["single"]\n', "'runs[0].exclude'"),
        ('benchmark = "multidigitmnist"\nseeds = [0]\n[[runs]]\nmethod = "equal"\noptions = { seed = 3 }\n', "'runs[0].options.seed'"),
        ('benchmark = "multidigitmnist"\nseeds = [0]\n[options]\ndata_root = "x"\n[[runs]]\nmethod = "equal"\n', "'options.data_root'"),
        ('benchmark = "multidigitmnist"\nseeds = [0]\n[[runs]]\nmethod = "equal"\noptions = { width = [] }\n', "'runs[0].options.width'"),
        ('benchmark = "multidigitmnist"\nseeds = [0]\nplugins = ["no/such/plugin.py"]\n[[runs]]\nmethod = "equal"\n', "'plugins'"),
    ],
)
def test_invalid_definition_names_key(tmp_path, text, key):
    with pytest.raises(MtbenchError, match=key.replace("[", r"\[").replace("]", r"\]")):
        read_definition(_write(tmp_path, text))


def test_missing_and_malformed_file(tmp_path):
    with pytest.raises(MtbenchError, match="Sweep file not found"):
        read_definition(tmp_path / "absent.toml")
    with pytest.raises(MtbenchError, match="Cannot read the sweep file"):
        read_definition(_write(tmp_path, "benchmark = \n"))


def test_invalid_run_option_names_entry(tmp_path):
    path = _write(tmp_path, 'benchmark = "multidigitmnist"\nseeds = [0]\n[[runs]]\nmethod = "equal"\n[[runs]]\nmethod = "equal"\noptions = { widht = 3 }\n')

    with pytest.raises(MtbenchError, match=r"runs\[1\] \(equal widht=3\) is not a valid `mtbench run`: .*unrecognized arguments: --widht 3"):
        resolve_runs(read_definition(path))


def test_unknown_method_names_entry(tmp_path):
    path = _write(tmp_path, 'benchmark = "multidigitmnist"\nseeds = [0]\n[[runs]]\nmethod = "cosreg"\nparams = { lamda = 1 }\n')

    with pytest.raises(MtbenchError, match=r"runs\[0\] \(cosreg lamda=1\): Unknown hyper-parameter 'lamda'"):
        resolve_runs(read_definition(path))


def test_duplicate_runs_listed_once(tmp_path):
    path = _write(tmp_path, 'benchmark = "multidigitmnist"\nseeds = [0, 1]\n[[runs]]\nmethod = "cosreg"\n'
                  '[[runs]]\nmethod = "cosreg"\nparams = { lambda = 1.0 }\nseeds = [1, 2]\n')

    runs = resolve_runs(read_definition(path))

    assert [run.seed for run in runs] == [0, 1, 2]
    assert len({run.config_id for run in runs}) == 1
