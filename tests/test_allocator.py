"""keep_freed_memory: large tensors come from the heap and freed ones stay there for the next step.

``mallopt`` settings hold for the whole process, so every check runs in a
child Python process. The child allocates a 16 MiB tensor and reports how
many bytes glibc serves with ``mmap`` (``hblkhd``) while it is alive, and how
many heap bytes stay free (``fordblks``) after it is released.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from malloc_info import mallinfo2

from mtbench.train.allocator import ENVIRONMENT_VARIABLE

TENSOR_BYTES = 16 * 2**20
CHILD = f"""
import json, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import torch
from malloc_info import mallinfo2
from mtbench.train.allocator import keep_freed_memory

tuned = keep_freed_memory() if sys.argv[1] == "tune" else None
before = mallinfo2()
tensor = torch.ones({TENSOR_BYTES // 4}, dtype=torch.float32)
during = mallinfo2()
del tensor
after = mallinfo2()
print(json.dumps({{"tuned": tuned, "mapped": during.hblkhd - before.hblkhd, "kept_free": after.fordblks - before.fordblks}}))
"""

pytestmark = pytest.mark.skipif(
    mallinfo2 is None or not sys.platform.startswith("linux"), reason="needs Linux with glibc 2.33 or later"
)


def run_child(mode: str, allocator_setting: str | None = None) -> dict:
    environment = {key: value for key, value in os.environ.items() if key != ENVIRONMENT_VARIABLE}
    if allocator_setting is not None:
        environment[ENVIRONMENT_VARIABLE] = allocator_setting
    completed = subprocess.run([sys.executable, "-c", CHILD, mode], env=environment, capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_default_glibc_unmaps_large_tensor():
    result = run_child("leave")

    assert result["mapped"] >= TENSOR_BYTES
    assert result["kept_free"] < TENSOR_BYTES


def test_tuned_allocator_reuses_heap_blocks():
    result = run_child("tune")

    assert result["tuned"] is True
    assert result["mapped"] == 0
    assert result["kept_free"] >= TENSOR_BYTES


@pytest.mark.parametrize("setting", ["Default", "off", "0"])
def test_environment_variable_disables_tuning(setting):
    result = run_child("tune", allocator_setting=setting)

    assert result["tuned"] is False
    assert result["mapped"] >= TENSOR_BYTES
