"""Surface normals computed from a depth map and pinhole intrinsics.

Convention (mtbench's, for computed normals): camera coordinates with x to
the right, y down and z forward along the optical axis, unit length, and
oriented to face the camera (n . P <= 0 for the back-projected point P), so a
wall facing the camera has the normal (0, 0, -1). Invalid pixels have the zero
vector.
"""

import numpy as np

from mtbench.data.nyuv2.camera import CameraIntrinsics


def back_project(depth: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """Return the camera-frame points (H, W, 3) in metres of a depth map (H, W): P = ((u - cx) Z / fx, (v - cy) Z / fy, Z)."""
    height, width = depth.shape
    columns = np.arange(width, dtype=np.float64)[None, :]
    rows = np.arange(height, dtype=np.float64)[:, None]
    z = depth.astype(np.float64)
    x = (columns - intrinsics.cx) * z / intrinsics.fx
    y = (rows - intrinsics.cy) * z / intrinsics.fy
    return np.stack([x, y, z], axis=-1)


def _derivative(points: np.ndarray, valid: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Differentiate ``points`` along ``axis`` (0 = rows v, 1 = columns u) from valid neighbours only.

    Uses the central difference (P[+1] - P[-1]) / 2 where both neighbours are
    valid, else the one-sided difference to the valid neighbour. Returns the
    derivative and where it exists.
    """
    length = points.shape[axis]
    forward = np.zeros_like(points)
    backward = np.zeros_like(points)
    has_forward = np.zeros_like(valid)
    has_backward = np.zeros_like(valid)

    inner = [slice(None)] * 2
    outer = [slice(None)] * 2
    inner[axis], outer[axis] = slice(0, length - 1), slice(1, length)
    inner, outer = tuple(inner), tuple(outer)
    forward[inner] = points[outer] - points[inner]
    has_forward[inner] = valid[outer] & valid[inner]
    backward[outer] = points[outer] - points[inner]
    has_backward[outer] = valid[outer] & valid[inner]

    both = has_forward & has_backward
    derivative = np.where(both[..., None], (forward + backward) / 2, np.where(has_forward[..., None], forward, backward))
    return derivative, has_forward | has_backward


def normals_from_depth(depth: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """Compute unit surface normals (H, W, 3) float32 from a depth map (H, W) in metres, 0 or non-finite = invalid.

    n = normalise(dP/du x dP/dv) on the back-projected points, flipped where
    needed to face the camera. A pixel gets the zero vector when its own depth
    is invalid or when it has no valid neighbour along a row or along a
    column. ``intrinsics`` must describe a ``depth.shape`` image (use
    ``CameraIntrinsics.resized`` after resizing the depth). Raises ValueError
    otherwise.
    """
    if (intrinsics.height, intrinsics.width) != depth.shape:
        raise ValueError(f"Intrinsics for {intrinsics.height}x{intrinsics.width} pixels cannot be used for a depth map of shape {depth.shape}.")
    valid = np.isfinite(depth) & (depth > 0)
    points = back_project(np.where(valid, depth, 0), intrinsics)

    along_u, has_u = _derivative(points, valid, axis=1)
    along_v, has_v = _derivative(points, valid, axis=0)
    normal = np.cross(along_u, along_v)

    facing_away = np.einsum("hwc,hwc->hw", normal, points) > 0
    normal[facing_away] *= -1
    length = np.linalg.norm(normal, axis=-1)
    keep = valid & has_u & has_v & (length > 0)
    result = np.zeros_like(normal)
    result[keep] = normal[keep] / length[keep, None]
    # Adding 0.0 turns -0.0 into 0.0, so equal geometry gives equal bytes.
    return (result + 0.0).astype(np.float32)
