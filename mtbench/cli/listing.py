"""``mtbench methods`` and ``mtbench datasets``: what the registry and the data root contain."""

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from mtbench.paths import data_root

if TYPE_CHECKING:
    from mtbench.methods import Method


def add_parsers(commands) -> None:
    methods = commands.add_parser(
        "methods",
        help="list registered methods with their reference and hyper-parameters",
        description="List the built-in methods, and those of --plugin files and installed packages, with their hyper-parameters.",
    )
    methods.add_argument("--plugin", action="append", default=[], type=Path, metavar="FILE", help="Python file that registers extra methods")
    methods.set_defaults(handler=list_methods_command)

    datasets = commands.add_parser(
        "datasets",
        help="list benchmarks and whether they are prepared",
        description="List the benchmarks, their tasks and protocol, and whether their data is prepared and intact.",
    )
    datasets.add_argument("--data-root", type=Path, default=None, help="folder with prepared data (default: $MTBENCH_DATA, else $MTBENCH_HOME/data, else ~/.cache/mtbench/data)")
    datasets.set_defaults(handler=list_datasets_command)


def list_methods_command(arguments: argparse.Namespace) -> int:
    from mtbench.methods import get_method, list_methods, load_plugin

    for plugin in arguments.plugin:
        load_plugin(plugin)
    table = Table(title="Registered methods", show_lines=True)
    table.add_column("method", no_wrap=True)
    table.add_column("reference, then hyper-parameters: name = default (type) and meaning", overflow="fold")
    for name in list_methods():
        table.add_row(Text(name), method_description(get_method(name)))
    Console().print(table)
    return 0


def method_description(method_class: "type[Method]") -> Group:
    """Return the reference of ``method_class`` above a grid with one hyper-parameter per row.

    Titles and help texts are wrapped in Text so that square brackets in them are printed, not read as rich markup.
    """
    reference = Text(method_class.title or "(no reference given)", style="bold")
    if not method_class.hyperparameters:
        return Group(reference, Text("no hyper-parameters"))

    grid = Table.grid(padding=(0, 2))
    grid.add_column(overflow="fold")
    grid.add_column(overflow="fold", ratio=1)
    for hyperparameter in method_class.hyperparameters:
        default = f"{hyperparameter.name} = {hyperparameter.default!r} ({hyperparameter.type.__name__})"
        grid.add_row(Text(default), Text(_help_text(method_class, hyperparameter)))
    return Group(reference, grid)


def _help_text(method_class, hyperparameter) -> str:
    """Return the option's help, narrowed for gradient methods that accept only the shared parameters."""
    if hyperparameter.name == "gradients" and not getattr(method_class, "supports_representation", True):
        return "only 'parameters' (the task gradients with respect to the shared parameters): " + method_class.representation_refusal
    return hyperparameter.help


def list_datasets_command(arguments: argparse.Namespace) -> int:
    from mtbench.benchmarks import benchmark_names, get_benchmark
    from mtbench.errors import MtbenchError

    root = arguments.data_root or data_root()
    table = Table(title=f"Benchmarks (data root: {root})")
    for column in ("name", "tasks", "protocol", "prepared"):
        table.add_column(column)
    missing = False
    for name in benchmark_names():
        benchmark = get_benchmark(name)
        try:
            status = "yes, " + benchmark.verify(root)[:12]
        except MtbenchError as error:
            # The first sentence names the file and the problem; the table has no room for the rest.
            status = "not prepared" if "not found" in str(error) else "unusable: " + str(error).split(". ")[0]
            missing = True
        table.add_row(name, ", ".join(benchmark.definition.task_names), benchmark.definition.protocol, status)
    console = Console()
    console.print(table)
    if missing:
        console.print("Build a benchmark's data with `mtbench prepare NAME`.")
    return 0
