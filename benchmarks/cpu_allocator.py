"""Measure what ``mtbench.train.allocator.keep_freed_memory`` saves per training step on the CPU.

``mallopt`` settings hold for a whole process and cannot be undone cleanly,
so this command starts child processes of itself, alternately with glibc's
default settings (``MTBENCH_CPU_ALLOCATOR=default``) and with the settings
that ``mtbench run`` applies on the CPU. Each child builds the workload,
runs a few untimed steps, then times ``--steps`` steps of every method in
CPU time. The ratio per method is the median over pairs of children of
tuned time / default time, so a busy period affects both sides of a pair.

    python benchmarks/cpu_allocator.py --workload cnn
    python benchmarks/cpu_allocator.py --workload segnet --steps 10
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import format_table  # noqa: E402
from method_step_time import MethodRun  # noqa: E402
from workloads import WORKLOADS  # noqa: E402

from mtbench.train.allocator import ENVIRONMENT_VARIABLE, keep_freed_memory  # noqa: E402

DEFAULT_METHODS = "equal,mgda,pcgrad,cosreg"


def child(arguments: argparse.Namespace) -> None:
    """Time every method in this process and print one JSON object: method -> median CPU seconds per step."""
    tuned = keep_freed_memory()
    torch.set_num_threads(arguments.threads)
    workload = WORKLOADS[arguments.workload]()
    seconds = {}
    for name in arguments.methods.split(","):
        run = MethodRun(workload, name, track_cosines=True)
        for index in range(arguments.warmup):
            run.step(index)
        times = []
        for index in range(arguments.steps):
            start = time.process_time()
            run.step(index)
            times.append(time.process_time() - start)
        seconds[name] = statistics.median(times)
    print(json.dumps({"tuned": tuned, "seconds": seconds}))


def run_child(arguments: argparse.Namespace, allocator: str) -> dict:
    environment = dict(os.environ)
    environment[ENVIRONMENT_VARIABLE] = allocator
    command = [sys.executable, __file__, "--child", "--workload", arguments.workload, "--methods", arguments.methods]
    command += ["--steps", str(arguments.steps), "--warmup", str(arguments.warmup), "--threads", str(arguments.threads)]
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="cnn", help="model and data to train")
    parser.add_argument("--methods", default=DEFAULT_METHODS, help="comma-separated method names")
    parser.add_argument("--pairs", type=int, default=3, help="pairs of child processes (default settings, then tuned)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per method in each child")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per method in each child")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (torch.set_num_threads)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        child(arguments)
        return

    torch.set_num_threads(arguments.threads)
    print(f"{WORKLOADS[arguments.workload]().description}; torch {torch.__version__}, {arguments.threads} thread(s) per child process")
    print(f"{arguments.pairs} pairs of processes, {arguments.steps} timed steps per method after {arguments.warmup} warm-up steps", flush=True)
    default_runs, tuned_runs = [], []
    for _ in range(arguments.pairs):
        default_runs.append(run_child(arguments, "default"))
        tuned_runs.append(run_child(arguments, "tuned"))
    if not all(run["tuned"] for run in tuned_runs):
        sys.exit("keep_freed_memory() could not tune this C library, so there is nothing to compare.")

    rows = []
    for name in arguments.methods.split(","):
        default = statistics.median(run["seconds"][name] for run in default_runs)
        tuned = statistics.median(run["seconds"][name] for run in tuned_runs)
        ratio = statistics.median(t["seconds"][name] / d["seconds"][name] for d, t in zip(default_runs, tuned_runs))
        rows.append([name, f"{default * 1000:.1f}", f"{tuned * 1000:.1f}", f"{ratio:.2f}"])
    print()
    print(format_table(["method", "default CPU ms/step", "tuned CPU ms/step", "tuned / default"], rows))


if __name__ == "__main__":
    main()
