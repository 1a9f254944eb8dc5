"""The ``mtbench run`` command line that reproduces a configuration, for messages that tell a submitter what to run.

The line sets every field of the configuration explicitly: the benchmark,
the method and each of its hyper-parameters, the tasks, the training
settings and each model option. A model option ``name`` becomes ``--name``
with underscores as dashes, and a boolean option is a flag given only when
true. Run with the listed seeds, the line gives records with the same
config_id, as long as the benchmark's ``mtbench run`` options are named
after its model options.
"""

import shlex
from collections.abc import Sequence

# train_config keys and their `mtbench run` options; "optimizer" is fixed by the benchmark and has none.
TRAIN_OPTIONS = {"epochs": "--epochs", "batch_size": "--batch-size", "learning_rate": "--lr", "precision": "--precision"}


def _value_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def reproduce_arguments(identity: dict, seeds: Sequence[int], task: str | None = None) -> list[str]:
    """Return the arguments after ``mtbench`` that run configuration ``identity`` for ``seeds``.

    ``identity`` contains the configuration fields of a record (benchmark,
    method, method_config, tasks, model_config, train_config). ``task``
    restricts the run to one task, as for one single-task model.
    """
    arguments = ["run", "--benchmark", identity["benchmark"], "--method", identity["method"]]
    for name, value in identity["method_config"].items():
        arguments += ["--param", f"{name}={_value_text(value)}"]
    for name in [task] if task is not None else identity["tasks"]:
        arguments += ["--task", name]
    for key, option in TRAIN_OPTIONS.items():
        if key in identity["train_config"]:
            arguments += [option, _value_text(identity["train_config"][key])]
    for name, value in identity["model_config"].items():
        option = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            arguments += [option] if value else []
        else:
            arguments += [option, _value_text(value)]
    return arguments + ["--seed", *(str(seed) for seed in seeds)]


def reproduce_command(identity: dict, seeds: Sequence[int], task: str | None = None) -> str:
    """Return the shell command line ``mtbench run ...`` of :func:`reproduce_arguments`."""
    return shlex.join(["mtbench", *reproduce_arguments(identity, seeds, task)])
