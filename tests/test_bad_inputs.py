"""Bad inputs to the command line: the shared helpers, and the rows about options, data roots and full or read-only disks.

Every row of docs/bad_inputs.md has one test here or in a ``test_bad_inputs_*.py``
file. Each test runs ``mtbench.cli.main.main`` in-process on files it writes
under ``tmp_path``. It checks the non-zero exit status, a message that names
the file or value at fault, and the absence of a traceback. It also checks
that nothing written before the command is lost or half-written.
"""

import builtins
import errno
import functools
import hashlib
import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

import mtbench.cli.leaderboard_command
import mtbench.cli.run_command
from mtbench.cli.main import main
from mtbench.data.multidigitmnist import verify_multidigitmnist
from mnist_fixtures import random_mnist, write_idx_folder

# Shared helpers, imported by the other test_bad_inputs_*.py files.


@dataclass(frozen=True)
class CliResult:
    status: int
    out: str
    err: str


def run_cli(capsys: pytest.CaptureFixture, *arguments) -> CliResult:
    """Run ``mtbench ARGUMENTS`` in-process; an argparse error (SystemExit) counts as its exit status."""
    try:
        status = main([str(argument) for argument in arguments])
    except SystemExit as exit_request:
        status = exit_request.code
    captured = capsys.readouterr()
    return CliResult(status, captured.out, captured.err)


def assert_user_error(result: CliResult, *fragments: str, status: int = 2) -> None:
    """Check the exit status, that every fragment is in the error output, and that no traceback was printed."""
    assert result.status == status, result.err
    for fragment in fragments:
        assert fragment in result.err
    assert "Traceback" not in result.err + result.out


def tree_digest(folder: Path) -> dict[str, str]:
    """Return the SHA-256 of every file under ``folder`` by relative path, hidden files and empty folders included."""
    digest = {}
    for path in sorted(Path(folder).rglob("*")):
        relative = str(path.relative_to(folder))
        digest[relative] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
    return digest


@pytest.fixture(autouse=True)
def isolated_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep every default output of mtbench inside ``tmp_path``: runs/, the download cache, data and the leaderboard."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MTBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MTBENCH_DATA", str(tmp_path / "home" / "data"))
    # Without this, a test run without --leaderboard-dir would append to the committed leaderboard.
    repository = tmp_path / "repository"
    monkeypatch.setattr(mtbench.cli.run_command, "project_root", lambda: repository)
    monkeypatch.setattr(mtbench.cli.leaderboard_command, "project_root", lambda: repository)
    return tmp_path


@pytest.fixture
def prepared_root(tiny_data_root: Path, tmp_path: Path) -> Path:
    """A writable copy of the tiny prepared MultiDigitMNIST data root."""
    return Path(shutil.copytree(tiny_data_root, tmp_path / "data"))


def assert_dataset_intact(root: Path, digest: dict[str, str]) -> None:
    """Check that the prepared MultiDigitMNIST under ``root`` still verifies and that no file under ``root`` changed."""
    verify_multidigitmnist(root / "multidigitmnist")
    assert tree_digest(root) == digest


def _resolved(target) -> str | None:
    """Return the absolute path of a path or file descriptor, or None for anything else."""
    if isinstance(target, int):
        try:
            return os.readlink(f"/proc/self/fd/{target}")
        except OSError:
            return None
    try:
        return os.path.realpath(os.fspath(target))
    except TypeError:
        return None


class _HalfWriter:
    """A file object that stores the first half of each write and then fails with ENOSPC, as a nearly full disk does."""

    def __init__(self, handle) -> None:
        self._handle = handle

    def write(self, data) -> int:
        size = len(data) if isinstance(data, str) else memoryview(data).nbytes
        if size == 0:
            return 0
        part = data[: size // 2] if isinstance(data, str) else memoryview(data).cast("B")[: size // 2]
        self._handle.write(part)
        self._handle.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str):
        return getattr(self._handle, name)

    def __enter__(self) -> "_HalfWriter":
        return self

    def __exit__(self, *exception) -> None:
        self._handle.close()


def fail_writes_under(monkeypatch: pytest.MonkeyPatch, folder: Path, error_number: int) -> None:
    """Make the file system under ``folder`` behave as full (ENOSPC) or read-only (EROFS); paths elsewhere work.

    ENOSPC: files open, and every write stores half of its bytes before it
    raises, as a real full tmpfs did when checked by hand. EROFS: creating a
    file or a folder raises at once, as on a read-only mount. Both reach
    mtbench through ``open``, ``io.open`` (used by ``os.fdopen`` and
    ``Path.open``), ``os.open`` (used by ``tempfile``), ``os.mkdir`` and
    ``os.replace``.
    """
    prefix = os.path.realpath(folder) + os.sep
    read_only = error_number != errno.ENOSPC
    real_open, real_os_open, real_mkdir, real_replace = io.open, os.open, os.mkdir, os.replace

    def inside(target) -> bool:
        path = _resolved(target)
        return path is not None and (path + os.sep).startswith(prefix)

    def created_inside(path) -> bool:
        return inside(os.path.dirname(os.path.abspath(path)))

    def failure(target) -> OSError:
        return OSError(error_number, os.strerror(error_number), None if isinstance(target, int) else os.fspath(target))

    def patched_open(file, mode="r", *arguments, **options):
        writing = any(flag in mode for flag in "wax+")
        if writing and read_only and (inside(file) if isinstance(file, int) else created_inside(file)):
            raise failure(file)
        handle = real_open(file, mode, *arguments, **options)
        return _HalfWriter(handle) if writing and not read_only and inside(file) else handle

    def patched_os_open(path, flags, *arguments, **options):
        creating = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        if creating and read_only and "dir_fd" not in options and created_inside(path):
            raise failure(path)
        return real_os_open(path, flags, *arguments, **options)

    def patched_mkdir(path, *arguments, **options):
        # An existing path gives EEXIST before EROFS, as on Linux.
        if read_only and "dir_fd" not in options and not os.path.lexists(path) and created_inside(path):
            raise failure(path)
        return real_mkdir(path, *arguments, **options)

    def patched_replace(source, destination, *arguments, **options):
        if read_only and not options and inside(source):
            raise failure(source)
        return real_replace(source, destination, *arguments, **options)

    monkeypatch.setattr(io, "open", patched_open)
    monkeypatch.setattr(builtins, "open", patched_open)
    monkeypatch.setattr(os, "open", patched_os_open)
    monkeypatch.setattr(os, "mkdir", patched_mkdir)
    monkeypatch.setattr(os, "replace", patched_replace)


def allow_small_mnist(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let `mtbench prepare multidigitmnist` accept an MNIST smaller than the published 60000 + 10000 images."""
    import mtbench.data.mnist

    monkeypatch.setattr(mtbench.data.mnist, "load_mnist", functools.partial(mtbench.data.mnist.load_mnist, expect_full=False))


def write_small_idx_folder(folder: Path) -> Path:
    """Write IDX files of 400 training and 200 test digits, enough to prepare at 24 images per pair."""
    write_idx_folder(folder, random_mnist(num_train=400, num_test=200))
    return folder


# Options and values.


def test_unknown_method(capsys, prepared_root, tmp_path):
    result = run_cli(capsys, "run", "--method", "gradnrom", "--data-root", prepared_root, "--leaderboard-dir", tmp_path / "leaderboard")
    assert_user_error(result, "Unknown method 'gradnrom'", "gradnorm", "--plugin")
    assert not (tmp_path / "leaderboard").exists()


def test_unknown_benchmark(capsys, prepared_root, tmp_path):
    result = run_cli(capsys, "run", "--benchmark", "imagenet", "--method", "equal", "--data-root", prepared_root, "--leaderboard-dir", tmp_path / "leaderboard")
    assert_user_error(result, "Unknown benchmark 'imagenet'", "multidigitmnist")
    assert not (tmp_path / "leaderboard").exists()


def test_unknown_dataset_to_prepare(capsys, prepared_root):
    digest = tree_digest(prepared_root)
    result = run_cli(capsys, "prepare", "imagenet", "--data-root", prepared_root)
    assert_user_error(result, "Unknown dataset 'imagenet'", "multidigitmnist, nyuv2, sunrgbd")
    assert_dataset_intact(prepared_root, digest)


def test_unknown_option(capsys, prepared_root, tmp_path):
    result = run_cli(capsys, "run", "--method", "equal", "--epoks", "1", "--data-root", prepared_root, "--leaderboard-dir", tmp_path / "leaderboard")
    assert_user_error(result, "unrecognized arguments: --epoks 1")
    assert not (tmp_path / "leaderboard").exists()


def test_option_value_not_an_integer(capsys, prepared_root, tmp_path):
    result = run_cli(capsys, "run", "--method", "equal", "--epochs", "1.5", "--data-root", prepared_root, "--leaderboard-dir", tmp_path / "leaderboard")
    assert_user_error(result, "argument --epochs: invalid int value: '1.5'")


def test_param_unknown_name(capsys, prepared_root, tmp_path):
    result = run_cli(capsys, "run", "--method", "cosreg", "--param", "lamda=1", "--data-root", prepared_root, "--leaderboard-dir", tmp_path / "leaderboard")
    assert_user_error(result, "Unknown hyper-parameter 'lamda' for method 'cosreg'", "Valid names: lambda")
    assert not (tmp_path / "leaderboard").exists()


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("lambda=big", "Invalid value 'big' for lambda: expected float"),
        ("scheduled=maybe", "Invalid value 'maybe' for scheduled: use true or false"),
        ("lambda=nan", "Invalid value 'nan' for lambda: use a finite number"),
    ],
    ids=["text for float", "text for bool", "non-finite float"],
)
def test_param_value_of_wrong_type(capsys, prepared_root, tmp_path, assignment, message):
    result = run_cli(capsys, "run", "--method", "cosreg", "--param", assignment, "--data-root", prepared_root, "--leaderboard-dir", tmp_path / "leaderboard")
    assert_user_error(result, message)
    assert not (tmp_path / "leaderboard").exists()


def test_param_without_value(capsys, prepared_root, tmp_path):
    result = run_cli(capsys, "run", "--method", "cosreg", "--param", "lambda", "--data-root", prepared_root, "--leaderboard-dir", tmp_path / "leaderboard")
    assert_user_error(result, "Invalid --param 'lambda'", "NAME=VALUE")


def test_param_given_twice(capsys, prepared_root, tmp_path):
    result = run_cli(
        capsys, "run", "--method", "cosreg", "--param", "lambda=0.1", "--param", "lambda=10",
        "--data-root", prepared_root, "--leaderboard-dir", tmp_path / "leaderboard",
    )  # fmt: skip
    assert_user_error(result, "Conflicting options --param lambda=0.1 and --param lambda=10")
    assert not (tmp_path / "leaderboard").exists()


@pytest.mark.parametrize(
    ("option", "value"),
    [("--seed", "-1"), ("--epochs", "0"), ("--epochs", "-3"), ("--batch-size", "0"), ("--batch-size", "-64"), ("--lr", "0")],
)
def test_nonpositive_run_setting(capsys, prepared_root, tmp_path, option, value):
    result = run_cli(capsys, "run", "--method", "equal", option, value, "--data-root", prepared_root, "--leaderboard-dir", tmp_path / "leaderboard")
    assert_user_error(result, f"Invalid {option} {value}")
    assert not (tmp_path / "leaderboard").exists()


def test_negative_prepare_seed(capsys, prepared_root, tmp_path):
    digest = tree_digest(prepared_root)
    mnist = write_small_idx_folder(tmp_path / "mnist")
    result = run_cli(capsys, "prepare", "multidigitmnist", "--mnist-source", "folder", "--mnist-folder", mnist, "--data-root", prepared_root, "--seed", "-3")
    assert_user_error(result, "Invalid --seed -3")
    assert_dataset_intact(prepared_root, digest)


def test_repeated_seed_options_add_up(capsys, prepared_root, tmp_path):
    # The lists of two --seed options add up, so the same seed in both is a duplicate.
    result = run_cli(capsys, "run", "--method", "equal", "--seed", "3", "--seed", "3", "--data-root", prepared_root, "--leaderboard-dir", tmp_path / "leaderboard")
    assert_user_error(result, "Duplicate seeds in --seed 3 3")


def test_conflicting_download_and_folder(capsys, tmp_path):
    (tmp_path / "nyu").mkdir()
    result = run_cli(capsys, "prepare", "nyuv2", "--download", "--nyuv2-folder", tmp_path / "nyu", "--data-root", tmp_path / "data")
    assert_user_error(result, "cannot be combined with --nyuv2-folder")
    assert not (tmp_path / "home" / "downloads").exists()
    assert not (tmp_path / "data").exists()


# Data roots.


def test_run_data_root_is_a_file(capsys, tmp_path):
    data_file = tmp_path / "data.tar"
    data_file.write_bytes(b"not a folder")
    result = run_cli(capsys, "run", "--method", "equal", "--data-root", data_file, "--leaderboard-dir", tmp_path / "leaderboard")
    assert_user_error(result, f"The data root {data_file} is a file, not a folder")
    assert data_file.read_bytes() == b"not a folder"
    assert not (tmp_path / "leaderboard").exists()


def test_prepare_data_root_is_a_file(capsys, tmp_path):
    data_file = tmp_path / "data.tar"
    data_file.write_bytes(b"not a folder")
    mnist = write_small_idx_folder(tmp_path / "mnist")
    result = run_cli(capsys, "prepare", "multidigitmnist", "--mnist-source", "folder", "--mnist-folder", mnist, "--data-root", data_file)
    assert_user_error(result, f"The data root {data_file} is a file, not a folder")
    assert data_file.read_bytes() == b"not a folder"


def test_run_on_empty_data_root(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli(capsys, "run", "--method", "equal", "--data-root", tmp_path / "empty", "--leaderboard-dir", tmp_path / "leaderboard")
    assert_user_error(result, f"MultiDigitMNIST folder {tmp_path / 'empty' / 'multidigitmnist'} not found", "mtbench prepare multidigitmnist")
    assert not (tmp_path / "leaderboard").exists()
    assert list((tmp_path / "empty").iterdir()) == []


# Full and read-only disks.


def test_prepare_on_full_disk(capsys, monkeypatch, prepared_root, tmp_path):
    allow_small_mnist(monkeypatch)
    mnist = write_small_idx_folder(tmp_path / "mnist")
    digest = tree_digest(prepared_root)

    with pytest.MonkeyPatch.context() as faults:
        fail_writes_under(faults, prepared_root, errno.ENOSPC)
        result = run_cli(
            capsys, "prepare", "multidigitmnist", "--mnist-source", "folder", "--mnist-folder", mnist,
            "--data-root", prepared_root, "--images-per-pair", "24", "--seed", "7",
        )  # fmt: skip

    assert_user_error(result, "No space left on the device while writing", str(prepared_root), "Free some disk space")
    assert_dataset_intact(prepared_root, digest)


def test_prepare_into_read_only_data_root(capsys, monkeypatch, prepared_root, tmp_path):
    allow_small_mnist(monkeypatch)
    mnist = write_small_idx_folder(tmp_path / "mnist")
    digest = tree_digest(prepared_root)

    with pytest.MonkeyPatch.context() as faults:
        fail_writes_under(faults, prepared_root, errno.EROFS)
        result = run_cli(
            capsys, "prepare", "multidigitmnist", "--mnist-source", "folder", "--mnist-folder", mnist,
            "--data-root", prepared_root, "--images-per-pair", "24",
        )  # fmt: skip

    assert_user_error(result, f"Cannot write {prepared_root / 'multidigitmnist'}: permission denied", "writable folder")
    assert_dataset_intact(prepared_root, digest)


def test_full_disk_helper_writes_half(tmp_path):
    (tmp_path / "full").mkdir()
    with pytest.MonkeyPatch.context() as faults:
        fail_writes_under(faults, tmp_path / "full", errno.ENOSPC)
        (tmp_path / "other.txt").write_text("written")
        with pytest.raises(OSError, match="No space left"):
            (tmp_path / "full" / "half.txt").write_text("0123456789")

    assert (tmp_path / "other.txt").read_text() == "written"
    assert (tmp_path / "full" / "half.txt").read_text() == "01234"


def test_read_only_helper_rejects_creation(tmp_path):
    (tmp_path / "read-only" / "existing").mkdir(parents=True)
    with pytest.MonkeyPatch.context() as faults:
        fail_writes_under(faults, tmp_path / "read-only", errno.EROFS)
        (tmp_path / "other").mkdir()
        with pytest.raises(OSError, match="Read-only file system"):
            (tmp_path / "read-only" / "new").mkdir()
        with pytest.raises(OSError, match="Read-only file system"):
            (tmp_path / "read-only" / "new.txt").write_text("lost")
        with pytest.raises(FileExistsError):
            (tmp_path / "read-only" / "existing").mkdir()

    assert (tmp_path / "other").is_dir()
    assert sorted(path.name for path in (tmp_path / "read-only").iterdir()) == ["existing"]
