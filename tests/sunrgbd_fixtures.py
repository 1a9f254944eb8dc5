"""Writers of a tiny SUN RGB-D source tree in the published formats, for tests.

``write_sunrgbd_sources(folder)`` writes what unzipping SUNRGBD.zip and
SUNRGBDtoolbox.zip gives, for six frames from two sensors with different
image sizes (kv1 8 x 8, kv2 8 x 12, as height x width):

- ``SUNRGBD/<sensor>/<collection>/<scene>/image/<name>.jpg``, ``depth/<name>.png``
  and ``depth_bfx/<name>.png``, depth stored with the toolbox's bit rotation,
- ``SUNRGBDtoolbox/Metadata/SUNRGBDMeta.mat``: MAT v5 (or v7.3 on request),
  struct array ``SUNRGBDMeta`` with absolute ``rgbpath`` and ``depthpath``,
- ``SUNRGBDtoolbox/Metadata/SUNRGBD2Dseg.mat``: MAT v7.3 (HDF5 with a 512-byte
  MATLAB header), group ``SUNRGBD2Dseg`` with ``seglabel``, a (N, 1) dataset
  of object references to (width, height) label arrays in ``#refs#``,
- ``SUNRGBDtoolbox/traintestSUNRGBD/allsplit.mat``: MAT v5, cell arrays
  ``alltrain`` and ``alltest`` of scene folders.

The frames' true values (colour, depth in millimetres, labels 0..37) are
returned with the paths, so tests can compute expected outputs by hand.
"""

import struct
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import scipy.io
from PIL import Image

META_PREFIX = "/n/fs/sun3d/data/SUNRGBD/"


@dataclass(frozen=True)
class FixtureFrame:
    scene: str  # relative to SUNRGBD/, e.g. "kv1/NYUdata/NYU0001"
    name: str  # file stem of image/<name>.jpg and depth/<name>.png
    split: str  # "train" or "test"
    rgb: np.ndarray  # uint8 (H, W, 3)
    depth_mm: np.ndarray  # uint16 (H, W), true millimetres, 0 = no measurement
    labels: np.ndarray  # uint8 (H, W), 0..37

    @property
    def sensor(self) -> str:
        return self.scene.split("/")[0]


@dataclass
class SunrgbdSources:
    folder: Path
    frames: list[FixtureFrame]
    images: Path
    meta: Path
    segmentation: Path
    split: Path

    def rgb_path(self, index: int) -> Path:
        frame = self.frames[index]
        return self.images / frame.scene / "image" / f"{frame.name}.jpg"

    def depth_path(self, index: int, folder: str = "depth") -> Path:
        frame = self.frames[index]
        return self.images / frame.scene / folder / f"{frame.name}.png"


def encode_depth(depth_mm: np.ndarray) -> np.ndarray:
    """Return the stored PNG values of millimetres: the 16 bits rotated left by 3."""
    values = depth_mm.astype(np.uint32)
    return (((values << 3) | (values >> 13)) & 0xFFFF).astype(np.uint16)


def hand_made_kv1_frame() -> FixtureFrame:
    """An 8 x 8 kv1 frame whose 2 x 2 depth blocks and sampled labels the tests check by hand.

    Depth (mm) by 2 x 2 block, row-major: block (0, 0) 1000 everywhere;
    block (0, 1) 1000, 2000 on its first row and 0 on its second; block (0, 2)
    one pixel of 3000 and three zeros; block (0, 3) 9000 (beyond 8 m);
    rows 2..7 are 2500. Labels at the pixels that nearest sampling to 4 x 4
    picks (rows and columns 1, 3, 5, 7): row 1 is 0, 1, 8, 37, row 3 is
    4, 23, 25, 36, the rest 2. Colour is uniform (200, 100, 50).
    """
    depth = np.full((8, 8), 2500, dtype=np.uint16)
    depth[0:2, 0:2] = 1000
    depth[0:2, 2:4] = [[1000, 2000], [0, 0]]
    depth[0:2, 4:6] = [[3000, 0], [0, 0]]
    depth[0:2, 6:8] = 9000

    labels = np.full((8, 8), 2, dtype=np.uint8)
    labels[1, [1, 3, 5, 7]] = [0, 1, 8, 37]
    labels[3, [1, 3, 5, 7]] = [4, 23, 25, 36]

    rgb = np.empty((8, 8, 3), dtype=np.uint8)
    rgb[...] = (200, 100, 50)
    return FixtureFrame("kv1/NYUdata/NYU0001", "NYU0001", "train", rgb, depth, labels)


def random_frame(scene: str, name: str, split: str, size: tuple[int, int], seed: int) -> FixtureFrame:
    """A frame with a uniform random colour, random depth of 500..7999 mm except 0 at pixel (0, 0), and random labels 0..37."""
    rng = np.random.default_rng(seed)
    rgb = np.empty((*size, 3), dtype=np.uint8)
    rgb[...] = rng.integers(0, 256, size=3, dtype=np.uint8)
    depth = rng.integers(500, 8000, size=size).astype(np.uint16)
    depth[0, 0] = 0
    labels = rng.integers(0, 38, size=size).astype(np.uint8)
    return FixtureFrame(scene, name, split, rgb, depth, labels)


def default_frames() -> list[FixtureFrame]:
    """Six frames: four train, two test; kv1 frames 8 x 8, kv2 frames 8 x 12 (height x width)."""
    return [
        hand_made_kv1_frame(),
        random_frame("kv1/NYUdata/NYU0002", "NYU0002", "test", (8, 8), seed=2),
        random_frame("kv2/kinect2data/000003_2014-05-26_14-23-37_260595134347_rgbf000103-resize", "0000103", "train", (8, 12), seed=3),
        random_frame("kv1/b3dodata/img_0004", "img_0004", "train", (8, 8), seed=4),
        random_frame("kv2/kinect2data/000005_2014-05-26_14-30-00_260595134347_rgbf000005-resize", "0000005", "test", (8, 12), seed=5),
        random_frame("kv2/align_kv2/2014-12-17_15-10-11_094959634447", "0000006", "train", (8, 12), seed=6),
    ]


def write_sunrgbd_sources(
    folder: Path,
    frames: list[FixtureFrame] | None = None,
    *,
    meta_format: str = "v5",
    split_prefix: str = META_PREFIX,
    label_dtype: type = np.uint8,
) -> SunrgbdSources:
    """Write the SUNRGBD tree and the three toolbox .mat files for ``frames`` into ``folder``."""
    folder = Path(folder)
    frames = default_frames() if frames is None else frames
    images = folder / "SUNRGBD"
    toolbox = folder / "SUNRGBDtoolbox"

    for frame in frames:
        write_frame_files(images, frame)
    meta = toolbox / "Metadata" / "SUNRGBDMeta.mat"
    meta.parent.mkdir(parents=True, exist_ok=True)
    if meta_format == "v5":
        write_meta_v5(meta, frames)
    else:
        write_meta_v73(meta, frames)
    segmentation = toolbox / "Metadata" / "SUNRGBD2Dseg.mat"
    write_seg_v73(segmentation, [frame.labels for frame in frames], label_dtype)
    split = toolbox / "traintestSUNRGBD" / "allsplit.mat"
    write_split_v5(split, frames, split_prefix)
    return SunrgbdSources(folder, list(frames), images, meta, segmentation, split)


def write_frame_files(images: Path, frame: FixtureFrame) -> None:
    scene = images / frame.scene
    for subfolder in ("image", "depth", "depth_bfx"):
        (scene / subfolder).mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame.rgb).save(scene / "image" / f"{frame.name}.jpg", quality=95)
    Image.fromarray(encode_depth(frame.depth_mm)).save(scene / "depth" / f"{frame.name}.png")
    # The in-painted copy fills the holes with 4000 mm, so tests can tell the two apart.
    inpainted = np.where(frame.depth_mm == 0, 4000, frame.depth_mm).astype(np.uint16)
    Image.fromarray(encode_depth(inpainted)).save(scene / "depth_bfx" / f"{frame.name}.png")
    (scene / "scene.txt").write_text("bedroom")
    (scene / "intrinsics.txt").write_text("518.857901 0 284.582449\n0 519.469611 208.736166\n0 0 1\n")


def meta_paths(frame: FixtureFrame, prefix: str = META_PREFIX) -> tuple[str, str]:
    return f"{prefix}{frame.scene}/image/{frame.name}.jpg", f"{prefix}{frame.scene}/depth/{frame.name}.png"


def write_meta_v5(path: Path, frames: list[FixtureFrame], fields: tuple[str, ...] | None = None) -> None:
    """Write ``SUNRGBDMeta`` as a 1 x N MATLAB struct array in a MAT v5 file, as scipy.io.savemat does."""
    names = fields or ("sequenceName", "rgbpath", "depthpath", "rgbname", "depthname", "sensorType", "K", "Rtilt", "valid")
    structs = np.zeros((1, len(frames)), dtype=[(name, object) for name in names])
    for index, frame in enumerate(frames):
        rgb_path, depth_path = meta_paths(frame)
        values = {
            "sequenceName": f"SUNRGBD/{frame.scene}",
            "rgbpath": rgb_path,
            "depthpath": depth_path,
            "rgbname": f"{frame.name}.jpg",
            "depthname": f"{frame.name}.png",
            "sensorType": frame.sensor,
            "K": np.eye(3),
            "Rtilt": np.eye(3),
            "valid": 1,
        }
        for name in names:
            structs[0, index][name] = values[name]
    scipy.io.savemat(path, {"SUNRGBDMeta": structs}, do_compression=True)


def write_meta_v73(path: Path, frames: list[FixtureFrame]) -> None:
    """Write ``SUNRGBDMeta`` as MATLAB -v7.3 stores a struct array: one (N, 1) reference dataset per field."""
    columns = {"rgbpath": [], "depthpath": [], "rgbname": [], "sensorType": []}
    for frame in frames:
        rgb_path, depth_path = meta_paths(frame)
        columns["rgbpath"].append(rgb_path)
        columns["depthpath"].append(depth_path)
        columns["rgbname"].append(f"{frame.name}.jpg")
        columns["sensorType"].append(frame.sensor)

    with h5py.File(path, "w", userblock_size=512) as file:
        references = file.create_group("#refs#")
        group = file.create_group("SUNRGBDMeta")
        group.attrs["MATLAB_class"] = np.bytes_("struct")
        for field_name, texts in columns.items():
            refs = np.empty((len(texts), 1), dtype=h5py.ref_dtype)
            for index, text in enumerate(texts):
                refs[index, 0] = write_v73_char(references, f"{field_name}_{index}", text).ref
            group.create_dataset(field_name, data=refs)
    write_matlab_v73_header(path)


def write_v73_char(group: h5py.Group, name: str, text: str) -> h5py.Dataset:
    """Store a MATLAB 1 x k char array: uint16 code units, h5py shape (k, 1)."""
    codes = np.array([ord(character) for character in text], dtype=np.uint16).reshape(-1, 1)
    dataset = group.create_dataset(name, data=codes)
    dataset.attrs["MATLAB_class"] = np.bytes_("char")
    dataset.attrs["MATLAB_int_decode"] = np.int32(2)
    return dataset


def write_seg_v73(path: Path, labels: list[np.ndarray], label_dtype: type = np.uint8, group_name: str = "SUNRGBD2Dseg", field_name: str = "seglabel") -> None:
    """Write ``SUNRGBD2Dseg.mat``: each (H, W) label array stored transposed as (W, H) and referenced from ``seglabel``."""
    matlab_class = {np.uint8: "uint8", np.uint16: "uint16", np.float64: "double"}[label_dtype]
    with h5py.File(path, "w", userblock_size=512) as file:
        references = file.create_group("#refs#")
        group = file.create_group(group_name)
        group.attrs["MATLAB_class"] = np.bytes_("struct")
        refs = np.empty((len(labels), 1), dtype=h5py.ref_dtype)
        for index, label in enumerate(labels):
            dataset = references.create_dataset(f"seg_{index}", data=np.ascontiguousarray(label.T).astype(label_dtype))
            dataset.attrs["MATLAB_class"] = np.bytes_(matlab_class)
            refs[index, 0] = dataset.ref
        group.create_dataset(field_name, data=refs)
    write_matlab_v73_header(path)


def write_matlab_v73_header(path: Path) -> None:
    """Fill the 512-byte user block with the header MATLAB writes: text, subsystem offset, version 0x0200, 'IM'."""
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  6 12:00:00 2014 HDF5 schema 1.00 ."
    header = text.ljust(116, b" ") + bytes(8) + struct.pack("<H", 0x0200) + b"IM"
    with open(path, "r+b") as handle:
        handle.write(header.ljust(512, b"\x00"))


def write_split_v5(path: Path, frames: list[FixtureFrame], prefix: str = META_PREFIX, extra_train: tuple[str, ...] = ()) -> None:
    """Write ``allsplit.mat`` with ``alltrain`` and ``alltest`` (1 x n cell arrays of scene folders) and ``trainvalsplit``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    train = [f"{prefix}{frame.scene}" for frame in frames if frame.split == "train"] + list(extra_train)
    test = [f"{prefix}{frame.scene}" for frame in frames if frame.split == "test"]
    trainval = np.zeros((1, 1), dtype=[("train", object), ("val", object)])
    trainval[0, 0]["train"] = _cell(train[: len(train) // 2])
    trainval[0, 0]["val"] = _cell(train[len(train) // 2 :])
    scipy.io.savemat(path, {"alltrain": _cell(train), "alltest": _cell(test), "trainvalsplit": trainval}, do_compression=True)


def _cell(texts: list[str]) -> np.ndarray:
    cell = np.empty((1, len(texts)), dtype=object)
    for index, text in enumerate(texts):
        cell[0, index] = text
    return cell

