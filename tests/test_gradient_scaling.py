import pytest
import torch

from mtbench.errors import MtbenchError
from mtbench.methods._gram import (
    NEGLIGIBLE_SQUARED_NORM,
    check_finite_gradients,
    combine_rows,
    row_norms,
    scaled_gradients,
    scaled_gram,
    sum_of_unit_rows,
    unit_rows,
)


def test_divides_by_largest_entry():
    scaled, scale = scaled_gradients(torch.tensor([[2.0, -4.0], [1.0, 0.0]]))
    assert scale == 4.0
    assert scaled.tolist() == [[0.5, -1.0], [0.25, 0.0]]


def test_zero_matrix_keeps_scale_one():
    scaled, scale = scaled_gradients(torch.zeros(2, 3))
    assert scale == 1.0
    assert scaled.tolist() == [[0.0] * 3, [0.0] * 3]


def test_empty_matrix_keeps_scale_one():
    scaled, scale = scaled_gradients(torch.zeros(2, 0))
    assert scale == 1.0
    assert scaled.shape == (2, 0)


def test_empty_matrix_gram_is_zero():
    gram, scale = scaled_gram(torch.zeros(2, 0))
    assert scale == 1.0
    assert gram.tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_gram_of_scaled_rows():
    # G / 2 = [[0.5, 0], [0, 1]], so the Gram matrix of G itself is 2^2 times the returned one.
    gram, scale = scaled_gram(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    assert scale == 2.0
    assert gram.tolist() == [[0.25, 0.0], [0.0, 1.0]]
    assert gram.dtype == torch.float32


def test_float64_gradients_give_float32_gram():
    gram, _ = scaled_gram(torch.tensor([[3.0, 4.0]], dtype=torch.float64))
    assert gram.dtype == torch.float32
    assert gram.tolist() == [[pytest.approx(25.0 / 16.0)]]


def test_tiny_and_huge_gradients_give_finite_gram():
    # Unscaled, 1e-20 squares to a subnormal 1e-40 and 1e20 squares to infinity in float32.
    for size in (1e-20, 1e20):
        gram, scale = scaled_gram(torch.tensor([[size, 0.0], [-size, size]]))
        assert gram.tolist() == [[1.0, -1.0], [-1.0, 2.0]]
        assert scale == torch.tensor(size).item()


def test_negligible_row_becomes_zero_on_request():
    # Relative to the largest entry 1, the second row's squared norm 2e-46 is below the smallest normal float32.
    scaled, scale = scaled_gradients(torch.tensor([[1.0, 0.0], [-1e-23, 1e-23]]), zero_negligible_rows=True)
    assert scale == 1.0
    assert scaled.tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_negligible_row_kept_by_default():
    gram, _ = scaled_gram(torch.tensor([[1.0, 0.0], [-1e-23, 1e-23]]))
    assert gram[0, 1].item() == torch.tensor(-1e-23).item()


def test_row_above_threshold_is_kept():
    # 1e-18 squares to 2e-36, a normal float32 number.
    scaled, _ = scaled_gradients(torch.tensor([[1.0, 0.0], [-1e-18, 1e-18]]), zero_negligible_rows=True)
    assert scaled[1].tolist() == torch.tensor([-1e-18, 1e-18]).tolist()


def test_threshold_is_smallest_normal_float32():
    assert NEGLIGIBLE_SQUARED_NORM == torch.finfo(torch.float32).tiny


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("helper", [scaled_gradients, scaled_gram, row_norms, unit_rows, sum_of_unit_rows])
def test_non_finite_entry_raises(helper, value):
    with pytest.raises(MtbenchError, match="NaN or infinite"):
        helper(torch.tensor([[1.0, value], [0.0, 1.0]]))


def test_check_names_only_bad_tasks():
    gradients = torch.tensor([[1.0, 0.0], [float("nan"), 1.0], [0.0, float("inf")]])
    with pytest.raises(MtbenchError, match=r"Method 'mgda' .* for the tasks depth, normals\.") as error:
        check_finite_gradients(gradients, ["segmentation", "depth", "normals"], "mgda")
    assert "segmentation" not in str(error.value)


def test_check_accepts_finite_gradients():
    check_finite_gradients(torch.tensor([[1e30, -1e-30], [0.0, 0.0]]), ["a", "b"], "mgda")


def test_row_norms_of_tiny_huge_and_zero_rows():
    gradients = torch.tensor([[3.0, 4.0], [0.0, 0.0], [3e-30, 4e-30], [3e30, -4e30]])
    norms = row_norms(gradients)
    assert norms.dtype == torch.float32
    assert norms[:2].tolist() == [5.0, 0.0]
    assert norms[2].item() == pytest.approx(5e-30, rel=1e-6)
    assert norms[3].item() == pytest.approx(5e30, rel=1e-6)


def test_unit_rows_of_tiny_and_zero_rows():
    rows = unit_rows(torch.tensor([[3e-30, -4e-30], [0.0, 0.0], [6e25, 8e25]]))
    assert rows[0].tolist() == pytest.approx([0.6, -0.8], rel=1e-6)
    assert rows[1].tolist() == [0.0, 0.0]
    assert rows[2].tolist() == pytest.approx([0.6, 0.8], rel=1e-6)


def test_sum_of_unit_rows_skips_zero_rows():
    total = sum_of_unit_rows(torch.tensor([[3e-30, -4e-30], [0.0, 0.0], [6e25, 8e25]]))
    assert total.dtype == torch.float32
    assert total.tolist() == pytest.approx([1.2, 0.0], abs=1e-6)


def test_sum_of_unit_rows_matches_unit_rows():
    gradients = torch.randn(3, 1000, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(sum_of_unit_rows(gradients), unit_rows(gradients).sum(dim=0), atol=1e-6)


def test_row_helpers_accept_empty_rows():
    assert row_norms(torch.zeros(2, 0)).tolist() == [0.0, 0.0]
    assert unit_rows(torch.zeros(2, 0)).shape == (2, 0)
    assert sum_of_unit_rows(torch.zeros(2, 0)).shape == (0,)


def test_combine_rows_sums_weighted_rows_in_float32():
    direction = combine_rows(torch.tensor([0.5, 2.0], dtype=torch.float64), torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    assert direction.dtype == torch.float32
    assert direction.tolist() == [6.5, 9.0]
