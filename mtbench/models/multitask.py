"""The hard-parameter-sharing interface that every mtbench model implements."""

import torch
from torch import nn


class MultiTaskModel(nn.Module):
    """A shared encoder followed by one decoder per task.

    Subclasses set ``encoder`` (a module mapping inputs to the shared
    representation), ``decoders`` (an ``nn.ModuleDict`` keyed by task name) and
    ``last_shared_layer`` (the encoder's last parameterised layer, whose
    parameters CosReg and GradNorm use for task gradients).
    """

    encoder: nn.Module
    decoders: nn.ModuleDict
    last_shared_layer: nn.Module

    @property
    def tasks(self) -> list[str]:
        return list(self.decoders.keys())

    def shared_parameters(self) -> list[nn.Parameter]:
        return [parameter for parameter in self.encoder.parameters() if parameter.requires_grad]

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return [parameter for parameter in self.last_shared_layer.parameters() if parameter.requires_grad]

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return [parameter for parameter in self.decoders[task].parameters() if parameter.requires_grad]

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the shared representation and each task's output."""
        representation = self.encoder(inputs)
        outputs = {task: decoder(representation) for task, decoder in self.decoders.items()}
        return representation, outputs
