"""glibc's ``mallinfo2``: the bytes that the C allocator has handed out, which include tensor memory.

``tracemalloc`` counts only Python's own allocator, so the memory tests read
these counters instead. ``mallinfo2`` is None without glibc 2.33 or later.
"""

import ctypes
import ctypes.util


class MallocInfo(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")
    ]


def _load_mallinfo2():
    library = ctypes.util.find_library("c")
    if library is None:
        return None
    libc = ctypes.CDLL(library)
    if not hasattr(libc, "mallinfo2"):
        return None
    libc.mallinfo2.restype = MallocInfo
    return libc.mallinfo2


mallinfo2 = _load_mallinfo2()


def malloc_in_use() -> int:
    """Return the bytes in use by malloc: heap blocks plus blocks mapped with mmap."""
    info = mallinfo2()
    return info.uordblks + info.hblkhd
