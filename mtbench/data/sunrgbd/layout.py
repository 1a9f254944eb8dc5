"""Where the SUN RGB-D source files lie, and how paths inside the .mat files map onto them.

``SUNRGBD.zip`` unpacks to ``SUNRGBD/<sensor>/<collection>/<scene>/`` with
the sensors kv1, kv2, realsense and xtion; each scene folder contains one frame
(``image/<name>.jpg``, ``depth/<name>.png``, ``depth_bfx/<name>.png``, ...).
``SUNRGBDtoolbox.zip`` unpacks to ``SUNRGBDtoolbox/`` with the metadata and
split files. ``find_source_files`` looks for each file at the paths in
``SOURCE_CANDIDATES``, in order, relative to the folder the user names.

The .mat files store absolute paths of the authors' file system, such as
``/n/fs/sun3d/data/SUNRGBD/kv2/kinect2data/<scene>/image/0000103.jpg``, and
the prefix is not the same in every copy of the toolbox.
``relative_sunrgbd_path`` reduces such a path to the part that starts at the
sensor folder (``kv2/kinect2data/<scene>/image/0000103.jpg``), which is the
same in the metadata, in the split file and on disk.
"""

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from mtbench.errors import MtbenchError

SENSOR_FOLDERS: tuple[str, ...] = ("kv1", "kv2", "realsense", "xtion")
DATA_FOLDER_NAME = "SUNRGBD"

# Paths tried for each source, relative to --sunrgbd-folder; the first that exists wins. The nested
# SUNRGBDtoolbox/SUNRGBDtoolbox/ is what unzipping into a folder named after the archive gives.
SOURCE_CANDIDATES: dict[str, tuple[str, ...]] = {
    "images": ("SUNRGBD",),
    "meta": ("SUNRGBDtoolbox/Metadata/SUNRGBDMeta.mat", "SUNRGBDtoolbox/SUNRGBDtoolbox/Metadata/SUNRGBDMeta.mat", "SUNRGBDMeta.mat"),
    "segmentation": ("SUNRGBDtoolbox/Metadata/SUNRGBD2Dseg.mat", "SUNRGBDtoolbox/SUNRGBDtoolbox/Metadata/SUNRGBD2Dseg.mat", "SUNRGBD2Dseg.mat"),
    "split": (
        "SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat",
        "SUNRGBDtoolbox/SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat",
        "allsplit.mat",
    ),
}

_ARCHIVE_OF_SOURCE = {
    "images": "SUNRGBD.zip",
    "meta": "SUNRGBDtoolbox.zip",
    "segmentation": "SUNRGBDtoolbox.zip",
    "split": "SUNRGBDtoolbox.zip",
}


@dataclass(frozen=True)
class SourceFiles:
    """The located SUN RGB-D sources: the image tree and the three toolbox .mat files."""

    images: Path
    meta: Path
    segmentation: Path
    split: Path


def find_source_files(folder: Path) -> SourceFiles:
    """Locate every source under ``folder``.

    Raises MtbenchError when ``folder`` is not a folder, or when a source is
    missing, listing every missing source with the paths that were tried and
    the archive that contains it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MtbenchError(f"SUN RGB-D folder {folder} not found. Pass the folder that contains SUNRGBD/ and SUNRGBDtoolbox/ as --sunrgbd-folder.")

    found: dict[str, Path] = {}
    problems: list[str] = []
    for source, candidates in SOURCE_CANDIDATES.items():
        paths = [folder / candidate for candidate in candidates]
        match = next((path for path in paths if (path.is_dir() if source == "images" else path.is_file())), None)
        if match is None:
            tried = " or ".join(str(path) for path in paths)
            problems.append(f"{tried} (from {_ARCHIVE_OF_SOURCE[source]})")
        else:
            found[source] = match

    if problems:
        raise MtbenchError(
            f"SUN RGB-D sources missing in {folder}: {'; '.join(problems)}. "
            "Unzip SUNRGBD.zip and SUNRGBDtoolbox.zip from the SUN RGB-D website into that folder."
        )
    _check_sensor_folders(found["images"])
    return SourceFiles(**found)


def _check_sensor_folders(images: Path) -> None:
    if not any((images / sensor).is_dir() for sensor in SENSOR_FOLDERS):
        raise MtbenchError(
            f"{images} contains none of the sensor folders {', '.join(SENSOR_FOLDERS)}, so it is not the unzipped SUNRGBD.zip. "
            "Unzip SUNRGBD.zip so that the sensor folders lie directly inside SUNRGBD/."
        )


def relative_sunrgbd_path(path: str) -> PurePosixPath:
    """Return the part of a toolbox path that starts at the sensor folder.

    The path is split at '/' and '\\', and empty and '.' parts are dropped.
    The result starts after the last part named ``SUNRGBD`` that is directly
    followed by a sensor folder name, or, when no part is, at the first
    sensor folder name. Raises ValueError when the path contains no sensor
    folder name.
    """
    parts = [part for part in path.replace("\\", "/").split("/") if part not in ("", ".")]
    start = None
    for index in range(len(parts) - 1):
        if parts[index] == DATA_FOLDER_NAME and parts[index + 1] in SENSOR_FOLDERS:
            start = index + 1
    if start is None:
        start = next((index for index, part in enumerate(parts) if part in SENSOR_FOLDERS), None)
    if start is None:
        raise ValueError(f"path {path!r} contains none of the sensor folders {', '.join(SENSOR_FOLDERS)}")
    return PurePosixPath(*parts[start:])
