"""Sweeps: a grid of methods, hyper-parameters, model options and seeds, run as `mtbench run` processes.

A sweep file (see :mod:`mtbench.sweep.definition`) expands to runs, one per
model and seed (:mod:`mtbench.sweep.plan`). Runs whose record exists are
skipped (:mod:`mtbench.sweep.status`), the others execute several at a time
(:mod:`mtbench.sweep.executor`), so a stopped sweep started again repeats no
finished run.
"""

from mtbench.sweep.definition import SweepDefinition, read_definition
from mtbench.sweep.executor import ExecutionSettings, SweepResult, execute_runs
from mtbench.sweep.plan import SweepRun, resolve_runs
from mtbench.sweep.status import DONE, RUNNING, TO_RUN, run_statuses

__all__ = [
    "DONE",
    "RUNNING",
    "TO_RUN",
    "ExecutionSettings",
    "SweepDefinition",
    "SweepResult",
    "SweepRun",
    "execute_runs",
    "read_definition",
    "resolve_runs",
    "run_statuses",
]
