"""``mtbench prepare nyuv2``: NYUv2 segmentation, depth and normals from the official files or a preprocessed copy."""

import argparse
from collections.abc import Callable
from pathlib import Path

from mtbench.errors import MtbenchError
from mtbench.paths import download_cache

SOURCES = ("official", "preprocessed", "huggingface")


def _add_shared_argument(group, *names: str, **settings) -> None:
    """Add an option that another dense dataset may have added already, in which case its definition is kept."""
    try:
        group.add_argument(*names, **settings)
    except argparse.ArgumentError:
        pass


def add_arguments(group) -> None:
    group.add_argument(
        "--nyuv2-source",
        default="official",
        choices=SOURCES,
        help="official = nyu_depth_v2_labeled.mat, splits.mat and the class mappings, preprocessed = the {train,val}/{image,label,depth,normal}/<i>.npy "
        "copy of MTAN/LibMTL/Nash-MTL, huggingface = local parquet files of tanganke/nyuv2",
    )
    group.add_argument("--nyuv2-folder", type=Path, default=None, help="folder with the files of the chosen source (default for official: <download cache>/nyuv2)")
    group.add_argument("--nyuv2-labeled-mat", type=Path, default=None, help="path of nyu_depth_v2_labeled.mat, overriding --nyuv2-folder")
    group.add_argument("--nyuv2-splits", type=Path, default=None, help="path of splits.mat, overriding --nyuv2-folder")
    group.add_argument("--nyuv2-class-mapping40", type=Path, default=None, help="path of classMapping40.mat (894 to 40 classes), overriding --nyuv2-folder")
    group.add_argument("--nyuv2-class-mapping13", type=Path, default=None, help="path of class13Mapping.mat (40 to 13 classes), overriding --nyuv2-folder")
    group.add_argument(
        "--nyuv2-depth", default="depths", choices=["depths", "rawDepths"], help="official source only: in-painted depths or raw Kinect depths (0 = invalid)"
    )
    _add_shared_argument(
        group, "--resolution", default="320x320", choices=["320x320", "288x384"],
        help="320x320 = inputs 320x320 and targets 80x80 in <data root>/nyuv2, 288x384 = inputs and targets 288x384 in <data root>/nyuv2-288x384",
    )  # fmt: skip
    _add_shared_argument(group, "--val-fraction", type=float, default=0.1, help="fraction of the official training images held out for validation")
    _add_shared_argument(group, "--download", action="store_true", help="download missing source files into the download cache (never done otherwise)")


def prepare(arguments: argparse.Namespace, root: Path, log: Callable[[str], None]) -> Path:
    from mtbench.data.nyuv2.build import RESOLUTIONS, build_nyuv2

    resolution = RESOLUTIONS.get(arguments.resolution)
    if resolution is None:
        raise MtbenchError(f"Invalid --resolution {arguments.resolution!r} for NYUv2: use {' or '.join(RESOLUTIONS)}.")
    source = _open_source(arguments, log)
    try:
        options = {"nyuv2_source": arguments.nyuv2_source, "nyuv2_depth": arguments.nyuv2_depth if source.kind == "official" else None}
        return build_nyuv2(source, root / resolution.folder_name, resolution, arguments.val_fraction, arguments.seed, options, log)
    finally:
        source.close()


def _open_source(arguments: argparse.Namespace, log: Callable[[str], None]):
    if arguments.nyuv2_source == "official":
        return _open_official(arguments, log)
    if arguments.nyuv2_folder is None:
        raise MtbenchError(f"--nyuv2-source {arguments.nyuv2_source} needs --nyuv2-folder with the local copy of its files.")
    if arguments.nyuv2_source == "preprocessed":
        if arguments.download:
            raise MtbenchError("mtbench cannot download the preprocessed NYUv2 copy (it is shared through Dropbox and Google Drive links). Download it yourself and pass --nyuv2-folder.")
        from mtbench.data.nyuv2.preprocessed_npy import PreprocessedSource

        return PreprocessedSource(arguments.nyuv2_folder)
    if arguments.download:
        raise MtbenchError(
            "mtbench reads the Hugging Face copy from local files only. Run `huggingface-cli download tanganke/nyuv2 --repo-type dataset --local-dir DIR` "
            "and pass DIR with --nyuv2-folder."
        )
    from mtbench.data.nyuv2.parquet_mirror import ParquetMirrorSource

    return ParquetMirrorSource(arguments.nyuv2_folder)


def _open_official(arguments: argparse.Namespace, log: Callable[[str], None]):
    from mtbench.data.nyuv2.class_mapping import CLASS_MAPPING_13_NAME, CLASS_MAPPING_40_NAME
    from mtbench.data.nyuv2.download import download_official_files
    from mtbench.data.nyuv2.official_mat import LABELED_MAT_NAME
    from mtbench.data.nyuv2.official_splits import SPLITS_MAT_NAME
    from mtbench.data.nyuv2.official_source import OfficialSource, locate_official_files

    folder = arguments.nyuv2_folder
    if arguments.download:
        if folder is not None:
            raise MtbenchError("--download fetches the NYUv2 files into the download cache, so it cannot be combined with --nyuv2-folder. Drop one of the two options.")
        folder = download_cache() / "nyuv2"
        download_official_files(folder, log)
    elif folder is None and not all((arguments.nyuv2_labeled_mat, arguments.nyuv2_splits, arguments.nyuv2_class_mapping40, arguments.nyuv2_class_mapping13)):
        folder = download_cache() / "nyuv2"
        if not folder.is_dir():
            raise MtbenchError(
                f"No NYUv2 files given and {folder} does not exist. Pass --nyuv2-folder with nyu_depth_v2_labeled.mat, splits.mat, "
                "classMapping40.mat and class13Mapping.mat, or add --download to fetch them there."
            )
    overrides = {
        LABELED_MAT_NAME: arguments.nyuv2_labeled_mat,
        SPLITS_MAT_NAME: arguments.nyuv2_splits,
        CLASS_MAPPING_40_NAME: arguments.nyuv2_class_mapping40,
        CLASS_MAPPING_13_NAME: arguments.nyuv2_class_mapping13,
    }
    return OfficialSource(locate_official_files(folder, overrides), depth_dataset=arguments.nyuv2_depth, log=log)
