import math

import numpy as np
import pytest

from mtbench.data.nyuv2.camera import NYU_RGB_INTRINSICS, CameraIntrinsics
from mtbench.data.nyuv2.normals import normals_from_depth
from mtbench.data.nyuv2.resize import (
    area_weights,
    nearest_indices,
    resize_depth,
    resize_image,
    resize_labels,
    resize_normals,
)
from mtbench.data.nyuv2.validation_split import carve_validation, validation_count
from mtbench.errors import MtbenchError

SMALL_CAMERA = CameraIntrinsics(fx=100.0, fy=100.0, cx=3.5, cy=2.5, width=8, height=6)


def plane_depth(normal: np.ndarray, distance: float, camera: CameraIntrinsics) -> np.ndarray:
    """Depth of the plane n . P = -distance seen through each pixel centre."""
    columns = np.arange(camera.width)[None, :]
    rows = np.arange(camera.height)[:, None]
    rays = np.stack(np.broadcast_arrays((columns - camera.cx) / camera.fx, (rows - camera.cy) / camera.fy, np.ones((camera.height, camera.width))), axis=-1)
    return (-distance / (rays @ normal)).astype(np.float32)


# Camera.


def test_nyu_intrinsics_are_zero_based():
    assert NYU_RGB_INTRINSICS.cx == pytest.approx(324.58244941119034)
    assert NYU_RGB_INTRINSICS.cy == pytest.approx(252.73616633400465)
    assert NYU_RGB_INTRINSICS.fx == pytest.approx(518.85790117450188)


def test_intrinsics_resized_to_80x80():
    resized = NYU_RGB_INTRINSICS.resized(80, 80)
    assert resized.fx == pytest.approx(518.85790117450188 / 8)
    assert resized.fy == pytest.approx(519.46961112127485 / 6)
    assert resized.cx == pytest.approx((324.58244941119034 + 0.5) / 8 - 0.5)
    assert resized.cy == pytest.approx((252.73616633400465 + 0.5) / 6 - 0.5)
    assert (resized.height, resized.width) == (80, 80)


def test_intrinsics_resize_keeps_image_centre():
    camera = CameraIntrinsics(fx=10.0, fy=10.0, cx=3.5, cy=1.5, width=8, height=4)
    resized = camera.resized(2, 4)
    assert (resized.cx, resized.cy) == (1.5, 0.5)


# Resizing.


def test_nearest_indices_hand_values():
    np.testing.assert_array_equal(nearest_indices(640, 80)[:3], [4, 12, 20])
    np.testing.assert_array_equal(nearest_indices(480, 80)[:3], [3, 9, 15])
    np.testing.assert_array_equal(nearest_indices(2, 4), [0, 0, 1, 1])


def test_resize_labels_copies_source_values():
    labels = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], dtype=np.uint8)
    np.testing.assert_array_equal(resize_labels(labels, (1, 2)), [[6, 8]])


def test_resize_labels_never_mixes_classes():
    labels = np.zeros((480, 640), dtype=np.uint8)
    labels[:, 320:] = 255
    resized = resize_labels(labels, (80, 80))
    assert set(np.unique(resized)) == {0, 255}
    assert (resized[:, :40] == 0).all()
    assert (resized[:, 40:] == 255).all()


def test_area_weights_hand_values():
    np.testing.assert_allclose(area_weights(3, 2), [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])
    np.testing.assert_allclose(area_weights(4, 2), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])


def test_resize_depth_block_means():
    depth = np.array([[1, 3, 2, 2], [5, 7, 2, 2], [0, 0, 0, 4], [0, 0, 0, 0]], dtype=np.float32)
    resized = resize_depth(depth, (2, 2))
    assert resized[0, 0] == 4.0
    assert resized[0, 1] == 2.0
    assert resized[1, 0] == 0.0
    assert resized[1, 1] == 0.0


def test_resize_depth_averages_valid_pixels_only():
    depth = np.array([[2, 4], [0, 0]], dtype=np.float32)
    assert resize_depth(depth, (1, 1))[0, 0] == 3.0


def test_resize_depth_keeps_invalid_region_at_zero():
    depth = np.full((480, 640), 2.5, dtype=np.float32)
    depth[:48, :80] = 0
    resized = resize_depth(depth, (80, 80))
    assert (resized[:8, :10] == 0).all()
    assert (resized[8:, :] == 2.5).all()
    assert (resized[:, 10:] == 2.5).all()


def test_resize_depth_identity():
    depth = np.array([[0, 1.25], [3.5, 0]], dtype=np.float32)
    np.testing.assert_array_equal(resize_depth(depth, (2, 2)), depth)


def test_resize_image_hand_values():
    row = np.array([[0, 0, 255, 255]], dtype=np.uint8)
    image = np.repeat(row[..., None], 3, axis=-1)
    resized = resize_image(image, (1, 2))
    # Antialiased bilinear halving weights the source pixels 0.75, 0.75, 0.25 (normalised by 1.75).
    assert resized.shape == (3, 1, 2)
    np.testing.assert_array_equal(resized[:, 0, 0], [36, 36, 36])
    np.testing.assert_array_equal(resized[:, 0, 1], [219, 219, 219])


def test_resize_image_constant_and_channel_first():
    image = np.empty((480, 640, 3), dtype=np.uint8)
    image[...] = (10, 100, 200)
    resized = resize_image(image, (320, 320))
    assert resized.shape == (3, 320, 320)
    assert resized.dtype == np.uint8
    np.testing.assert_array_equal(resized[:, 100, 200], [10, 100, 200])
    assert (resized[1] == 100).all()


def test_resize_normals_average_and_renormalise():
    normal = np.zeros((1, 2, 3), dtype=np.float32)
    normal[0, 0] = (1, 0, 0)
    normal[0, 1] = (0, 0, -1)
    resized = resize_normals(normal, (1, 1))
    np.testing.assert_allclose(resized[0, 0], [math.sqrt(0.5), 0, -math.sqrt(0.5)], atol=1e-7)


def test_resize_normals_invalid_stays_zero():
    normal = np.zeros((4, 4, 3), dtype=np.float32)
    normal[:, :2] = (0, 0, -1)
    normal[0, 2] = (0, 1, 0)
    resized = resize_normals(normal, (2, 2))
    np.testing.assert_array_equal(resized[:, 0], [[0, 0, -1], [0, 0, -1]])
    np.testing.assert_array_equal(resized[:, 1], [[0, 0, 0], [0, 0, 0]])


def test_resize_normals_opposite_cancel_to_invalid():
    normal = np.array([[[0, 0, 1], [0, 0, -1]]], dtype=np.float32)
    np.testing.assert_array_equal(resize_normals(normal, (1, 1)), [[[0, 0, 0]]])


# Normals from depth.


def test_fronto_parallel_plane_faces_camera():
    normal = normals_from_depth(np.full((6, 8), 2.0, dtype=np.float32), SMALL_CAMERA)
    assert normal.dtype == np.float32
    expected = np.zeros((6, 8, 3), dtype=np.float32)
    expected[..., 2] = -1
    np.testing.assert_array_equal(normal, expected)


def test_tilted_plane_angle():
    tilt = math.radians(30)
    plane_normal = np.array([math.sin(tilt), 0.0, -math.cos(tilt)])
    normal = normals_from_depth(plane_depth(plane_normal, 2.0, SMALL_CAMERA), SMALL_CAMERA)
    np.testing.assert_allclose(normal.reshape(-1, 3), np.tile(plane_normal, (48, 1)), atol=1e-5)
    angle_to_optical_axis = math.degrees(math.acos(-normal[3, 4, 2]))
    assert angle_to_optical_axis == pytest.approx(30, abs=1e-3)


def test_plane_tilted_about_x_axis():
    tilt = math.radians(45)
    plane_normal = np.array([0.0, -math.sin(tilt), -math.cos(tilt)])
    normal = normals_from_depth(plane_depth(plane_normal, 1.5, SMALL_CAMERA), SMALL_CAMERA)
    np.testing.assert_allclose(normal[2, 3], plane_normal, atol=1e-5)


def test_normals_face_the_camera():
    plane_normal = np.array([0.0, 0.6, -0.8])
    depth = plane_depth(plane_normal, 3.0, SMALL_CAMERA)
    normal = normals_from_depth(depth, SMALL_CAMERA)
    rows, columns = np.mgrid[0:6, 0:8]
    points = np.stack([(columns - SMALL_CAMERA.cx) * depth / SMALL_CAMERA.fx, (rows - SMALL_CAMERA.cy) * depth / SMALL_CAMERA.fy, depth], axis=-1)
    assert ((normal * points).sum(axis=-1) < 0).all()


def test_invalid_depth_gives_zero_normal():
    depth = np.full((6, 8), 2.0, dtype=np.float32)
    depth[2, 3] = 0
    depth[4, 6] = np.nan
    normal = normals_from_depth(depth, SMALL_CAMERA)
    np.testing.assert_array_equal(normal[2, 3], [0, 0, 0])
    np.testing.assert_array_equal(normal[4, 6], [0, 0, 0])
    np.testing.assert_array_equal(normal[2, 4], [0, 0, -1])
    np.testing.assert_array_equal(normal[1, 3], [0, 0, -1])


def test_pixel_without_valid_row_neighbour_is_zero():
    depth = np.full((6, 8), 2.0, dtype=np.float32)
    depth[3, 1] = 0
    depth[3, 3] = 0
    normal = normals_from_depth(depth, SMALL_CAMERA)
    np.testing.assert_array_equal(normal[3, 2], [0, 0, 0])


def test_one_sided_difference_at_image_border():
    tilt = math.radians(20)
    plane_normal = np.array([math.sin(tilt), 0.0, -math.cos(tilt)])
    normal = normals_from_depth(plane_depth(plane_normal, 2.0, SMALL_CAMERA), SMALL_CAMERA)
    np.testing.assert_allclose(normal[0, 0], plane_normal, atol=1e-5)
    np.testing.assert_allclose(normal[5, 7], plane_normal, atol=1e-5)


def test_normals_reject_intrinsics_of_other_size():
    with pytest.raises(ValueError, match="8x8"):
        normals_from_depth(np.ones((6, 8), dtype=np.float32), CameraIntrinsics(1.0, 1.0, 0.0, 0.0, width=8, height=8))


# Validation split.


def test_validation_count_rounds_half_up():
    assert validation_count(795, 0.1) == 80
    assert validation_count(4, 0.25) == 1
    assert validation_count(10, 0.25) == 3


def test_carve_validation_partitions_positions():
    train, val = carve_validation(795, 0.1, seed=0)
    assert len(train) == 715
    assert len(val) == 80
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(795))
    assert (np.diff(train) > 0).all()
    assert (np.diff(val) > 0).all()


def test_carve_validation_depends_on_seed_only():
    np.testing.assert_array_equal(carve_validation(795, 0.1, seed=3)[1], carve_validation(795, 0.1, seed=3)[1])
    assert not np.array_equal(carve_validation(795, 0.1, seed=3)[1], carve_validation(795, 0.1, seed=4)[1])


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 0.05])
def test_invalid_val_fraction(fraction):
    with pytest.raises(MtbenchError, match="--val-fraction"):
        carve_validation(4, fraction, seed=0)
