"""MNIST through ``torchvision.datasets.MNIST``, which downloads the IDX files.

torchvision keeps the files in ``root/MNIST/raw/``: it downloads the four
".gz" files there, checks their MD5 and extracts them next to them. It skips
the download when the four extracted files already exist. After torchvision
has finished, the files are read with mtbench's own IDX reader, so this source
returns the same arrays as a folder of IDX files.
"""

from collections.abc import Callable
from pathlib import Path
from urllib.error import URLError

from mtbench.data.mnist.arrays import MnistArrays
from mtbench.data.mnist.idx import TORCHVISION_RAW_SUBFOLDER, read_idx_folder
from mtbench.errors import MtbenchError


def load_torchvision_mnist(cache_dir: Path, log: Callable[[str], None] = print) -> MnistArrays:
    """Let torchvision download MNIST into ``cache_dir/torchvision`` (if needed) and read the raw IDX files.

    Raises MtbenchError when torchvision cannot be imported, when its download
    fails, or when the extracted files are invalid (see ``read_idx_folder``).
    """
    root = Path(cache_dir) / "torchvision"
    try:
        from torchvision.datasets import MNIST
    # A torchvision built for another torch version fails on import with RuntimeError or OSError.
    except (ImportError, RuntimeError, OSError) as error:
        raise MtbenchError(f"torchvision cannot be imported ({error}). Install it with 'pip install torchvision', which mtbench lists as a dependency.") from error

    log(f"Loading MNIST through torchvision in {root}. torchvision downloads only the files that are missing.")
    try:
        MNIST(root=str(root), train=True, download=True)
    except (RuntimeError, URLError, OSError) as error:
        reason = " ".join(str(error).split())
        raise MtbenchError(f"torchvision could not provide MNIST in {root}: {reason}") from error

    arrays = read_idx_folder(root / TORCHVISION_RAW_SUBFOLDER)
    return MnistArrays(
        train_images=arrays.train_images,
        train_labels=arrays.train_labels,
        test_images=arrays.test_images,
        test_labels=arrays.test_labels,
        source=f"torchvision MNIST download, {arrays.source}",
    )
