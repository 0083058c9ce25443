"""harness.allocator: processes started after huge_pages_for_children fault large tensors in with far fewer page
faults; a user's own choice is kept; nothing changes where nothing is to gain. The allocator is set when a
process starts, so each measurement runs in a fresh one."""
import json
import os
import subprocess
import sys

import pytest

from harness import allocator
from harness.allocator import HUGE_PAGES, TUNABLES, huge_pages_for_children, transparent_hugepage_mode

# Page faults to fill a 64 MiB torch tensor (above glibc's largest mmap threshold) after another was freed, 5 times.
_REFILL = """
import json, resource, torch
torch.ones(64 << 20, dtype=torch.uint8)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    torch.ones(64 << 20, dtype=torch.uint8)
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before))
"""


def _refill_faults(environ: dict[str, str]) -> int:
    done = subprocess.run([sys.executable, "-c", _REFILL], capture_output=True, text=True, check=True, env=environ)
    return json.loads(done.stdout)


def test_children_started_with_huge_pages_fault_large_tensors_in_far_less():
    mode = transparent_hugepage_mode()
    base = {name: value for name, value in os.environ.items() if name != TUNABLES}
    environ = dict(base)
    detail = huge_pages_for_children(environ)
    if mode != "madvise":
        pytest.skip(f"transparent huge pages are {mode}: glibc's default and the tunable fault alike ({detail})")
    assert environ[TUNABLES] == f"{HUGE_PAGES}=1" and "glibc" in detail
    default, huge = _refill_faults(base), _refill_faults(environ)
    assert default >= 5 * (64 << 20) // os.sysconf("SC_PAGE_SIZE") // 2  # 4 KiB pages, mapped afresh each time
    assert huge * 10 <= default


def test_a_users_own_choice_is_kept_and_other_tunables_are_extended():
    own = {TUNABLES: f"{HUGE_PAGES}=0"}
    assert huge_pages_for_children(own, "madvise") == f"{HUGE_PAGES} left as set in {TUNABLES}"
    assert own == {TUNABLES: f"{HUGE_PAGES}=0"}
    other = {TUNABLES: "glibc.malloc.arena_max=2"}
    huge_pages_for_children(other, "madvise")
    assert other[TUNABLES] == f"glibc.malloc.arena_max=2:{HUGE_PAGES}=1"


@pytest.mark.parametrize("mode", ["never", None])
def test_nothing_changes_without_transparent_huge_pages(monkeypatch, mode):
    monkeypatch.setattr(allocator, "transparent_hugepage_mode", lambda: mode)
    environ: dict[str, str] = {}
    assert "unchanged" in huge_pages_for_children(environ) and environ == {}


def test_the_kernel_mode_is_the_bracketed_choice(tmp_path):
    (tmp_path / "enabled").write_text("always [madvise] never\n")
    assert transparent_hugepage_mode(tmp_path / "enabled") == "madvise"
    assert transparent_hugepage_mode(tmp_path / "missing") is None


def test_the_run_records_this_process_and_its_children(monkeypatch):
    monkeypatch.setenv(TUNABLES, "restored afterwards")  # so that monkeypatch restores the variable's absence
    monkeypatch.delenv(TUNABLES)
    monkeypatch.setattr(allocator, "STARTED_WITH", None)
    monkeypatch.setattr(allocator, "_done", "not called")
    assert allocator.current().as_record() == {"own": None, "children": None,
                                               "transparent_hugepages": transparent_hugepage_mode(),
                                               "detail": "not called"}
    monkeypatch.setattr(allocator, "transparent_hugepage_mode", lambda: "madvise")
    detail = huge_pages_for_children()
    state = allocator.current()
    assert state.detail == detail and state.own is None and state.children == os.environ.get(TUNABLES)
