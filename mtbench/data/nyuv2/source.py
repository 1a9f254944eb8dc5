"""The interface shared by the NYUv2 sources: the official files, the preprocessed .npy copy and its parquet mirror."""

from collections.abc import Iterator
from typing import Any, Protocol

from mtbench.data.nyuv2.sample import NyuSample

SOURCE_SPLITS = ("train", "test")


class NyuSource(Protocol):
    """A readable copy of NYUv2 with the official 795 training and 654 test images.

    ``kind`` names the source on the command line (official, preprocessed,
    huggingface).
    """

    kind: str

    def split_sizes(self) -> dict[str, int]:
        """Return the number of images of "train" and "test"."""
        ...

    def samples(self, split: str) -> Iterator[NyuSample]:
        """Yield the images of ``split`` ("train" or "test") in the source's order, checked and converted. Raise MtbenchError for a bad file."""
        ...

    def provenance(self) -> dict[str, Any]:
        """Return what the manifest records about the source: its kind, files and their sha256."""
        ...

    def close(self) -> None:
        """Release open files."""
        ...
