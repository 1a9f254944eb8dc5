"""Time mtbench's methods against LibMTL's implementations of the same methods, side by side.

For each pair below, an mtbench method and a LibMTL weighting class train
their own copies of the same model, from the same initial weights, on the
same random batches in this one process, interleaved round by round (see
``benchmarks/measure.py``). Reports the median step time of each, the ratio
mtbench / LibMTL (below 1 means mtbench is faster) in wall-clock and CPU
time, the FLOPs of one step of each, and the peak tensor memory of one step
of each, gradients held from the previous step included.

LibMTL is not a dependency of mtbench. Put it outside the repository and
pass the folder that contains the ``LibMTL`` package. The PyPI release
(1.1.5) lacks several methods; the source on GitHub
(median-research-group/LibMTL) has them all, and its Nash-MTL needs cvxpy:

    pip install --target /tmp/libmtl --no-deps LibMTL
    python benchmarks/libmtl_comparison.py --libmtl-path /tmp/libmtl --workload cnn

    git clone https://github.com/median-research-group/LibMTL /tmp/libmtl-git
    pip install cvxpy
    python benchmarks/libmtl_comparison.py --libmtl-path /tmp/libmtl-git --workload cnn

A pair whose LibMTL class is missing or raises an exception gets a row with the reason.

Only LibMTL's ``LibMTL.weighting`` modules are imported. The package's
``__init__`` is skipped, because in LibMTL 1.1.5 it imports a torchvision
module that recent torchvision versions no longer have.

Both sides run without cosine tracking, which LibMTL does not have. Each
side follows its own trainer: mtbench clears gradients with
``zero_grad(set_to_none=True)`` and steps a fused Adam (see
``mtbench/train/optimizer.py``), LibMTL clears them with
``set_to_none=False`` and steps a plain ``torch.optim.Adam``, unless
``--libmtl-fused-adam`` gives it the fused one too. LibMTL's
GradNorm and DWA use plain weights in their first epochs, so the adapter
puts them in epoch 2 with a loss history of ones, where both compute their
weights.
"""

import argparse
import importlib
import importlib.util
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import add_timing_arguments, count_flops, format_table, interleaved_timings, machine_line, peak_memory, round_ratio, set_up_process  # noqa: E402
from workloads import WORKLOADS, Workload, train_step  # noqa: E402

from mtbench.methods import get_method  # noqa: E402
from mtbench.models.multitask import MultiTaskModel  # noqa: E402
from mtbench.train.optimizer import build_adam  # noqa: E402


@dataclass(frozen=True)
class Pair:
    """An mtbench method and LibMTL's weighting class for the same method, with matching hyper-parameters."""

    label: str
    method: str
    method_arguments: dict
    libmtl_class: str
    libmtl_arguments: dict


PAIRS = [
    Pair("EW", "equal", {}, "EW", {}),
    Pair("GradNorm", "gradnorm", {"alpha": 1.5}, "GradNorm", {"alpha": 1.5}),
    Pair("UW", "uncertainty", {}, "UW", {}),
    Pair("DWA", "dwa", {"temperature": 2.0}, "DWA", {"T": 2.0}),
    Pair("RLW", "rlw", {}, "RLW", {}),
    Pair("GLS", "gls", {}, "GLS", {}),
    Pair("MGDA", "mgda", {"normalization": "none"}, "MGDA", {"mgda_gn": "none"}),
    Pair("PCGrad", "pcgrad", {}, "PCGrad", {}),
    Pair("CAGrad", "cagrad", {"c": 0.4, "rescale": 1}, "CAGrad", {"calpha": 0.4, "rescale": 1}),
    Pair("Nash-MTL", "nash-mtl", {}, "Nash_MTL", {"update_weights_every": 1, "optim_niter": 20, "max_norm": 1.0}),
    Pair("UPGrad", "upgrad", {}, "UPGrad", {"UPGrad_norm_eps": 1e-4, "UPGrad_reg_eps": 1e-4}),
    Pair("IMTL", "imtl", {}, "IMTL", {}),
    Pair("Aligned-MTL", "aligned-mtl", {}, "Aligned_MTL", {}),
    Pair("GradVac", "gradvac", {"beta": 0.5}, "GradVac", {"GradVac_beta": 0.5, "GradVac_group_type": 0}),
    Pair("DB-MTL", "db-mtl", {"beta": 0.9, "beta_sigma": 0.0}, "DB_MTL", {"DB_beta": 0.9, "DB_beta_sigma": 0.0}),
    Pair(
        "MoCo",
        "moco",
        {"normalize_gradients": True},
        "MoCo",
        {"MoCo_beta": 0.5, "MoCo_beta_sigma": 0.5, "MoCo_gamma": 0.1, "MoCo_gamma_sigma": 0.5, "MoCo_rho": 0.0},
    ),
]

# The epoch the adapter reports to LibMTL, and the number of epochs in its loss history.
LIBMTL_EPOCH = 2
LIBMTL_HISTORY_EPOCHS = 3


def import_libmtl_weighting(libmtl_path: Path | None) -> types.ModuleType:
    """Import ``LibMTL.weighting`` without running ``LibMTL/__init__.py``; exit with a message when LibMTL is missing."""
    if libmtl_path is not None:
        sys.path.insert(0, str(libmtl_path))
    spec = importlib.util.find_spec("LibMTL")
    if spec is None or not spec.submodule_search_locations:
        where = f" in {libmtl_path}" if libmtl_path is not None else ""
        sys.exit(
            f"LibMTL is not installed{where}. Install it outside the repository with "
            "`pip install --target /tmp/libmtl --no-deps LibMTL` and run this script with --libmtl-path /tmp/libmtl."
        )
    package = types.ModuleType("LibMTL")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["LibMTL"] = package
    return importlib.import_module("LibMTL.weighting")


def libmtl_adapter(weighting_class: type, model: MultiTaskModel, tasks: list[str], device: torch.device):
    """Return an instance of ``weighting_class`` with the attributes that LibMTL's trainer would give it.

    LibMTL combines a weighting class and an architecture class into one
    model. The adapter supplies what the weighting modules read from the
    architecture and the trainer. These are the task names and count, the
    device, ``rep_grad`` (False: gradients of the shared parameters), the
    epoch and the per-epoch loss history. It also gives the shared parameters
    of ``model``'s encoder, whose gradients it zeroes as torch 1.x did. The encoder is not registered as a submodule, so the adapter's own
    parameters are only those of the weighting (such as GradNorm's scales).
    """

    class Adapter(weighting_class):
        def __init__(self) -> None:
            super().__init__()
            self.task_name = list(tasks)
            self.task_num = len(tasks)
            self.device = device
            self.rep_grad = False
            self.epoch = LIBMTL_EPOCH
            self.train_loss_buffer = np.ones((len(tasks), LIBMTL_HISTORY_EPOCHS))

        @property
        def encoder(self) -> torch.nn.Module:
            # GradVac reads the encoder's layers. A property, so that the encoder is not registered as a submodule.
            return model.encoder

        def get_share_params(self):
            return model.encoder.parameters()

        def zero_grad_share_params(self) -> None:
            # LibMTL 1.1.5 was written for torch 1.x, whose zero_grad() kept zero tensors; with None
            # gradients its _reset_grad fails.
            model.encoder.zero_grad(set_to_none=False)

    adapter = Adapter()
    adapter.init_param()
    return adapter


class MtbenchRun:
    def __init__(self, workload: Workload, pair: Pair) -> None:
        self.workload = workload
        self.model = workload.build_model()
        self.model.train()
        self.method = get_method(pair.method)(workload.tasks, **pair.method_arguments)
        self.optimizer = build_adam(list(self.model.parameters()) + list(self.method.parameters()), 1e-3, workload.device)

    def step(self, index: int) -> None:
        batch = self.workload.batches[index % len(self.workload.batches)]
        train_step(self.model, self.method, self.optimizer, self.workload, batch, index, track_cosines=False)

    def modules(self) -> tuple[torch.nn.Module, ...]:
        return (self.model, self.method)


class LibmtlRun:
    def __init__(self, workload: Workload, pair: Pair, weighting_class: type, fused_adam: bool = False) -> None:
        self.workload = workload
        self.model = workload.build_model()
        self.model.train()
        self.weighting = libmtl_adapter(weighting_class, self.model, workload.tasks, workload.device)
        self.arguments = pair.libmtl_arguments
        own_parameters = list(self.weighting.parameters())
        # LibMTL's trainer builds a plain torch.optim.Adam; --libmtl-fused-adam gives it mtbench's fused one instead.
        if fused_adam:
            self.optimizer = build_adam(list(self.model.parameters()) + own_parameters, 1e-3, workload.device)
        else:
            self.optimizer = torch.optim.Adam(list(self.model.parameters()) + own_parameters, lr=1e-3)

    def step(self, index: int) -> None:
        inputs, targets = self.workload.batches[index % len(self.workload.batches)]
        _, outputs = self.model(inputs)
        losses = torch.stack([self.workload.task_loss(task, outputs[task], targets[task]) for task in self.workload.tasks])
        self.optimizer.zero_grad(set_to_none=False)
        self.weighting.backward(losses, **self.arguments)
        self.optimizer.step()

    def modules(self) -> tuple[torch.nn.Module, ...]:
        return (self.model, self.weighting)


def compare(workload: Workload, pair: Pair, weighting_module: types.ModuleType, arguments: argparse.Namespace) -> list[str]:
    """Return one table row for ``pair``; for a LibMTL class that is missing or fails, the row reports why."""
    weighting_class = getattr(weighting_module, pair.libmtl_class, None)
    if weighting_class is None:
        return [pair.label, "-", "-", "-", "-", "-", "-", "-", "-", f"LibMTL has no {pair.libmtl_class} weighting; skipped"]

    mtbench_run = MtbenchRun(workload, pair)
    libmtl_run = LibmtlRun(workload, pair, weighting_class, arguments.libmtl_fused_adam)
    try:
        libmtl_run.step(0)
    except Exception as error:  # a failure inside LibMTL is a result to report, not a crash
        return [pair.label, "-", "-", "-", "-", "-", "-", "-", "-", f"LibMTL failed: {type(error).__name__}: {str(error).splitlines()[0]}"]

    runs = {"mtbench": mtbench_run, "libmtl": libmtl_run}
    timings = interleaved_timings({name: run.step for name, run in runs.items()}, arguments.rounds, arguments.steps, arguments.warmup)
    memory, flops = {}, {}
    for name, run in runs.items():
        flops[name] = count_flops(lambda: run.step(0))
        with peak_memory(workload.device, gradients_of=run.modules()) as peak:
            run.step(1)
        memory[name] = peak["peak_mb"]

    return [
        pair.label,
        f"{timings['mtbench'].median_wall() * 1000:.1f}",
        f"{timings['libmtl'].median_wall() * 1000:.1f}",
        f"{round_ratio(timings['mtbench'].wall, timings['libmtl'].wall):.2f}",
        f"{round_ratio(timings['mtbench'].cpu, timings['libmtl'].cpu):.2f}",
        f"{flops['mtbench'] / 1e9:.2f}",
        f"{flops['libmtl'] / 1e9:.2f}",
        f"{memory['mtbench']:.1f}",
        f"{memory['libmtl']:.1f}",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--libmtl-path", type=Path, default=None, help="folder that contains the LibMTL package")
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="cnn", help="model and data to train")
    add_timing_arguments(parser, rounds=10, steps=3, warmup=3, candidate="side")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda to measure on the GPU")
    parser.add_argument(
        "--libmtl-fused-adam", action="store_true", help="give LibMTL's side the same fused Adam as mtbench's, to separate the optimiser's share"
    )
    arguments = parser.parse_args()

    weighting_module = import_libmtl_weighting(arguments.libmtl_path)
    set_up_process(arguments.threads)
    workload = WORKLOADS[arguments.workload](device=torch.device(arguments.device))
    print(f"{workload.description}; {machine_line()}; LibMTL from {Path(weighting_module.__file__).parent.parent}")
    adam = "fused, as mtbench's" if arguments.libmtl_fused_adam else "plain torch.optim.Adam, as its trainer's"
    print(
        f"{arguments.rounds} rounds of {arguments.steps} steps after {arguments.warmup} warm-up steps, no cosine tracking; "
        f"LibMTL's Adam: {adam}",
        flush=True,
    )

    header = [
        "method",
        "mtbench ms/step",
        "LibMTL ms/step",
        "mtbench / LibMTL (wall)",
        "mtbench / LibMTL (CPU)",
        "mtbench GFLOP/step",
        "LibMTL GFLOP/step",
        "mtbench peak MiB",
        "LibMTL peak MiB",
        "note",
    ]
    rows = []
    for pair in PAIRS:
        rows.append(compare(workload, pair, weighting_module, arguments))
        print(format_table(header, rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(format_table(header, rows))


if __name__ == "__main__":
    main()
