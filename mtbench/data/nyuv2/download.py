"""Download of the official NYUv2 files into the download cache, only when the user passes ``--download``.

No sha256 of these files is published, so ``PUBLISHED_SHA256`` is empty:
downloads are not verified, and the manifest of a prepared dataset records
the sha256 of the files it was built from.
"""

import contextlib
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from mtbench.data.dense_format import sha256_of_file
from mtbench.data.nyuv2.class_mapping import CLASS_MAPPING_13_NAME, CLASS_MAPPING_40_NAME
from mtbench.data.nyuv2.official_mat import LABELED_MAT_NAME
from mtbench.data.nyuv2.official_splits import SPLITS_MAT_NAME
from mtbench.errors import MtbenchError

# Addresses tried in order. The NYU server hosts the labeled file and the splits. The
# class mappings are in A. Handa's nyuv2-meta-data repository and mirrored in VainF's
# nyuv2-python-toolkit, which also mirrors splits.mat.
# NOTE: no test reaches these addresses (tests never download), so a moved file shows up only at run time.
OFFICIAL_URLS: dict[str, tuple[str, ...]] = {
    LABELED_MAT_NAME: ("http://horatio.cs.nyu.edu/mit/silberman/nyu_depth_v2/nyu_depth_v2_labeled.mat",),
    SPLITS_MAT_NAME: (
        "http://horatio.cs.nyu.edu/mit/silberman/indoor_seg_sup/splits.mat",
        "https://github.com/VainF/nyuv2-python-toolkit/raw/master/splits.mat",
    ),
    CLASS_MAPPING_40_NAME: (
        "https://github.com/ankurhanda/nyuv2-meta-data/raw/master/classMapping40.mat",
        "https://github.com/VainF/nyuv2-python-toolkit/raw/master/classMapping40.mat",
    ),
    CLASS_MAPPING_13_NAME: (
        "https://github.com/ankurhanda/nyuv2-meta-data/raw/master/class13Mapping.mat",
        "https://github.com/VainF/nyuv2-python-toolkit/raw/master/class13Mapping.mat",
    ),
}
PUBLISHED_SHA256: dict[str, str] = {}
_CHUNK_BYTES = 1 << 20


def download_official_files(
    folder: Path,
    log: Callable[[str], None],
    urls: dict[str, tuple[str, ...]] | None = None,
    published_sha256: dict[str, str] | None = None,
) -> dict[str, Path]:
    """Download each file of ``urls`` (default ``OFFICIAL_URLS``) that ``folder`` lacks and return the path of every file.

    A file already in ``folder`` is kept (and checked when its sha256 is in
    ``published_sha256``, default ``PUBLISHED_SHA256``). Raises MtbenchError
    when every address of a file fails or a published sha256 differs.
    """
    folder = Path(folder)
    urls = OFFICIAL_URLS if urls is None else urls
    published_sha256 = PUBLISHED_SHA256 if published_sha256 is None else published_sha256
    paths = {}
    for name, addresses in urls.items():
        path = folder / name
        if path.is_file():
            log(f"Using {path} from an earlier download.")
        else:
            _download_first_working(addresses, path, log)
        expected = published_sha256.get(name)
        if expected is not None:
            _check_sha256(path, expected)
        paths[name] = path
    return paths


def _download_first_working(addresses: tuple[str, ...], path: Path, log: Callable[[str], None]) -> None:
    failures = []
    for address in addresses:
        log(f"Downloading {address} to {path}")
        try:
            download_file(address, path)
            return
        except (urllib.error.URLError, OSError, ValueError) as error:
            log(f"Download of {address} failed: {error}")
            failures.append(f"{address} ({error})")
    raise MtbenchError(f"Cannot download {path.name}: {'; '.join(failures)}. Download it yourself and pass its folder with --nyuv2-folder.")


def download_file(address: str, path: Path) -> str:
    """Stream ``address`` into ``path`` through a temporary file in the same folder and return its sha256.

    ``path`` appears only once the whole file has arrived.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as output, urllib.request.urlopen(address, timeout=60) as response:
            while chunk := response.read(_CHUNK_BYTES):
                digest.update(chunk)
                output.write(chunk)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return digest.hexdigest()


def _check_sha256(path: Path, expected: str) -> None:
    actual = sha256_of_file(path)
    if actual != expected:
        raise MtbenchError(f"{path} has sha256 {actual}, but the published value is {expected}. Delete it and download it again.")
