import urllib.error

import pytest
import torch
from torch import nn
from torchvision.models import vgg

from mtbench.errors import MtbenchError
from mtbench.models import segnet
from mtbench.models.segnet import DenseHead, SegNet, SegNetConfig, SegNetEncoder, copy_vgg16_bn_features, decoder_stages_for

HEADS = {"segmentation": DenseHead(13), "depth": DenseHead(1), "normal": DenseHead(3, unit_vectors=True)}


def tiny_segnet(stages: int = 3, width: int = 4) -> SegNet:
    torch.manual_seed(0)
    return SegNet(HEADS, SegNetConfig(width=width, pretrained=False), stages)


def test_outputs_at_target_size():
    model = tiny_segnet(stages=decoder_stages_for((64, 64), (16, 16)))
    representation, outputs = model(torch.randn(2, 3, 64, 64))

    # Five poolings: 64 / 32 = 2; the fifth block has 8 x width channels.
    assert representation.shape == (2, 32, 2, 2)
    assert outputs["segmentation"].shape == (2, 13, 16, 16)
    assert outputs["depth"].shape == (2, 1, 16, 16)
    assert outputs["normal"].shape == (2, 3, 16, 16)
    assert torch.allclose(outputs["normal"].norm(dim=1), torch.ones(2, 16, 16), atol=1e-5)


def test_full_decoder_at_odd_sizes():
    # 96 x 128 pools to 3 x 4, then 1 x 2 after a rounding-down pooling; unpooling restores each size.
    model = SegNet({"depth": DenseHead(1)}, SegNetConfig(width=2, pretrained=False), decoder_stages=5)
    _, outputs = model(torch.randn(1, 3, 96, 128))
    assert outputs["depth"].shape == (1, 1, 96, 128)


@pytest.mark.parametrize(("input_size", "target_size", "stages"), [((320, 320), (80, 80), 3), ((288, 384), (288, 384), 5), ((320, 320), (20, 20), 1), ((96, 128), (48, 64), 4)])
def test_decoder_stages(input_size, target_size, stages):
    assert decoder_stages_for(input_size, target_size) == stages


def test_decoder_stages_reject_other_target():
    with pytest.raises(MtbenchError, match="use one of 320x320, 160x160, 80x80, 40x40, 20x20"):
        decoder_stages_for((320, 320), (100, 100))


def test_decoder_stages_reject_tiny_input():
    with pytest.raises(MtbenchError, match="at least 32 pixels"):
        decoder_stages_for((16, 320), (16, 320))


def test_encoder_is_vgg16_with_batchnorm():
    model = tiny_segnet()
    convolutions = [module for module in model.encoder.modules() if isinstance(module, nn.Conv2d)]
    assert len(convolutions) == 13
    assert [conv.out_channels for conv in convolutions] == [4, 4, 8, 8, 16, 16, 16, 32, 32, 32, 32, 32, 32]
    assert len([module for module in model.encoder.modules() if isinstance(module, nn.BatchNorm2d)]) == 13
    assert model.last_shared_layer is convolutions[-1]


def test_parameter_groups_are_disjoint():
    model = tiny_segnet()
    shared = {id(parameter) for parameter in model.shared_parameters()}
    last = {id(parameter) for parameter in model.last_shared_parameters()}
    assert last <= shared
    assert len(last) == 2
    seen = set(shared)
    for task in HEADS:
        own = {id(parameter) for parameter in model.task_parameters(task)}
        assert own
        assert not own & seen
        seen |= own
    assert seen == {id(parameter) for parameter in model.parameters()}


def test_representation_gradient_is_complete():
    # Backpropagating the representation's gradient must give the encoder the same gradients as the full backward.
    model = tiny_segnet(stages=2)
    inputs = torch.randn(2, 3, 32, 32)
    representation, outputs = model(inputs)
    loss = sum(output.square().mean() for output in outputs.values())
    shared = model.shared_parameters()
    direct = torch.autograd.grad(loss, shared, retain_graph=True)
    (representation_gradient,) = torch.autograd.grad(loss, representation, retain_graph=True)
    through_representation = torch.autograd.grad(representation, shared, representation_gradient)
    for first, second in zip(direct, through_representation):
        assert torch.allclose(first, second, atol=1e-6)


def test_unpooling_uses_encoder_indices():
    # A one-stage decoder must place values only where the fifth pooling found its maxima.
    model = SegNet({"depth": DenseHead(1)}, SegNetConfig(width=1, pretrained=False), decoder_stages=1)
    decoder = model.decoders["depth"]
    captured = {}
    decoder.blocks[0].register_forward_pre_hook(lambda module, arguments: captured.setdefault("unpooled", arguments[0]))
    representation, _ = model(torch.randn(1, 3, 64, 64))
    nonzero = captured["unpooled"] != 0
    # Each 2 x 2 window contains at most one value of the representation, and every non-zero value lands somewhere.
    per_window = nonzero.reshape(1, 8, 2, 2, 2, 2).sum(dim=(3, 5))
    assert int(per_window.max()) <= 1
    assert int(nonzero.sum()) == int((representation != 0).sum())


def test_invalid_width():
    with pytest.raises(MtbenchError, match="positive number of filters"):
        SegNetConfig(width=0, pretrained=False)


def test_pretrained_needs_vgg_width():
    with pytest.raises(MtbenchError, match="pretrained=false"):
        SegNetConfig(width=8, pretrained=True)


def torchvision_features() -> tuple[nn.Sequential, dict[str, torch.Tensor]]:
    """torchvision's VGG16-bn feature extractor with random weights and running statistics, and its state dict as stored."""
    torch.manual_seed(1)
    features = vgg.make_layers(vgg.cfgs["D"], batch_norm=True)
    for module in features.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
    state = {f"features.{key}": value for key, value in features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)
    return features.eval(), state


def test_copy_matches_torchvision_features():
    features, state = torchvision_features()
    encoder = SegNetEncoder(64)
    copy_vgg16_bn_features(encoder, state)
    encoder.eval()

    inputs = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = features(inputs)
        representation, _ = encoder(inputs)
    assert torch.allclose(representation, expected, atol=1e-5)


def test_copy_rejects_other_network():
    _, state = torchvision_features()
    del state["features.0.weight"]
    with pytest.raises(MtbenchError, match="convolutions"):
        copy_vgg16_bn_features(SegNetEncoder(64), state)


def test_copy_rejects_other_width():
    _, state = torchvision_features()
    with pytest.raises(MtbenchError, match="do not fit VGG16-bn"):
        copy_vgg16_bn_features(SegNetEncoder(32), state)


def test_missing_weights_name_the_fixes(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def refuse_download(*arguments, **keywords):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse_download)
    with pytest.raises(MtbenchError) as raised:
        segnet.load_vgg16_bn_imagenet_features()
    message = str(raised.value)
    assert "pretrained=false" in message
    assert str(tmp_path / "hub" / "checkpoints" / "vgg16_bn-6c64b313.pth") in message
    assert "network is unreachable" in message


def test_damaged_weights_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = segnet.imagenet_weights_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(MtbenchError, match="Cannot load the ImageNet weights") as raised:
        segnet.load_vgg16_bn_imagenet_features()
    assert str(path) in str(raised.value)
