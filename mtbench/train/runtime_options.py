"""Opt-in speed switches of a run: bfloat16 autocast, channels-last inputs and torch.compile.

``--precision bf16`` changes the numbers, so it is part of the configuration
(``TrainConfig.precision``). ``--channels-last`` and ``--compile`` only change
how the same computation runs, and are not.
"""

import contextlib
import importlib.util
from dataclasses import dataclass

import torch

from mtbench.errors import MtbenchError
from mtbench.train.config import DEFAULT_PRECISION


@dataclass(frozen=True)
class ForwardOptions:
    """Settings of the model's forward pass: bfloat16 autocast or not, channels-last 4-D inputs or not."""

    autocast_dtype: torch.dtype | None = None
    channels_last: bool = False

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """Return the context of the forward pass and the task losses; the methods run outside it."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)

    def inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """Return 4-D ``inputs`` in channels-last memory format when ``channels_last`` is set, else ``inputs`` unchanged."""
        if self.channels_last and inputs.dim() == 4:
            return inputs.contiguous(memory_format=torch.channels_last)
        return inputs


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """Return the autocast dtype of ``precision``, None for fp32; raise MtbenchError where bfloat16 is not supported."""
    if precision == DEFAULT_PRECISION:
        return None
    if precision != "bf16":
        raise MtbenchError(f"Invalid precision '{precision}': use fp32 or bf16.")
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise MtbenchError(
            f"--precision bf16 needs a GPU with bfloat16 support, and {device} has none. "
            "Run with --precision fp32 (the default), or on a GPU that supports bfloat16 or on the CPU."
        )
    return torch.bfloat16


def check_compile(method_class, compile_model: bool) -> None:
    """Raise MtbenchError when ``--compile`` is requested for a method that needs double backward, which torch.compile lacks."""
    if compile_model and method_class.needs_double_backward:
        raise MtbenchError(
            f"Method '{method_class.name}' differentiates through task gradients (double backward), "
            "which a model compiled with torch.compile does not support. Run it without --compile."
        )


# Backends that torch lists but that need a package PyTorch does not depend on.
_BACKEND_PACKAGES = {"tvm": "tvm", "openxla": "torch_xla", "openxla_eval": "torch_xla"}


def compile_backends() -> list[str]:
    """Return the torch.compile backends a user can choose, leaving out PyTorch's test-only and minifier backends."""
    import torch._dynamo

    names = torch._dynamo.list_backends(exclude_tags=())
    return [name for name in names if "TESTING_ONLY" not in name and "minifier" not in name]


def check_compile_backend(name: str) -> None:
    """Raise MtbenchError when ``name`` is not a torch.compile backend, or its package is not installed."""
    backends = compile_backends()
    if name not in backends:
        raise MtbenchError(f"Unknown --compile-backend '{name}'. Backends: {', '.join(backends)}.")
    package = _BACKEND_PACKAGES.get(name)
    if package is not None and importlib.util.find_spec(package) is None:
        raise MtbenchError(
            f"--compile-backend {name} needs the Python package '{package}', which is not installed. "
            "Install it, or use inductor (the default) or aot_eager."
        )


def compile_in_place(model, backend: str) -> None:
    """Compile the encoder and each decoder of ``model`` with ``torch.compile``, in place.

    Each part is its own compiled graph, so the shared representation stays a
    node of the autograd graph between them: gradients with respect to it
    (``--param gradients=representation``, GradDrop, MGDA-UB) need that. A
    whole model compiled as one graph returns the representation as an output
    that no loss passes through, and its gradient would be missing.
    ``nn.Module.compile`` keeps the modules, so parameter names, state_dict
    and checkpoints are those of the eager model.

    Task gradients and the cosine diagnostics run several backward passes
    through one graph (``retain_graph=True``). Compiled backward passes allow
    that only without donated buffers, so these are turned off for the process.
    """
    import torch._functorch.config

    torch._functorch.config.donated_buffer = False
    model.encoder.compile(backend=backend)
    for decoder in model.decoders.values():
        decoder.compile(backend=backend)


def prepare_model(model: torch.nn.Module, channels_last: bool, compile_backend: str | None) -> torch.nn.Module:
    """Return ``model`` in channels-last memory format if requested, compiled in place with ``compile_backend`` unless it is None."""
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile_backend is not None:
        compile_in_place(model, compile_backend)
    return model
