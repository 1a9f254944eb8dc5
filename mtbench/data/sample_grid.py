"""PNG grids of sample images, for a quick look at a prepared dataset."""

import io
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mtbench.errors import MtbenchError
from mtbench.io import atomic_write_bytes


def write_sample_grid(
    images: np.ndarray,
    labels: np.ndarray,
    path: Path,
    title: str,
    rows: int = 4,
    cols: int = 8,
) -> None:
    """Draw the first ``rows * cols`` images in a grid and save it as a PNG.

    ``images`` is (N, H, W) uint8 grey, shown on a fixed 0..255 scale.
    ``labels`` is (N,) or (N, K), and each panel's title shows the label values
    of its image as given, joined by commas (pass digits to show digits).
    Panels beyond N stay empty. The PNG is rendered with the Agg backend, which
    does not touch pyplot's global state, and written atomically. The same
    input gives the same bytes with the same matplotlib version.

    Raises MtbenchError when the shapes do not match or ``rows``/``cols`` are
    not positive.
    """
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 3:
        raise MtbenchError(f"Cannot draw a sample grid for {path}: images must have shape (N, H, W), got {images.shape}.")
    if labels.shape[:1] != images.shape[:1]:
        raise MtbenchError(f"Cannot draw a sample grid for {path}: {images.shape[0]} images but labels of shape {labels.shape}.")
    if rows < 1 or cols < 1:
        raise MtbenchError(f"Cannot draw a sample grid for {path}: rows and cols must be positive, got {rows} and {cols}.")

    figure = Figure(figsize=(1.3 * cols, 1.45 * rows + 0.4))
    FigureCanvasAgg(figure)
    axes_grid = figure.subplots(rows, cols, squeeze=False)
    for index, axes in enumerate(axes_grid.flat):
        axes.set_axis_off()
        if index >= len(images):
            continue
        axes.imshow(images[index], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        axes.set_title(_format_label(labels[index]), fontsize=10)
    figure.suptitle(title, fontsize=12)
    figure.tight_layout()

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())


def _format_label(label: np.ndarray) -> str:
    return ", ".join(str(int(value)) for value in np.atleast_1d(label))
