"""Huge pages for the processes that compute. glibc's malloc maps each block above its mmap threshold (at most
32 MiB) afresh and unmaps it when freed, so every batch's activations at 224 px (hundreds of MB) are faulted in
again, 4 KiB at a time: on the 2-core machine of README "Full scale" that cost as much system time as the
model's user time. glibc's `glibc.malloc.hugetlb=1` tunable (glibc 2.35 on) asks for transparent huge pages on
those blocks, 512 times fewer faults, while freed memory still goes back to the kernel, so a worker's resident
memory stays what it was. It changes where tensors live, never what they hold (torch aligns every CPU tensor to
64 bytes either way).

glibc reads tunables when a process starts, so the setting is made in the environment that xdist workers and
corruption pools start from; a process already running (a `-n 0` run) keeps its allocator.
"""
from __future__ import annotations

import dataclasses
import os
import platform
from pathlib import Path
from typing import MutableMapping

HUGE_PAGES = "glibc.malloc.hugetlb"
TUNABLES = "GLIBC_TUNABLES"
THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")


MINIMUM_GLIBC = (2, 35)
_LIBC = platform.libc_ver()

STARTED_WITH = os.environ.get(TUNABLES)  # read at import, as the plugin loads: what glibc saw at this start
_done = "huge_pages_for_children not called (huge_pages = false)"  # in this process, on os.environ
_UNSET = object()
_before: object = _UNSET  # GLIBC_TUNABLES before huge_pages_for_children changed this process's


@dataclasses.dataclass(frozen=True)
class AllocatorState:
    """The allocator tuning of a run, JSON-able through `as_record`: `own`, the GLIBC_TUNABLES this process
    started with (None: unset; in a `-n 0` run, the process that computes); `children`, those the processes it
    starts inherit (xdist workers, corruption pools); `transparent_hugepages`, the kernel's mode (`always`,
    `madvise`, `never`; None off Linux); `detail`, what `huge_pages_for_children` did or why it did nothing;
    `computed_with_huge_pages`, whether the processes that computed the run's cases got them (`huge_pages_in`
    of `children` for xdist workers started on this host, of `own` for a `-n 0` run)."""

    own: str | None
    children: str | None
    transparent_hugepages: str | None
    detail: str
    computed_with_huge_pages: bool

    def as_record(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def transparent_hugepage_mode(path: Path = THP_MODE) -> str | None:
    """The bracketed choice of the kernel's THP setting ("always [madvise] never" -> "madvise"); None without
    one."""
    try:
        text = path.read_text()
    except OSError:
        return None
    return text.split("[", 1)[1].split("]", 1)[0] if "[" in text else None


def huge_pages_for_children(environ: MutableMapping[str, str] | None = None, thp_mode: str | None = None) -> str:
    """Add `glibc.malloc.hugetlb=1` to GLIBC_TUNABLES in `environ` (default: this process's), so the processes
    started from it after this call use huge pages; nothing changes when GLIBC_TUNABLES already sets
    glibc.malloc.hugetlb (a user's choice), off glibc or before glibc 2.35 (no such tunable), or when the
    kernel's THP mode is not `madvise` (under `always` large blocks get huge pages already; under `never` or
    unknown, none can). Returns what was done, in words, which `current` reports when `environ` is this
    process's."""
    global _done, _before
    if environ is None and _before is _UNSET:  # a run nested in another keeps the outer one's original
        _before = os.environ.get(TUNABLES)
    detail = _tuned(os.environ if environ is None else environ,
                    transparent_hugepage_mode() if thp_mode is None else thp_mode)
    if environ is None:
        _done = detail
    return detail


def restore_children() -> None:
    """Put this process's GLIBC_TUNABLES back as huge_pages_for_children found it (at the end of a run, so that
    a run inside another process, such as `pytest.main`, leaves its environment as it was)."""
    global _before
    if _before is _UNSET:
        return
    if _before is None:
        os.environ.pop(TUNABLES, None)
    else:
        os.environ[TUNABLES] = _before
    _before = _UNSET


def _tuned(environ: MutableMapping[str, str], mode: str | None) -> str:
    entries = [entry for entry in environ.get(TUNABLES, "").split(":") if entry]
    if any(entry.split("=", 1)[0] == HUGE_PAGES for entry in entries):
        return f"{HUGE_PAGES} left as set in {TUNABLES}"
    libc, version = _LIBC
    if libc != "glibc":
        return "not glibc: the platform's allocator, unchanged"
    if not _glibc_reads_hugetlb():
        return f"glibc {version} predates {HUGE_PAGES} (2.35): unchanged"
    if mode == "always":
        return "transparent huge pages are always: large blocks use them already, unchanged"
    if mode != "madvise":
        return f"transparent huge pages are {mode or 'unavailable'}: unchanged"
    environ[TUNABLES] = ":".join(entries + [f"{HUGE_PAGES}=1"])
    return f"processes started from here use {HUGE_PAGES}=1 (glibc {version}, THP {mode})"


def _glibc_reads_hugetlb() -> bool:
    return _LIBC[0] == "glibc" and _release(_LIBC[1]) >= MINIMUM_GLIBC


def _release(version: str) -> tuple[int, ...]:
    """"2.35" -> (2, 35); an unreadable version sorts first."""
    try:
        return tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return (0,)


def huge_pages_in(tunables: str | None, mode: str | None) -> bool:
    """Whether a glibc process started with GLIBC_TUNABLES `tunables`, under the kernel's THP `mode`, gets huge
    pages for large blocks: always under THP `always`; under `madvise` when glibc (2.35 on) reads a
    glibc.malloc.hugetlb of 1 (the last entry counts, as for glibc); with 2 (hugetlbfs) when the kernel has
    huge pages reserved (vm.nr_hugepages)."""
    if mode == "always":
        return True
    values = [entry.split("=", 1)[1] for entry in (tunables or "").split(":") if entry.startswith(f"{HUGE_PAGES}=")]
    if not values or not _glibc_reads_hugetlb():
        return False
    return (values[-1] == "1" and mode == "madvise") or (values[-1] == "2" and _reserved_huge_pages() > 0)


def _reserved_huge_pages(path: Path = Path("/proc/sys/vm/nr_hugepages")) -> int:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return 0


def computing_with_huge_pages(workers: int, requested: bool) -> bool:
    """Whether the processes that would compute a run started from here get huge pages (`huge_pages_in`): a
    `-n 0` run is this process, workers (`workers` > 0) get this environment after huge_pages_for_children when
    `requested`. Workers xdist starts elsewhere (`--tx ssh=...`, `socket=...`) have their host's environment."""
    mode = transparent_hugepage_mode()
    if not workers:
        return huge_pages_in(STARTED_WITH, mode)
    environ = {TUNABLES: os.environ[TUNABLES]} if TUNABLES in os.environ else {}
    if requested:
        _tuned(environ, mode)
    return huge_pages_in(environ.get(TUNABLES), mode)


def current(workers: int) -> AllocatorState:
    """This process's allocator tuning and its children's, what huge_pages_for_children did here, and whether the
    processes that computed (`workers` local xdist workers; 0: this process) got huge pages (`huge_pages_in`)."""
    scoring, mode = STARTED_WITH if not workers else os.environ.get(TUNABLES), transparent_hugepage_mode()
    return AllocatorState(STARTED_WITH, os.environ.get(TUNABLES), mode, _done, huge_pages_in(scoring, mode))
