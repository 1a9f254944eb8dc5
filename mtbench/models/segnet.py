"""SegNet with a shared VGG16-bn encoder and one decoder per dense task.

The architecture follows Badrinarayanan, Kendall and Cipolla, "SegNet: A Deep
Convolutional Encoder-Decoder Architecture for Image Segmentation" (TPAMI
2017), in the multi-task form of hard parameter sharing. The shared encoder is
the 13 convolutional layers of VGG16 with batch normalisation. They form 5
blocks of 2, 2, 3, 3 and 3 convolutions of 3 x 3 with ``width`` x (1, 2, 4, 8,
8) filters (``width`` is 64 in VGG16). Each block ends with a 2 x 2
max-pooling that records the position of every maximum.

Every task has its own decoder, which mirrors the encoder blocks in reverse.
A decoder block starts with max-unpooling, which puts each value back where
the encoder's pooling found its maximum. Then come as many 3 x 3 convolutions
with batch normalisation and ReLU as the encoder block has, and the last one
gives the channels of the block below.

Targets are smaller than inputs in the mtbench protocols (80 x 80 for
320 x 320 inputs). The decoder therefore stops at the target resolution:
it undoes only the last ``decoder_stages`` poolings (3 of 5 for a factor of
4), and a 1 x 1 convolution maps its features to the task's channels. This
skips the two decoder blocks at 160 x 160 and 320 x 320, the most expensive
ones, instead of decoding to the input size and pooling afterwards. With
targets at the input size, as at 288 x 384, the decoder is the full
symmetric SegNet decoder.

Outputs: segmentation logits (C channels), depth in metres (1 channel, no
activation), surface normals (3 channels, normalised to unit length per
pixel).

The shared representation that ``forward`` returns is the output of the fifth
pooling. Decoders read the encoder only through that tensor and the pooling
indices, which are integers and carry no gradient, so gradients with respect
to the representation are complete. ``last_shared_layer`` is the encoder's
13th convolution.
"""

import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional

from mtbench.errors import MtbenchError
from mtbench.models.multitask import MultiTaskModel

# Convolutions per VGG16 block and each block's filters relative to the first block's.
BLOCK_CONVOLUTIONS = (2, 2, 3, 3, 3)
BLOCK_WIDTH_FACTORS = (1, 2, 4, 8, 8)
VGG16_WIDTH = 64

# One pooling indices tensor per encoder block, with the block's size before pooling.
PoolingRecord = list[tuple[torch.Tensor, torch.Size]]


@dataclass(frozen=True)
class SegNetConfig:
    """Options of SegNet.

    ``width`` is the number of filters of the first encoder block (64 in
    VGG16). The other blocks use 2, 4, 8 and 8 times as many, and so do the
    decoders. ``pretrained`` initialises the encoder from torchvision's
    ImageNet weights of VGG16-bn, which exist only for width 64. Decoders and
    output layers always start from random weights.
    """

    width: int = VGG16_WIDTH
    pretrained: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.width, bool) or not isinstance(self.width, int) or self.width < 1:
            raise MtbenchError(f"Invalid SegNet width {self.width!r}: use a positive number of filters (64 for VGG16).")
        if not isinstance(self.pretrained, bool):
            raise MtbenchError(f"Invalid SegNet option pretrained={self.pretrained!r}: use true or false.")
        if self.pretrained and self.width != VGG16_WIDTH:
            raise MtbenchError(
                f"ImageNet weights of VGG16-bn exist only for width {VGG16_WIDTH}, but width is {self.width}. "
                f"Use width {VGG16_WIDTH}, or pretrained=false for random weights."
            )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DenseHead:
    """The output of one task: ``channels`` per pixel, normalised to unit length when ``unit_vectors``."""

    channels: int
    unit_vectors: bool = False


def decoder_stages_for(input_size: Sequence[int], target_size: Sequence[int]) -> int:
    """Return how many poolings a decoder must undo to turn ``input_size`` features into ``target_size`` outputs.

    Pooling halves each side, rounding down, so the target must be the input
    size after 0 to 4 poolings. Raises MtbenchError otherwise, and when the
    input is too small for the five poolings of the encoder.
    """
    height, width = (int(side) for side in input_size)
    if min(height, width) < 2 ** len(BLOCK_CONVOLUTIONS):
        raise MtbenchError(f"Input size {height}x{width} is too small for SegNet: each side needs at least {2 ** len(BLOCK_CONVOLUTIONS)} pixels.")
    sizes = [(height, width)]
    for _ in BLOCK_CONVOLUTIONS:
        sizes.append((sizes[-1][0] // 2, sizes[-1][1] // 2))
    target = tuple(int(side) for side in target_size)
    for poolings, size in enumerate(sizes[:-1]):
        if size == target:
            return len(BLOCK_CONVOLUTIONS) - poolings
    valid = ", ".join(f"{size[0]}x{size[1]}" for size in sizes[:-1])
    raise MtbenchError(f"Target size {target[0]}x{target[1]} does not fit SegNet with input size {height}x{width}: use one of {valid}.")


def _convolution(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


def block_widths(width: int) -> list[int]:
    return [width * factor for factor in BLOCK_WIDTH_FACTORS]


class SegNetEncoder(nn.Module):
    """The 13 VGG16 convolutions with batch normalisation, pooling after each of the 5 blocks."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        in_channels = 3
        for convolutions, channels in zip(BLOCK_CONVOLUTIONS, block_widths(width)):
            layers: list[nn.Module] = []
            for _ in range(convolutions):
                layers += _convolution(in_channels, channels)
                in_channels = channels
            self.blocks.append(nn.Sequential(*layers))
        self.pool = nn.MaxPool2d(2, stride=2, return_indices=True)

    @property
    def last_convolution(self) -> nn.Conv2d:
        return self.blocks[-1][-3]

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, PoolingRecord]:
        """Return the features after the fifth pooling and, per block, the pooling indices and pre-pooling size."""
        pooling: PoolingRecord = []
        features = inputs
        for block in self.blocks:
            features = block(features)
            size = features.shape
            features, indices = self.pool(features)
            pooling.append((indices, size))
        return features, pooling


class SegNetDecoder(nn.Module):
    """Decoder blocks that mirror the last ``stages`` encoder blocks, then a 1 x 1 output convolution."""

    def __init__(self, width: int, stages: int, head: DenseHead) -> None:
        super().__init__()
        widths = block_widths(width)
        self.stages = stages
        self.unit_vectors = head.unit_vectors
        self.unpool = nn.MaxUnpool2d(2, stride=2)
        self.blocks = nn.ModuleList()
        for block in reversed(range(len(BLOCK_CONVOLUTIONS) - stages, len(BLOCK_CONVOLUTIONS))):
            channels = widths[block]
            out_channels = widths[block - 1] if block > 0 else channels
            layers: list[nn.Module] = []
            for _ in range(BLOCK_CONVOLUTIONS[block] - 1):
                layers += _convolution(channels, channels)
            layers += _convolution(channels, out_channels)
            self.blocks.append(nn.Sequential(*layers))
        self.output = nn.Conv2d(out_channels, head.channels, 1)

    def forward(self, representation: torch.Tensor, pooling: PoolingRecord) -> torch.Tensor:
        features = representation
        for block, (indices, size) in zip(self.blocks, reversed(pooling)):
            features = block(self.unpool(features, indices, output_size=size[-2:]))
        outputs = self.output(features)
        return functional.normalize(outputs, dim=1) if self.unit_vectors else outputs


class SegNet(MultiTaskModel):
    """Shared SegNet encoder and one SegNet decoder per task, each ending at the target resolution.

    ``heads`` maps each task to its output; ``decoder_stages`` (from
    :func:`decoder_stages_for`) sets the output resolution: input size / 2**(5 - stages).
    """

    def __init__(self, heads: Mapping[str, DenseHead], config: SegNetConfig, decoder_stages: int) -> None:
        super().__init__()
        if not 1 <= decoder_stages <= len(BLOCK_CONVOLUTIONS):
            raise MtbenchError(f"Invalid number of SegNet decoder stages {decoder_stages}: use 1 to {len(BLOCK_CONVOLUTIONS)}.")
        self.config = config
        self.encoder = SegNetEncoder(config.width)
        self.last_shared_layer = self.encoder.last_convolution
        self.decoders = nn.ModuleDict({task: SegNetDecoder(config.width, decoder_stages, head) for task, head in heads.items()})
        if config.pretrained:
            copy_vgg16_bn_features(self.encoder, load_vgg16_bn_imagenet_features())

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the shared representation (after the fifth pooling) and each task's output."""
        representation, pooling = self.encoder(inputs)
        outputs = {task: decoder(representation, pooling) for task, decoder in self.decoders.items()}
        return representation, outputs


def imagenet_weights_url() -> str:
    """Return the address of torchvision's ImageNet weights of VGG16-bn (``IMAGENET1K_V1``)."""
    # torchvision is needed only for pretrained weights, so it is imported on first use.
    from torchvision.models import VGG16_BN_Weights

    return VGG16_BN_Weights.IMAGENET1K_V1.url


def imagenet_weights_path() -> Path:
    """Return where PyTorch caches the VGG16-bn weights: ``<torch hub dir>/checkpoints/<file name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / imagenet_weights_url().rsplit("/", 1)[-1]


def load_vgg16_bn_imagenet_features() -> dict[str, torch.Tensor]:
    """Return the state dict of torchvision's ImageNet VGG16-bn, read from PyTorch's cache or downloaded into it.

    A download checks the file against the SHA-256 prefix in its name. Raises
    MtbenchError when the file can be neither read nor downloaded, naming the
    cache path and the two ways out.
    """
    url = imagenet_weights_url()
    path = imagenet_weights_path()
    try:
        return torch.hub.load_state_dict_from_url(url, model_dir=str(path.parent), map_location="cpu", progress=True, check_hash=True, weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as error:
        raise MtbenchError(
            f"Cannot load the ImageNet weights of VGG16-bn from {path} or download them from {url} "
            f"({type(error).__name__}: {error}). Pass --no-pretrained (model option pretrained=false) to start from random weights, "
            f"or download the file on a machine with network access and place it at {path}."
        ) from error


_FEATURE_KEY = re.compile(r"features\.(\d+)\.(\w+)")
_CONVOLUTION_KEYS = ("weight", "bias")
_NORMALISATION_KEYS = ("weight", "bias", "running_mean", "running_var")


def copy_vgg16_bn_features(encoder: SegNetEncoder, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Copy the convolution and batch-normalisation tensors of a VGG16-bn state dict into ``encoder``, in layer order.

    Only the ``features.<index>.<name>`` entries are read; the classifier is
    ignored. A layer with ``running_mean`` is a batch normalisation, any other
    layer with a weight a convolution. Raises MtbenchError when the layer count
    or a tensor shape differs from the encoder's.
    """
    layers: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in state_dict.items():
        match = _FEATURE_KEY.fullmatch(key)
        if match:
            layers.setdefault(int(match.group(1)), {})[match.group(2)] = tensor
    sources = [layers[index] for index in sorted(layers)]
    source_norms = [layer for layer in sources if "running_mean" in layer]
    source_convolutions = [layer for layer in sources if "running_mean" not in layer and "weight" in layer]

    convolutions = [module for module in encoder.modules() if isinstance(module, nn.Conv2d)]
    norms = [module for module in encoder.modules() if isinstance(module, nn.BatchNorm2d)]
    if len(source_convolutions) != len(convolutions) or len(source_norms) != len(norms):
        raise MtbenchError(
            f"The weights in {imagenet_weights_path()} have {len(source_convolutions)} convolutions and {len(source_norms)} "
            f"batch normalisations, but VGG16-bn has {len(convolutions)} and {len(norms)}. Delete the file so that it is downloaded again."
        )
    with torch.no_grad():
        for module, source in zip(convolutions, source_convolutions):
            _copy_tensors(module, source, _CONVOLUTION_KEYS)
        for module, source in zip(norms, source_norms):
            _copy_tensors(module, source, _NORMALISATION_KEYS)
            if "num_batches_tracked" in source:
                module.num_batches_tracked.copy_(source["num_batches_tracked"])


def _copy_tensors(module: nn.Module, source: Mapping[str, torch.Tensor], names: tuple[str, ...]) -> None:
    for name in names:
        destination = getattr(module, name)
        tensor = source.get(name)
        if tensor is None or tensor.shape != destination.shape:
            found = "missing" if tensor is None else f"of shape {tuple(tensor.shape)}"
            raise MtbenchError(
                f"The weights in {imagenet_weights_path()} do not fit VGG16-bn: {name} of a {type(module).__name__} is {found}, "
                f"expected {tuple(destination.shape)}. Delete the file so that it is downloaded again."
            )
        destination.copy_(tensor)
