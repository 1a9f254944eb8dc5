"""The runs of a sweep: each grid combination resolved to one `mtbench run` per model and seed, with its run id.

A run is done when the results file contains a finished record with its
config_id and seed. To know the ids before training, each combination goes
through `mtbench run`'s own argument parsing and checks with training
replaced by a capture, so the sweep and the command always agree on the
configuration (method defaults, benchmark defaults, model options).
Single-task methods train one model per task, so each of their tasks is a
run of its own (``--task``), which lets a resumed sweep train only the
missing tasks.
"""

import contextlib
import io
import shlex
from dataclasses import dataclass, replace
from pathlib import Path

from mtbench.errors import MtbenchError
from mtbench.sweep.definition import RunSpec, Scalar, SweepDefinition


@dataclass(frozen=True)
class SweepRun:
    """One `mtbench run` of a sweep: one model (one task of a single-task method) and one seed.

    ``arguments`` follow ``mtbench`` and leave out the device, the output
    folders and ``--resume``, which the executor adds. ``identity`` contains the
    configuration fields that give ``config_id`` (see RunConfig.identity).
    """

    benchmark: str
    run_id: str
    config_id: str
    seed: int
    task: str | None
    label: str
    arguments: tuple[str, ...]
    identity: dict

    @property
    def command(self) -> str:
        """Return ``mtbench run ...`` as a shell command line, for listings."""
        return shlex.join(["mtbench", *self.arguments])


def _value_text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def spec_arguments(benchmark: str, spec: RunSpec, plugins: tuple[Path, ...]) -> list[str]:
    """Return the `mtbench run` arguments of ``spec`` without seeds and tasks."""
    arguments = ["run", "--benchmark", benchmark, "--method", spec.method]
    for name, value in spec.params.items():
        arguments += ["--param", f"{name}={_value_text(value)}"]
    for name, value in spec.options.items():
        if value is True:
            arguments.append(f"--{name}")
        elif value is not False:
            arguments += [f"--{name}", _value_text(value)]
    for plugin in plugins:
        arguments += ["--plugin", str(plugin)]
    return arguments


def _describe(spec: RunSpec) -> str:
    settings = [f"{name}={value}" for name, value in {**spec.params, **spec.options}.items()]
    return " ".join([spec.method, *settings])


def _resolve_configuration(definition: SweepDefinition, spec: RunSpec, arguments: list[str]):
    """Return the RunConfig that `mtbench run` builds from ``arguments`` for the spec's first seed."""
    from mtbench.cli.main import build_parser
    from mtbench.cli.run_command import build_run_config

    where = f"{definition.path}: runs[{spec.entry}] ({_describe(spec)})"
    full = [*arguments, "--seed", *(str(seed) for seed in spec.seeds)]
    messages = io.StringIO()
    try:
        with contextlib.redirect_stderr(messages):
            namespace = build_parser().parse_args(full)
    except SystemExit as error:
        reason = messages.getvalue().strip().splitlines()[-1:] or ["invalid arguments"]
        raise MtbenchError(f"{where} is not a valid `mtbench run`: {reason[0]}. Fix the entry and run the command again.") from error

    try:
        config, _ = build_run_config(namespace)
    except MtbenchError as error:
        raise MtbenchError(f"{where}: {error}") from error
    return config


def resolve_runs(definition: SweepDefinition) -> list[SweepRun]:
    """Return every run of ``definition`` in file order, without duplicates (same run id).

    Raises MtbenchError naming the file and entry when `mtbench run` rejects a
    combination (unknown method, hyper-parameter, option or value).
    """
    from mtbench.leaderboard.aggregate import row_label
    from mtbench.methods import get_method, list_methods, load_plugin
    from mtbench.train.run import expand_tasks

    for plugin in definition.plugins:
        load_plugin(plugin)

    runs: dict[str, SweepRun] = {}
    for spec in definition.expand(list_methods()):
        arguments = spec_arguments(definition.benchmark, spec, definition.plugins)
        config = _resolve_configuration(definition, spec, arguments)
        single_task = get_method(config.method).single_task
        for seed in spec.seeds:
            for model in expand_tasks(replace(config, seed=seed)):
                task = model.tasks[0] if single_task else None
                label = row_label(model.method, model.method_config, model.model_config, model.train.identity()) + f", seed {seed}"
                label += f", task {task}" if task is not None else ""
                run_arguments = [*arguments, *(["--task", task] if task is not None else []), "--seed", str(seed)]
                run = SweepRun(definition.benchmark, model.run_id, model.config_id, seed, task, label, tuple(run_arguments), model.identity())
                runs.setdefault(model.run_id, run)
    return list(runs.values())
