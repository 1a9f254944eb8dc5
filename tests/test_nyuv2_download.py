import hashlib

import pytest

from mtbench.cli.main import main
from mtbench.data.dense_format import read_dense_manifest
from mtbench.data.nyuv2 import download
from mtbench.data.nyuv2.download import OFFICIAL_URLS, download_file, download_official_files
from mtbench.errors import MtbenchError
from nyuv2_fixtures import official_arrays, write_official_folder


def silent(message: str) -> None:
    pass


@pytest.fixture
def published(tmp_path):
    """The four official files (3 images of 12 x 16) behind file:// addresses, standing in for the NYU server."""
    folder = write_official_folder(tmp_path / "server", official_arrays(count=3, height=12, width=16))
    return {name: (f"file://{folder / name}",) for name in OFFICIAL_URLS}, folder


def test_official_urls_cover_the_four_files():
    assert set(OFFICIAL_URLS) == {"nyu_depth_v2_labeled.mat", "splits.mat", "classMapping40.mat", "class13Mapping.mat"}
    assert download.PUBLISHED_SHA256 == {}


def test_download_file_returns_sha256(published, tmp_path):
    urls, server = published
    digest = download_file(urls["splits.mat"][0], tmp_path / "cache" / "splits.mat")
    assert digest == hashlib.sha256((server / "splits.mat").read_bytes()).hexdigest()
    assert (tmp_path / "cache" / "splits.mat").read_bytes() == (server / "splits.mat").read_bytes()
    assert [path.name for path in (tmp_path / "cache").iterdir()] == ["splits.mat"]


def test_failed_download_leaves_no_file(tmp_path):
    with pytest.raises(MtbenchError, match="Cannot download splits.mat"):
        download_official_files(tmp_path / "cache", silent, urls={"splits.mat": (f"file://{tmp_path / 'absent.mat'}",)})
    assert list((tmp_path / "cache").iterdir()) == []


def test_second_address_is_tried(published, tmp_path):
    urls, _ = published
    addresses = {"splits.mat": (f"file://{tmp_path / 'absent.mat'}", urls["splits.mat"][0])}
    paths = download_official_files(tmp_path / "cache", silent, urls=addresses)
    assert paths["splits.mat"].is_file()


def test_existing_file_is_kept(published, tmp_path):
    urls, _ = published
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "splits.mat").write_bytes(b"earlier download")
    download_official_files(tmp_path / "cache", silent, urls={"splits.mat": urls["splits.mat"]})
    assert (tmp_path / "cache" / "splits.mat").read_bytes() == b"earlier download"


def test_published_checksum_mismatch(published, tmp_path):
    urls, _ = published
    with pytest.raises(MtbenchError, match="published value is 00"):
        download_official_files(tmp_path / "cache", silent, urls={"splits.mat": urls["splits.mat"]}, published_sha256={"splits.mat": "00" * 32})


def test_prepare_with_download(published, tmp_path, monkeypatch, capsys):
    urls, server = published
    monkeypatch.setattr(download, "OFFICIAL_URLS", urls)
    monkeypatch.setenv("MTBENCH_HOME", str(tmp_path / "home"))
    status = main(["prepare", "nyuv2", "--download", "--data-root", str(tmp_path / "data"), "--val-fraction", "0.5"])
    assert status == 0, capsys.readouterr().err
    cache = tmp_path / "home" / "downloads" / "nyuv2"
    assert sorted(path.name for path in cache.iterdir()) == sorted(urls)
    manifest = read_dense_manifest(tmp_path / "data" / "nyuv2")
    expected = hashlib.sha256((server / "nyu_depth_v2_labeled.mat").read_bytes()).hexdigest()
    assert manifest["source"]["files"]["nyu_depth_v2_labeled.mat"]["sha256"] == expected


def test_download_rejects_folder(tmp_path, capsys):
    status = main(["prepare", "nyuv2", "--download", "--nyuv2-folder", str(tmp_path), "--data-root", str(tmp_path / "data")])
    assert status == 2
    assert "download cache" in capsys.readouterr().err


def test_no_files_and_no_download(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MTBENCH_HOME", str(tmp_path / "home"))
    status = main(["prepare", "nyuv2", "--data-root", str(tmp_path / "data")])
    assert status == 2
    err = capsys.readouterr().err
    assert "--nyuv2-folder" in err
    assert "--download" in err
