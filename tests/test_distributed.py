"""Data-parallel training gives the update of one process on the global batch."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as multiprocessing

from mtbench.methods import StepContext, get_method
from mtbench.train.distributed import Distributed, average_gradients, average_rows, global_losses

# Task gradients of each process: rank 0 has (1, 0) and (0, 1), rank 1 has (1, 0) and (-1, 1).
RANK_GRADIENTS = [[(1.0, 0.0), (0.0, 1.0)], [(1.0, 0.0), (-1.0, 1.0)]]


def _pcgrad_on_rank(rank: int, init_file: str, results: dict) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    distributed = Distributed(rank=rank, world_size=2)
    torch.manual_seed(0)
    shared = torch.nn.Parameter(torch.zeros(2))
    # loss_k = g_k . theta on a local batch of one sample of a global batch of two.
    local = {task: torch.tensor(gradient) @ shared for task, gradient in zip(("a", "b"), RANK_GRADIENTS[rank])}
    context = StepContext(
        task_losses=global_losses(local, 1, 2),
        shared_parameters=[shared],
        last_shared_parameters=[shared],
        shared_representation=shared,
        step=0,
        epoch=1,
        task_parameters={"a": [], "b": []},
        reduce_rows=lambda rows: average_rows(rows, distributed),
    )
    get_method("pcgrad")(["a", "b"]).backward(context)
    average_gradients([shared], distributed)
    results[rank] = shared.grad.tolist()
    dist.destroy_process_group()


def test_pcgrad_combines_gradients_averaged_over_processes(tmp_path):
    # Global task gradients: g1 = (1, 0), g2 = (-0.5, 1); g1 . g2 = -0.5 < 0, so
    # g1' = g1 + 0.5 / 1.25 g2 = (0.8, 0.4) and g2' = g2 + 0.5 / 1 g1 = (0, 1); the sum is (0.8, 1.4).
    # Running PCGrad in each process and averaging the results would give ((1, 1) + (0.5, 1.5)) / 2 = (0.75, 1.25).
    results = multiprocessing.Manager().dict()
    multiprocessing.spawn(_pcgrad_on_rank, args=(str(tmp_path / "init"), results), nprocs=2)
    for rank in (0, 1):
        assert results[rank] == pytest.approx([0.8, 1.4], abs=1e-6)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(data_root: Path, folder: Path, method: str, processes: int) -> dict:
    arguments = [
        "run", "--method", method, "--epochs", "2", "--batch-size", "16", "--width", "8", "--hidden-units", "16",
        "--device", "cpu", "--data-root", str(data_root), "--leaderboard-dir", str(folder / "leaderboard"),
        "--runs-dir", str(folder / "runs"),
    ]
    if processes == 1:
        command = [sys.executable, "-m", "mtbench", *arguments]
    else:
        command = [
            sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
            f"--master_port={_free_port()}", "-m", "mtbench", *arguments,
        ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    lines = (folder / "leaderboard" / "results" / "multidigitmnist.jsonl").read_text().splitlines()
    assert len(lines) == 1, "only the first process writes a record"
    return json.loads(lines[0])


@pytest.mark.parametrize("method", ["equal", "cosreg"])
def test_two_processes_match_one_process(method, tiny_data_root, tmp_path):
    single = _run(tiny_data_root, tmp_path / "single", method, 1)
    parallel = _run(tiny_data_root, tmp_path / "parallel", method, 2)

    for one, two in zip(single["history"], parallel["history"]):
        assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-4)
        assert two["mu_cos"] == pytest.approx(one["mu_cos"], abs=1e-4)
    assert parallel["test"] == pytest.approx(single["test"], abs=1e-9)
