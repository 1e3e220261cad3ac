"""common/allocator.py: scripts tell glibc to keep freed memory, only where that applies, and the
settings really stop the page faults that made CPU training slow."""

import platform
import subprocess
import sys

import pytest

from common.allocator import OPT_OUT, untuned_environment

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="glibc's malloc tunables exist on Linux with glibc only")

# What a framework does with a feature map each step: malloc 64 MB, write it, free it; twenty
# times, inside a script's ``run``. It prints the page faults the kernel had to serve.
SCRIPT = """
import ctypes, resource
from common.cli import run

def steps():
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
    size = 64 * 2**20
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        block = libc.malloc(size)
        ctypes.memset(block, 1, size)
        libc.free(block)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)

run(steps)
"""
PAGES = 64 * 2**20 // 4096  # 4 KiB pages in one block: 16,384


def page_faults(**changes) -> int:
    """The faults of :data:`SCRIPT` in a process with this environment, minus our variables, plus ``changes``."""
    env = {**untuned_environment(), **changes}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_a_script_keeps_freed_memory_and_stops_the_page_faults():
    """With glibc's defaults each 64 MB block is a fresh mmap, 16,384 zero-filled pages; a script
    run through ``common.cli.run`` keeps the first block's pages for the next."""
    assert page_faults() < 2 * PAGES
    assert page_faults(**{OPT_OUT: "system"}) > 0.9 * 20 * PAGES


def test_a_tunable_set_by_hand_wins():
    assert page_faults(MALLOC_ARENA_MAX="4") > 0.9 * 20 * PAGES  # glibc's mmap default, untouched by us
