"""``mtbench run``: train a method on a benchmark for one or more seeds."""

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from mtbench.cli.help import DefaultsHelpFormatter
from mtbench.cli.prepare_command import check_data_root
from mtbench.errors import MtbenchError
from mtbench.paths import data_root, project_root

if TYPE_CHECKING:
    from mtbench.train.config import RunConfig


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "run",
        help="train a method on a benchmark and append its result record",
        description=(
            "Train a multi-task method, select the epoch with the best validation score, score it on test "
            "and append one record per seed (and per task for single-task models) to the leaderboard results."
        ),
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("--benchmark", default="multidigitmnist", help="benchmark name (see `mtbench datasets`)")
    parser.add_argument("--method", required=True, help="method name (see `mtbench methods`)")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="method hyper-parameter, repeatable, e.g. --param lambda=0.1 (see `mtbench methods` for names and defaults)",
    )
    parser.add_argument("--plugin", action="append", default=[], type=Path, metavar="FILE", help="Python file that registers extra methods, repeatable")

    parser.add_argument(
        "--seed", type=int, nargs="+", action="extend", default=None, help="one or more seeds, repeatable; each gives its own record (default: 0)"
    )
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the benchmark's, 12 for multidigitmnist)")
    parser.add_argument("--batch-size", type=int, default=None, help="images per training step (default: the benchmark's, 64)")
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the benchmark's, 0.001)")

    parser.add_argument("--width", type=int, default=None, help="filters in every convolution of the MultiDigitMNIST CNN (default 20); filters of SegNet's first block (default 64)")
    parser.add_argument("--kernel-size", type=int, default=None, help="convolution kernel size in pixels (MultiDigitMNIST CNN, default 3)")
    parser.add_argument("--hidden-units", type=int, default=None, help="units of each decoder's first fully connected layer (MultiDigitMNIST CNN, default 50)")
    parser.add_argument("--batchnorm", action="store_true", help="batch normalisation after every convolution (MultiDigitMNIST CNN; SegNet always has it)")
    parser.add_argument(
        "--pretrained",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start SegNet's encoder from torchvision's ImageNet VGG16-bn weights (default: the benchmark's, on)",
    )
    parser.add_argument("--dropout", type=float, default=None, help="dropout probability after every hidden layer of the MultiDigitMNIST CNN; 0 (the default) disables it")

    parser.add_argument("--task", action="append", default=None, help="train only these tasks (repeatable); default: all")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available, else CPU), cpu, cuda or cuda:N")
    parser.add_argument("--cosine-every", type=int, default=1, help="record gradient cosines every N training steps")

    parser.add_argument("--data-root", type=Path, default=None, help="folder with prepared data (default: $MTBENCH_DATA, else $MTBENCH_HOME/data, else ~/.cache/mtbench/data)")
    parser.add_argument("--leaderboard-dir", type=Path, default=None, help="folder for result records (default: leaderboard/ in the repository)")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="folder for checkpoints")
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="use only deterministic PyTorch kernels (needed for repeatable results on GPU; CPU runs repeat without it)",
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="number format of the forward pass and task losses: bf16 runs them under bfloat16 autocast; "
        "it changes the results, so it is part of the configuration id",
    )
    parser.add_argument(
        "--channels-last",
        action="store_true",
        help="keep the model and 4-D inputs in channels-last memory format (may be faster on GPUs; not part of the configuration id)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="compile the encoder and each decoder with torch.compile (not part of the configuration id; not for methods that need double backward, such as cosreg)",
    )
    parser.add_argument(
        "--compile-backend", default=None, metavar="NAME", help="torch.compile backend used with --compile (default inductor), e.g. aot_eager"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue each run from its last epoch checkpoint under --runs-dir (a run without one starts from the beginning)",
    )
    parser.set_defaults(handler=run)


def parse_method_parameters(method_class, assignments: list[str]) -> dict:
    """Turn NAME=VALUE strings into typed hyper-parameters, starting from the method's defaults, as records store them."""
    from mtbench.methods.base import recorded_parameters

    known = {hyperparameter.name: hyperparameter for hyperparameter in method_class.hyperparameters}
    values = {name: hyperparameter.default for name, hyperparameter in known.items()}
    assignment_of: dict[str, str] = {}
    for assignment in assignments:
        name, separator, text = assignment.partition("=")
        if not separator:
            raise MtbenchError(f"Invalid --param '{assignment}': write it as NAME=VALUE, e.g. lambda=0.1.")
        if name not in known:
            valid = ", ".join(known) or "none"
            raise MtbenchError(f"Unknown hyper-parameter '{name}' for method '{method_class.name}'. Valid names: {valid}.")
        if name in assignment_of:
            raise MtbenchError(f"Conflicting options --param {assignment_of[name]} and --param {assignment}: give '{name}' once.")
        assignment_of[name] = assignment
        values[name] = _convert(known[name], text)
    for name, value in values.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise MtbenchError(f"Hyper-parameter '{name}' of method '{method_class.name}' is {value}: pass a finite value with --param {name}=VALUE.")
    return recorded_parameters(method_class.hyperparameters, values)


def _convert(hyperparameter, text: str):
    if hyperparameter.type is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise MtbenchError(f"Invalid value '{text}' for {hyperparameter.name}: use true or false.")
    try:
        value = hyperparameter.type(text)
    except ValueError as error:
        raise MtbenchError(f"Invalid value '{text}' for {hyperparameter.name}: expected {hyperparameter.type.__name__}.") from error
    if isinstance(value, float) and not math.isfinite(value):
        raise MtbenchError(f"Invalid value '{text}' for {hyperparameter.name}: use a finite number.")
    if isinstance(value, float) and value == 0.0:
        # -0.0 and 0.0 are one setting and must give one configuration id.
        value = 0.0
    return value


def _positive(name: str, value) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise MtbenchError(f"Invalid {name} {value}: use a positive number.")


def _check_seeds(seeds: list[int]) -> None:
    for seed in seeds:
        if not 0 <= seed < 2**32:
            raise MtbenchError(f"Invalid --seed {seed}: use an integer from 0 to 2**32 - 1.")
    if len(set(seeds)) != len(seeds):
        raise MtbenchError(f"Duplicate seeds in --seed {' '.join(map(str, seeds))}: give each seed once.")


def _check_device(device: str) -> None:
    kind = device.split(":")[0]
    if kind not in ("auto", "cpu", "cuda", "mps"):
        raise MtbenchError(f"Invalid --device '{device}': use auto, cpu, cuda, cuda:N or mps.")


def run(arguments: argparse.Namespace) -> int:
    from mtbench.train.run import run_configuration

    config, seeds = build_run_config(arguments)
    run_configuration(config, seeds, Console())
    return 0


def build_run_config(arguments: argparse.Namespace) -> tuple["RunConfig", list[int]]:
    """Check the parsed `mtbench run` arguments and return the run configuration and its seeds.

    Loads the plugins named with ``--plugin``. Raises MtbenchError naming the
    first invalid option or value.
    """
    from mtbench.benchmarks import get_benchmark
    from mtbench.methods import get_method, load_plugin
    from mtbench.train.config import RunConfig, TrainConfig
    from mtbench.train.runtime_options import check_compile, check_compile_backend
    from mtbench.train.trainer import build_method

    seeds = arguments.seed or [0]
    for name in ("epochs", "batch_size", "lr", "cosine_every"):
        _positive("--" + name.replace("_", "-"), getattr(arguments, name))
    _check_seeds(seeds)
    _check_device(arguments.device)
    check_data_root(arguments.data_root or data_root())
    for plugin in arguments.plugin:
        load_plugin(plugin)
    benchmark = get_benchmark(arguments.benchmark)
    method_class = get_method(arguments.method)
    check_compile(method_class, arguments.compile)
    if arguments.compile_backend is not None and not arguments.compile:
        raise MtbenchError(f"--compile-backend {arguments.compile_backend} has no effect without --compile. Add --compile, or drop it.")
    compile_backend = "inductor" if arguments.compile_backend is None else arguments.compile_backend
    if arguments.compile:
        check_compile_backend(compile_backend)
    method_config = parse_method_parameters(method_class, arguments.param)

    tasks = arguments.task or benchmark.definition.task_names
    if len(set(tasks)) != len(tasks):
        raise MtbenchError(f"Duplicate task in --task {' '.join(tasks)}: give each task once.")
    unknown = sorted(set(tasks) - set(benchmark.definition.task_names))
    if unknown:
        raise MtbenchError(f"Unknown task(s) {unknown} for {arguments.benchmark}. Tasks: {benchmark.definition.task_names}.")

    defaults = benchmark.definition.training
    train = TrainConfig(
        epochs=arguments.epochs or defaults.get("epochs", 10),
        batch_size=arguments.batch_size or defaults.get("batch_size", 64),
        learning_rate=arguments.lr or defaults.get("learning_rate", 1e-3),
        optimizer=defaults.get("optimizer", "adam"),
        lr_decay_factor=defaults.get("lr_decay_factor"),
        lr_decay_every=defaults.get("lr_decay_every"),
        precision=arguments.precision,
    )
    command_line_options = {
        "width": arguments.width,
        "kernel_size": arguments.kernel_size,
        "hidden_units": arguments.hidden_units,
        "dropout": arguments.dropout,
        "pretrained": arguments.pretrained,
        "batchnorm": True if arguments.batchnorm else None,
    }
    # Records store every option of the model, the benchmark's defaults included.
    model_config = benchmark.model_options({name: value for name, value in command_line_options.items() if value is not None})
    config = RunConfig(
        benchmark=arguments.benchmark,
        protocol=benchmark.definition.protocol,
        method=arguments.method,
        method_config=method_config,
        tasks=tuple(tasks),
        model=benchmark.definition.model,
        model_config=model_config,
        train=train,
        seed=seeds[0],
        device=arguments.device,
        data_root=arguments.data_root or data_root(),
        leaderboard_dir=arguments.leaderboard_dir or project_root() / "leaderboard",
        runs_dir=arguments.runs_dir,
        cosine_every=arguments.cosine_every,
        resume=arguments.resume,
        deterministic=arguments.deterministic,
        channels_last=arguments.channels_last,
        compile=arguments.compile,
        compile_backend=compile_backend,
    )
    # Built once here so that a rejected hyper-parameter stops the command before any data is read.
    checked_tasks = list(config.tasks[:1]) if method_class.single_task else list(config.tasks)
    build_method(config.method, checked_tasks, config.method_config)
    return config, seeds
