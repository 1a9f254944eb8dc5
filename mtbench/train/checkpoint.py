"""Checkpoints that let an interrupted run continue as if it had never stopped.

A checkpoint contains everything the rest of the run depends on. That is the
model, optimiser and method state, the best epoch so far, the history and the
cosine diagnostics. It is also every random number generator: Python's,
NumPy's, PyTorch's global one, CUDA's and the one that shuffles batches. It
contains only tensors,
numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)`` and never unpickles arbitrary objects.
"""

import io
import random
from pathlib import Path

import numpy as np
import torch

from mtbench.errors import MtbenchError
from mtbench.io import atomic_write_bytes

CHECKPOINT_FORMAT = 1


def rng_state(generator: torch.Generator) -> dict:
    """Return the state of every random number generator a run draws from."""
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    version, python_state, gauss_next = random.getstate()
    state = {
        "python": [version, list(python_state), gauss_next],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gaussian],
        "torch": torch.get_rng_state(),
        "generator": generator.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict, generator: torch.Generator) -> None:
    """Put every random number generator back into the state returned by :func:`rng_state`."""
    version, python_state, gauss_next = state["python"]
    random.setstate((version, tuple(python_state), gauss_next))
    kind, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically: a crash leaves the previous checkpoint whole."""
    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path, run_id: str) -> dict:
    """Read the checkpoint of run ``run_id`` from ``path``.

    Raises MtbenchError when the file cannot be read, was written by another
    run or by an incompatible version of mtbench.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:
        # PyTorch's own text runs over many lines and suggests weights_only=False, which mtbench never uses.
        first_line = (str(error).strip().splitlines() or ["no details"])[0]
        raise MtbenchError(
            f"Cannot read the checkpoint {path}: {type(error).__name__}: {first_line}. "
            "Delete it and run again without --resume to start the run from the beginning."
        ) from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise MtbenchError(
            f"The checkpoint {path} was written by another version of mtbench. "
            "Delete it and run again without --resume to start the run from the beginning."
        )
    if state.get("run_id") != run_id:
        raise MtbenchError(
            f"The checkpoint {path} belongs to run {state.get('run_id')}, not to run {run_id}. "
            "Move it away or pass the --runs-dir of this run."
        )
    return state
