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
    if not detail.startswith("processes started from here"):
        pytest.skip(f"nothing to compare on this machine (THP {mode}): {detail}")
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


@pytest.mark.parametrize("mode", ["never", "always", None])
def test_nothing_changes_unless_huge_pages_are_opt_in(monkeypatch, mode):
    monkeypatch.setattr(allocator, "_LIBC", ("glibc", "2.39"))
    monkeypatch.setattr(allocator, "transparent_hugepage_mode", lambda: mode)
    environ: dict[str, str] = {}
    assert "unchanged" in huge_pages_for_children(environ) and environ == {}


@pytest.mark.parametrize("libc", [("glibc", "2.34"), ("glibc", "2.9"), ("glibc", ""), ("", "")])
def test_nothing_changes_where_glibc_lacks_the_tunable(monkeypatch, libc):
    monkeypatch.setattr(allocator, "_LIBC", libc)
    environ: dict[str, str] = {}
    assert "unchanged" in huge_pages_for_children(environ, "madvise") and environ == {}


def test_glibc_235_and_later_take_the_tunable(monkeypatch):
    for version in ("2.35", "2.39", "3.0"):
        monkeypatch.setattr(allocator, "_LIBC", ("glibc", version))
        environ: dict[str, str] = {}
        assert huge_pages_for_children(environ, "madvise").startswith("processes started from here use")
        assert environ == {TUNABLES: f"{HUGE_PAGES}=1"}


def test_the_kernel_mode_is_the_bracketed_choice(tmp_path):
    (tmp_path / "enabled").write_text("always [madvise] never\n")
    assert transparent_hugepage_mode(tmp_path / "enabled") == "madvise"
    assert transparent_hugepage_mode(tmp_path / "missing") is None


def test_the_run_records_this_process_and_its_children(monkeypatch):
    monkeypatch.setenv(TUNABLES, "restored afterwards")  # so that monkeypatch restores the variable's absence
    monkeypatch.delenv(TUNABLES)
    monkeypatch.setattr(allocator, "STARTED_WITH", None)
    monkeypatch.setattr(allocator, "_done", "not called")
    monkeypatch.setattr(allocator, "_before", allocator._UNSET)
    assert allocator.current(0).as_record() == {"own": None, "children": None,
                                                "transparent_hugepages": transparent_hugepage_mode(),
                                                "detail": "not called", "computed_with_huge_pages": False}
    monkeypatch.setattr(allocator, "transparent_hugepage_mode", lambda: "madvise")
    monkeypatch.setattr(allocator, "_LIBC", ("glibc", "2.39"))
    detail = huge_pages_for_children()
    assert allocator.current(2).as_record() == {"own": None, "children": f"{HUGE_PAGES}=1",
                                                "transparent_hugepages": "madvise", "detail": detail,
                                                "computed_with_huge_pages": True}
    assert not allocator.current(0).computed_with_huge_pages  # a -n 0 run computes with what it started with
    assert detail == f"processes started from here use {HUGE_PAGES}=1 (glibc 2.39, THP madvise)"


@pytest.mark.parametrize("before", [None, "glibc.malloc.arena_max=2"])
def test_the_environment_is_restored_at_the_end_of_a_run(monkeypatch, before):
    monkeypatch.setenv(TUNABLES, "restored afterwards")
    if before is None:
        monkeypatch.delenv(TUNABLES)
    else:
        monkeypatch.setenv(TUNABLES, before)
    monkeypatch.setattr(allocator, "_before", allocator._UNSET)
    monkeypatch.setattr(allocator, "_LIBC", ("glibc", "2.39"))
    monkeypatch.setattr(allocator, "transparent_hugepage_mode", lambda: "madvise")
    huge_pages_for_children()
    assert HUGE_PAGES in os.environ[TUNABLES]
    allocator.restore_children()
    assert os.environ.get(TUNABLES) == before
    allocator.restore_children()  # a second call, or one without huge_pages_for_children, changes nothing
    assert os.environ.get(TUNABLES) == before


def test_huge_pages_are_what_the_kernel_and_glibc_give_not_what_was_asked(monkeypatch):
    from harness.allocator import huge_pages_in

    monkeypatch.setattr(allocator, "_LIBC", ("glibc", "2.39"))
    monkeypatch.setattr(allocator, "_reserved_huge_pages", lambda: 0)
    assert huge_pages_in(f"{HUGE_PAGES}=1", "madvise") and huge_pages_in(None, "always")
    assert huge_pages_in(f"glibc.malloc.arena_max=2:{HUGE_PAGES}=0:{HUGE_PAGES}=1", "madvise")
    for tunables, mode in ((None, "madvise"), ("", "madvise"), (f"{HUGE_PAGES}=0", "madvise"),
                           (f"{HUGE_PAGES}=1:{HUGE_PAGES}=0", "madvise"), ("glibc.malloc.arena_max=1", "madvise"),
                           (f"x{HUGE_PAGES}=1", "madvise"), (f"{HUGE_PAGES}=1", "never"), (f"{HUGE_PAGES}=1", None),
                           (f"{HUGE_PAGES}=2", "madvise")):  # hugetlbfs without reserved pages: none
        assert not huge_pages_in(tunables, mode), (tunables, mode)
    monkeypatch.setattr(allocator, "_reserved_huge_pages", lambda: 64)
    assert huge_pages_in(f"{HUGE_PAGES}=2", "never")
    monkeypatch.setattr(allocator, "_LIBC", ("glibc", "2.34"))  # the tunable is unknown there, ignored
    assert not huge_pages_in(f"{HUGE_PAGES}=1", "madvise") and huge_pages_in(None, "always")


def test_a_plan_knows_what_the_processes_it_plans_for_would_compute_with(monkeypatch):
    from harness.allocator import computing_with_huge_pages

    monkeypatch.setattr(allocator, "_LIBC", ("glibc", "2.39"))
    monkeypatch.setattr(allocator, "transparent_hugepage_mode", lambda: "madvise")
    monkeypatch.setattr(allocator, "STARTED_WITH", None)
    monkeypatch.setenv(TUNABLES, "glibc.malloc.arena_max=2")
    assert computing_with_huge_pages(2, True) and not computing_with_huge_pages(2, False)
    assert not computing_with_huge_pages(0, True)  # this process, as it started
    assert os.environ[TUNABLES] == "glibc.malloc.arena_max=2"  # a plan changes nothing
    monkeypatch.setenv(TUNABLES, f"{HUGE_PAGES}=0")
    assert not computing_with_huge_pages(2, True)
    monkeypatch.setattr(allocator, "STARTED_WITH", f"{HUGE_PAGES}=1")
    assert computing_with_huge_pages(0, False)


def test_a_run_nested_in_another_restores_only_what_the_outer_one_found(monkeypatch):
    monkeypatch.setenv(TUNABLES, "restored afterwards")
    monkeypatch.delenv(TUNABLES)
    monkeypatch.setattr(allocator, "_before", allocator._UNSET)
    monkeypatch.setattr(allocator, "_LIBC", ("glibc", "2.39"))
    monkeypatch.setattr(allocator, "transparent_hugepage_mode", lambda: "madvise")
    huge_pages_for_children()  # the outer run
    huge_pages_for_children()  # a run inside it (pytest.main): its own call changes nothing
    assert os.environ[TUNABLES] == f"{HUGE_PAGES}=1"
    allocator.restore_children()
    assert TUNABLES not in os.environ
