"""``mtbench methods`` and ``mtbench datasets``: what the registry and the data root contain."""

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from mtbench.paths import data_root


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
    table = Table(title="Registered methods")
    table.add_column("name")
    table.add_column("reference")
    table.add_column("hyper-parameters (default)")
    for name in list_methods():
        method_class = get_method(name)
        parameters = "\n".join(
            f"{parameter.name} = {parameter.default!r}: {parameter.help}" for parameter in method_class.hyperparameters
        )
        table.add_row(name, method_class.title, parameters or "-")
    Console().print(table)
    return 0


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
            status = "not prepared" if "not found" in str(error) else "damaged: run prepare again"
            missing = True
        table.add_row(name, ", ".join(benchmark.definition.task_names), benchmark.definition.protocol, status)
    console = Console()
    console.print(table)
    if missing:
        console.print("Build a benchmark's data with `mtbench prepare NAME`.")
    return 0
