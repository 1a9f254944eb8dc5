import torch

from mtbench.methods._gradient_scaling import scaled_gradients, scaled_gram


def test_divides_by_largest_entry():
    scaled, scale = scaled_gradients(torch.tensor([[2.0, -4.0], [1.0, 0.0]]))
    assert scale.item() == 4.0
    assert scaled.tolist() == [[0.5, -1.0], [0.25, 0.0]]


def test_zero_matrix_keeps_scale_one():
    scaled, scale = scaled_gradients(torch.zeros(2, 3))
    assert scale.item() == 1.0
    assert scaled.tolist() == [[0.0] * 3, [0.0] * 3]


def test_empty_matrix_keeps_scale_one():
    scaled, scale = scaled_gradients(torch.zeros(2, 0))
    assert scale.item() == 1.0
    assert scaled.shape == (2, 0)


def test_tiny_and_huge_gradients_give_finite_gram():
    # Unscaled, 1e-20 squares to a subnormal 1e-40 and 1e20 squares to infinity in float32.
    for size in (1e-20, 1e20):
        gram = scaled_gram(torch.tensor([[size, 0.0], [-size, size]]))
        assert gram.tolist() == [[1.0, -1.0], [-1.0, 2.0]]


def test_row_too_small_to_square_becomes_zero():
    # Relative to the largest entry 1, the second row's squared norm 2e-46 underflows to 0.
    scaled, scale = scaled_gradients(torch.tensor([[1.0, 0.0], [-1e-23, 1e-23]]))
    assert scale.item() == 1.0
    assert scaled.tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_row_above_smallest_normal_square_is_kept():
    # 1e-18 squares to 2e-36, a normal float32 number.
    scaled, _ = scaled_gradients(torch.tensor([[1.0, 0.0], [-1e-18, 1e-18]]))
    assert scaled[1].tolist() == torch.tensor([-1e-18, 1e-18]).tolist()
