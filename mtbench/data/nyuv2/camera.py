"""Pinhole intrinsics of the NYUv2 RGB camera and how they change when an image is resized."""

from dataclasses import dataclass


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics in pixels for an image of ``width`` x ``height`` pixels.

    Pixel (u, v) has its centre at column u, row v, counted from 0, so a point
    at camera coordinates (X, Y, Z) projects to u = fx X / Z + cx and
    v = fy Y / Z + cy (x right, y down, z forward).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def resized(self, height: int, width: int) -> "CameraIntrinsics":
        """Return the intrinsics of this image resampled to ``height`` x ``width`` pixels.

        Resizing maps the pixel edges onto each other (pixel centres at
        (u + 0.5) * s - 0.5 with s = new width / old width, the convention of
        ``align_corners=False``), so fx scales by s and cx becomes (cx + 0.5) s - 0.5,
        and likewise for y.
        """
        scale_x = width / self.width
        scale_y = height / self.height
        return CameraIntrinsics(
            fx=self.fx * scale_x,
            fy=self.fy * scale_y,
            cx=(self.cx + 0.5) * scale_x - 0.5,
            cy=(self.cy + 0.5) * scale_y - 0.5,
            width=width,
            height=height,
        )


# RGB camera of the NYU Depth V2 toolbox (camera_params.m), to which the labeled
# depths are registered. The toolbox counts pixels from 1 (rgb_plane2rgb_world.m
# back-projects with meshgrid(1:640, 1:480)), so its cx and cy move by -1 here.
TOOLBOX_RGB_CX = 325.58244941119034
TOOLBOX_RGB_CY = 253.73616633400465
NYU_RGB_INTRINSICS = CameraIntrinsics(
    fx=518.85790117450188,
    fy=519.46961112127485,
    cx=TOOLBOX_RGB_CX - 1,
    cy=TOOLBOX_RGB_CY - 1,
    width=640,
    height=480,
)
