"""build_adam: fused Adam on the CPU, with the update of plain Adam."""

import pytest
import torch

from mtbench.train.optimizer import build_adam


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
