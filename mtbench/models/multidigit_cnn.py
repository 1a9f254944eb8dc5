"""The small CNN of the MultiDigitMNIST benchmark.

The architecture follows "Regularizing Deep Multi-Task Networks using
Orthogonal Gradients": a shared encoder of two convolutions and, per task, a
decoder of one convolution and two fully connected layers. Convolutions have no
bias and downsample with stride 2 instead of pooling; every convolution has
``width`` filters (20 in the published model). The source gives neither the
kernel size nor the hidden width of the first fully connected layer, so
mtbench uses 3x3 kernels with padding 1 and 50 hidden units.

For a 64x64 input the shared representation is ``width`` x 16 x 16 and the
decoder convolution gives ``width`` x 8 x 8 before the fully connected layers.
"""

from dataclasses import asdict, dataclass

from torch import nn

from mtbench.errors import MtbenchError
from mtbench.models.multitask import MultiTaskModel


@dataclass(frozen=True)
class MultiDigitCNNConfig:
    """Options of the MultiDigitMNIST CNN.

    ``dropout`` is the drop probability applied after every hidden activation
    (both encoder convolutions, the decoder convolution and the first fully
    connected layer); 0 disables it. ``batchnorm`` inserts batch normalisation
    after every convolution, before the ReLU.
    """

    width: int = 20
    kernel_size: int = 3
    hidden_units: int = 50
    batchnorm: bool = False
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.width < 1:
            raise MtbenchError(f"Invalid model width {self.width}: use a positive number of filters.")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise MtbenchError(f"Invalid kernel size {self.kernel_size}: use an odd positive number such as 3.")
        if self.hidden_units < 1:
            raise MtbenchError(f"Invalid hidden width {self.hidden_units}: use a positive number of units.")
        if not 0.0 <= self.dropout < 1.0:
            raise MtbenchError(f"Invalid dropout probability {self.dropout}: use a value in [0, 1).")

    def to_dict(self) -> dict:
        return asdict(self)


def _convolution_block(in_channels: int, config: MultiDigitCNNConfig) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, config.width, config.kernel_size, stride=2, padding=config.kernel_size // 2, bias=False)
    ]
    if config.batchnorm:
        layers.append(nn.BatchNorm2d(config.width))
    layers.append(nn.ReLU())
    if config.dropout > 0:
        layers.append(nn.Dropout(config.dropout))
    return nn.Sequential(*layers)


class MultiDigitCNN(MultiTaskModel):
    """Shared two-convolution encoder with one classification decoder per task."""

    def __init__(self, num_classes: dict[str, int], config: MultiDigitCNNConfig, image_size: int = 64) -> None:
        super().__init__()
        self.config = config
        self.encoder = nn.Sequential(_convolution_block(1, config), _convolution_block(config.width, config))
        self.last_shared_layer = self.encoder[-1][0]

        decoder_side = image_size // 8
        self.decoders = nn.ModuleDict()
        for task, classes in num_classes.items():
            hidden: list[nn.Module] = [nn.Linear(config.width * decoder_side * decoder_side, config.hidden_units), nn.ReLU()]
            if config.dropout > 0:
                hidden.append(nn.Dropout(config.dropout))
            self.decoders[task] = nn.Sequential(
                _convolution_block(config.width, config),
                nn.Flatten(),
                *hidden,
                nn.Linear(config.hidden_units, classes),
            )
