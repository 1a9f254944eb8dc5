"""Default locations from the environment: MTBENCH_HOME, MTBENCH_DATA and MTBENCH_ROOT."""

from pathlib import Path

import pytest

from mtbench.paths import data_root, download_cache, mtbench_home, project_root


def test_variables_set(monkeypatch, tmp_path):
    monkeypatch.setenv("MTBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MTBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MTBENCH_ROOT", str(tmp_path / "root"))

    assert mtbench_home() == tmp_path / "home"
    assert data_root() == tmp_path / "data"
    assert download_cache() == tmp_path / "home" / "downloads"
    assert project_root() == tmp_path / "root"


def test_data_under_home_when_data_unset(monkeypatch, tmp_path):
    monkeypatch.setenv("MTBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MTBENCH_DATA", raising=False)

    assert data_root() == tmp_path / "home" / "data"


@pytest.mark.parametrize("value", ["", "  "], ids=["empty", "blanks"])
def test_empty_variables_count_as_unset(monkeypatch, tmp_path, value):
    """``MTBENCH_DATA=`` must not make the working directory the data root."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("MTBENCH_HOME", "MTBENCH_DATA", "MTBENCH_ROOT"):
        monkeypatch.setenv(name, value)

    assert mtbench_home() == tmp_path / ".cache" / "mtbench"
    assert data_root() == tmp_path / ".cache" / "mtbench" / "data"
    assert project_root() == Path(__file__).resolve().parent.parent
