"""Depth PNG decoding, colour image reading and resizing of single frames."""

import numpy as np
import pytest
from PIL import Image

from mtbench.data.sunrgbd.depth_png import decode_depth_millimetres, depth_metres, read_depth_png
from mtbench.data.sunrgbd.resize import nearest_indices, resize_depth, resize_image, resize_labels, window_bounds
from mtbench.data.sunrgbd.rgb_image import read_rgb_image
from mtbench.errors import MtbenchError
from sunrgbd_fixtures import encode_depth


def test_decode_rotates_bits_right_by_three():
    # 1234 mm is stored as 1234 << 3 = 9872; 9000 mm (13 bits used) as 72000 & 0xFFFF | 1 = 6465.
    raw = np.array([0, 9872, 6465, 0b0000_0000_0000_0111], dtype=np.uint16)

    millimetres = decode_depth_millimetres(raw)

    assert millimetres.dtype == np.uint16
    assert millimetres.tolist() == [0, 1234, 9000, 0b1110_0000_0000_0000]


def test_fixture_encoding_round_trips():
    millimetres = np.array([0, 1, 1000, 8191, 8192, 65535], dtype=np.uint16)

    assert decode_depth_millimetres(encode_depth(millimetres)).tolist() == millimetres.tolist()


def test_metres_mark_zero_and_far_invalid():
    metres = depth_metres(np.array([0, 1500, 8000, 8001], dtype=np.uint16), max_depth=8.0)

    assert metres.dtype == np.float32
    assert metres.tolist() == [0.0, 1.5, 8.0, 0.0]


def test_read_depth_png_values(tmp_path):
    path = tmp_path / "depth.png"
    Image.fromarray(encode_depth(np.array([[1234, 0], [9000, 250]], dtype=np.uint16))).save(path)

    metres = read_depth_png(path, max_depth=8.0)

    assert metres.shape == (2, 2)
    np.testing.assert_array_equal(metres, np.array([[1.234, 0], [0, 0.25]], dtype=np.float32))


def test_read_depth_png_missing(tmp_path):
    with pytest.raises(MtbenchError, match="not found"):
        read_depth_png(tmp_path / "absent.png", max_depth=8.0)


def test_read_depth_png_corrupt(tmp_path):
    path = tmp_path / "depth.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 65536, size=(64, 64)).astype(np.uint16)).save(path)
    path.write_bytes(path.read_bytes()[:4000])

    with pytest.raises(MtbenchError, match=r"depth\.png is not a readable PNG"):
        read_depth_png(path, max_depth=8.0)


def test_read_depth_png_rejects_8_bit(tmp_path):
    path = tmp_path / "depth.png"
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(path)

    with pytest.raises(MtbenchError, match="expected a 16-bit greyscale PNG"):
        read_depth_png(path, max_depth=8.0)


def test_read_rgb_image_converts_greyscale(tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(np.full((3, 5), 77, dtype=np.uint8)).save(path)

    rgb = read_rgb_image(path)

    assert rgb.shape == (3, 5, 3)
    assert rgb.dtype == np.uint8
    assert (rgb == 77).all()


def test_read_rgb_image_corrupt(tmp_path):
    path = tmp_path / "image.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")

    with pytest.raises(MtbenchError, match=r"image\.jpg is not a readable image"):
        read_rgb_image(path)


def test_nearest_indices_by_hand():
    assert nearest_indices(8, 4).tolist() == [1, 3, 5, 7]
    assert nearest_indices(12, 4).tolist() == [1, 4, 7, 10]
    assert nearest_indices(2, 4).tolist() == [0, 0, 1, 1]


def test_resize_labels_samples_centres():
    labels = np.arange(8 * 12, dtype=np.uint8).reshape(8, 12)

    resized = resize_labels(labels, (4, 4))

    assert resized.dtype == np.uint8
    assert resized[0].tolist() == [13, 16, 19, 22]
    assert resized[:, 0].tolist() == [13, 37, 61, 85]


def test_window_bounds_by_hand():
    starts, stops = window_bounds(6, 4)

    assert starts.tolist() == [0, 1, 3, 4]
    assert stops.tolist() == [2, 3, 5, 6]


def test_resize_depth_means_valid_pixels_only():
    depth = np.zeros((4, 6), dtype=np.float32)
    depth[0:2, 0:3] = [[1.0, 2.0, 3.0], [0.0, 0.0, 6.0]]  # 4 of 6 valid: mean 3.0
    depth[0:2, 3:6] = [[5.0, 0.0, 0.0], [0.0, 0.0, 7.0]]  # 2 of 6 valid: invalid
    depth[2:4, 0:3] = 2.5
    depth[2:4, 3:6] = [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]  # exactly half valid: mean 1.0

    resized = resize_depth(depth, (2, 2))

    assert resized.dtype == np.float32
    np.testing.assert_array_equal(resized, np.array([[3.0, 0.0], [2.5, 1.0]], dtype=np.float32))


def test_resize_depth_enlarges_without_mixing():
    depth = np.array([[1.0, 0.0], [0.0, 4.0]], dtype=np.float32)

    resized = resize_depth(depth, (4, 4))

    np.testing.assert_array_equal(resized, np.kron(depth, np.ones((2, 2), dtype=np.float32)))


def test_resize_image_is_channel_first():
    rgb = np.empty((8, 12, 3), dtype=np.uint8)
    rgb[...] = (10, 20, 30)

    resized = resize_image(rgb, (5, 7))

    assert resized.shape == (3, 5, 7)
    assert resized.dtype == np.uint8
    assert resized[:, 2, 3].tolist() == [10, 20, 30]
    assert (resized[0] == 10).all()
    assert (resized[2] == 30).all()
