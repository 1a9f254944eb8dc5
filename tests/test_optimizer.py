"""build_adam: fused Adam on the CPU, with the update of plain Adam."""

import pytest
import torch

from mtbench.train.optimizer import build_adam, match_state_layout


def test_cpu_adam_is_fused():
    parameter = torch.nn.Parameter(torch.zeros(3))

    optimizer = build_adam([parameter], 0.1, torch.device("cpu"))

    assert optimizer.defaults["fused"] is True


def test_other_device_uses_the_per_tensor_loop():
    parameter = torch.nn.Parameter(torch.zeros(3))

    optimizer = build_adam([parameter], 0.1, torch.device("meta"))

    assert not optimizer.defaults["fused"]


def test_first_step_moves_by_the_learning_rate():
    # After one step Adam's bias-corrected update is lr * g / (|g| + eps): 0.1 against the sign of each gradient.
    parameter = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = build_adam([parameter], 0.1, torch.device("cpu"))

    parameter.grad = torch.tensor([2.0, -0.5])
    optimizer.step()

    assert parameter.detach().tolist() == pytest.approx([0.9, -1.9], abs=1e-6)


def test_fused_matches_plain_adam_over_steps():
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(100, generator=generator)
    fused = torch.nn.Parameter(start.clone())
    plain = torch.nn.Parameter(start.clone())
    fused_optimizer = build_adam([fused], 1e-2, torch.device("cpu"))
    plain_optimizer = torch.optim.Adam([plain], lr=1e-2)

    for _ in range(20):
        gradient = torch.randn(100, generator=generator)
        fused.grad = gradient.clone()
        plain.grad = gradient.clone()
        fused_optimizer.step()
        plain_optimizer.step()

    assert torch.allclose(fused, plain, atol=1e-6)


def test_loaded_state_takes_the_parameter_layout():
    # Adam moments saved by a channels-last run, loaded into a model in the default layout. With mismatched
    # strides, PyTorch's Adam (fused or not) computed a wrong second step here (error 0.016).
    generator = torch.Generator().manual_seed(1)
    start, first, second = (torch.randn(4, 3, 3, 3, generator=generator) for _ in range(3))
    saved = torch.nn.Parameter(start.clone().contiguous(memory_format=torch.channels_last))
    saved_optimizer = build_adam([saved], 1e-2, torch.device("cpu"))
    saved.grad = first.clone().contiguous(memory_format=torch.channels_last)
    saved_optimizer.step()

    parameter = torch.nn.Parameter(saved.detach().clone().contiguous())
    optimizer = build_adam([parameter], 1e-2, torch.device("cpu"))
    optimizer.load_state_dict(saved_optimizer.state_dict())
    match_state_layout(optimizer)
    parameter.grad = second.clone()
    optimizer.step()

    reference = torch.nn.Parameter(start.clone())
    reference_optimizer = torch.optim.Adam([reference], lr=1e-2)
    for gradient in (first, second):
        reference.grad = gradient.clone()
        reference_optimizer.step()
    assert all(value.stride() == parameter.stride() for value in optimizer.state[parameter].values() if value.dim() == 4)
    assert torch.allclose(parameter, reference, atol=1e-6)
