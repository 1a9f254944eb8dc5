"""Facts about the software and hardware of a run, stored in its record."""

import os
import resource
import subprocess
import sys
from pathlib import Path

import torch

import mtbench


def resolve_device(requested: str) -> torch.device:
    """Return CUDA when ``requested`` is "auto" and a GPU exists, else the requested device."""
    from mtbench.errors import MtbenchError

    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as error:
        raise MtbenchError(f"Invalid device '{requested}': use auto, cpu, cuda or cuda:N.") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MtbenchError(f"Device '{requested}' requested, but PyTorch sees no CUDA GPU. Use --device cpu or auto.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise MtbenchError(f"Device '{requested}' requested, but this PyTorch build has no MPS support. Use --device cpu or auto.")
    return device


def use_deterministic_algorithms(enabled: bool) -> None:
    """Make PyTorch pick deterministic kernels, or raise when an operation has none.

    On CPU mtbench runs are deterministic without this switch. On CUDA, some
    kernels (atomic adds in convolution and pooling backward passes, cuBLAS
    workspaces) reorder floating-point sums between runs. The switch replaces
    them with deterministic ones at some cost in speed. cuBLAS reads
    ``CUBLAS_WORKSPACE_CONFIG`` when CUDA starts, so it is set here, before
    any CUDA work, unless the user set it already.
    """
    if not enabled:
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


def peak_memory_mb(device: torch.device) -> float:
    """Return peak GPU memory allocated by tensors on CUDA, else the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kibibytes, macOS bytes.
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def git_commit() -> str | None:
    """Return the commit of the mtbench checkout, or None outside a git repository."""
    package_folder = Path(mtbench.__file__).resolve().parent
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=package_folder, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return completed.stdout.strip() or None if completed.returncode == 0 else None


def versions() -> dict[str, str]:
    return {"mtbench_version": mtbench.__version__, "torch_version": torch.__version__}
