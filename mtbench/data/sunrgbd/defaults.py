"""Default build options of SUN RGB-D, importable without h5py or scipy (the command line reads them for its help)."""

DATASET_NAME = "sunrgbd"

# (height, width) of the inputs and of the targets, as the benchmark's protocol fixes them.
IMAGE_SIZE = (320, 320)
TARGET_SIZE = (80, 80)

DEFAULT_VAL_FRACTION = 0.1
DEPTH_SOURCES: tuple[str, ...] = ("raw", "inpainted")
# The toolbox's read3dPoints.m clamps depth to 8 m. mtbench marks deeper values invalid instead of clamping them.
DEFAULT_MAX_DEPTH = 8.0
