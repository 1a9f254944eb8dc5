"""``mtbench prepare sunrgbd``: SUN RGB-D from the unzipped SUNRGBD.zip and SUNRGBDtoolbox.zip."""

import argparse
from collections.abc import Callable
from pathlib import Path

from mtbench.data.sunrgbd.defaults import DEFAULT_MAX_DEPTH, DEFAULT_VAL_FRACTION, DEPTH_SOURCES
from mtbench.errors import MtbenchError


def add_arguments(group) -> None:
    group.add_argument(
        "--sunrgbd-folder",
        type=Path,
        default=None,
        help="folder that contains SUNRGBD/ (from SUNRGBD.zip) and SUNRGBDtoolbox/ (from SUNRGBDtoolbox.zip)",
    )
    group.add_argument(
        "--sunrgbd-depth",
        choices=DEPTH_SOURCES,
        default="raw",
        help="depth target: the sensor's raw depth (depth/, with holes marked invalid) or the toolbox's in-painted depth (depth_bfx/)",
    )
    group.add_argument(
        "--sunrgbd-max-depth",
        type=float,
        default=DEFAULT_MAX_DEPTH,
        help="depth in metres beyond which a pixel is marked invalid",
    )
    try:
        group.add_argument(
            "--val-fraction",
            type=float,
            default=DEFAULT_VAL_FRACTION,
            help="fraction of the official training split moved to the validation split, drawn with --seed",
        )
    except argparse.ArgumentError:
        # Another dataset's options already define --val-fraction with the same meaning.
        pass


def prepare(arguments: argparse.Namespace, root: Path, log: Callable[[str], None]) -> Path:
    if arguments.sunrgbd_folder is None:
        raise MtbenchError(
            "`mtbench prepare sunrgbd` needs --sunrgbd-folder DIR, the folder into which SUNRGBD.zip and "
            "SUNRGBDtoolbox.zip from the SUN RGB-D website were unzipped."
        )

    # --resolution and --download are other datasets' options. Reject them rather than ignore them.
    if getattr(arguments, "resolution", "320x320") != "320x320":
        raise MtbenchError(f"SUN RGB-D is prepared only with 320x320 inputs and 80x80 targets, not --resolution {arguments.resolution}. Drop --resolution.")
    if getattr(arguments, "download", False):
        raise MtbenchError(
            "mtbench does not download SUN RGB-D. Download SUNRGBD.zip and SUNRGBDtoolbox.zip from the SUN RGB-D website, "
            "unzip them into one folder, and pass it as --sunrgbd-folder without --download."
        )

    # Imported here because h5py and scipy take a noticeable time to import, and every mtbench command adds these options.
    from mtbench.data.sunrgbd.build import prepare_sunrgbd, sunrgbd_folder

    return prepare_sunrgbd(
        arguments.sunrgbd_folder,
        sunrgbd_folder(root),
        seed=arguments.seed,
        val_fraction=arguments.val_fraction,
        depth_source=arguments.sunrgbd_depth,
        max_depth=arguments.sunrgbd_max_depth,
        log=log,
    )
