import pytest
import torch

from mtbench.errors import MtbenchError
from mtbench.models.multidigit_cnn import MultiDigitCNN, MultiDigitCNNConfig


def test_shapes_and_parameter_groups():
    model = MultiDigitCNN({"left": 5, "right": 5}, MultiDigitCNNConfig(width=20))
    representation, outputs = model(torch.zeros(3, 1, 64, 64))
    assert representation.shape == (3, 20, 16, 16)
    assert outputs["left"].shape == (3, 5)
    assert model.last_shared_parameters()[0].shape == (20, 20, 3, 3)
    assert all(conv.bias is None for conv in model.modules() if isinstance(conv, torch.nn.Conv2d))
    assert len(model.shared_parameters()) == 2


def test_batchnorm_and_dropout_options():
    model = MultiDigitCNN({"left": 5}, MultiDigitCNNConfig(width=8, batchnorm=True, dropout=0.3))
    kinds = {type(module) for module in model.modules()}
    assert torch.nn.BatchNorm2d in kinds
    assert torch.nn.Dropout in kinds
    # The last shared layer is the convolution, not its batch normalisation.
    assert isinstance(model.last_shared_layer, torch.nn.Conv2d)


@pytest.mark.parametrize("options", [{"width": 0}, {"kernel_size": 2}, {"dropout": 1.0}, {"hidden_units": 0}])
def test_invalid_options(options):
    with pytest.raises(MtbenchError, match="Invalid"):
        MultiDigitCNNConfig(**options)
