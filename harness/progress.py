"""Progress of long cases: a per-batch callback, rate-limited, written where it can be seen under xdist.

xdist workers have no terminal, so each process appends to its own file, `<report_dir>/progress/<worker>.log`
(`tail -f reports/progress/*.log` follows a parallel run); a run without workers also echoes to the terminal.
A case shorter than `interval_s` writes nothing; a longer one writes at most one line per `interval_s`, plus one
when it finishes.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

Progress = Callable[[int, int], None]  # (items done, items in the case), called after each batch


class ProgressLog:
    def __init__(self, path: Path, interval_s: float = 15.0, echo: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.path = Path(path)
        self.interval_s = interval_s
        self.echo = echo
        self.clock = clock

    def for_case(self, case_id: str) -> Progress:
        """The callback for one case; its clock starts now."""
        started = last = self.clock()

        def report(done: int, total: int) -> None:
            nonlocal last
            now = self.clock()
            finished = done >= total
            if now - last < self.interval_s and not (finished and now - started >= self.interval_s):
                return
            last = now
            self._write(f"{time.strftime('%H:%M:%S')} {case_id}: {done}/{total} "
                        f"({100 * done / max(total, 1):.0f}%) after {now - started:.0f} s"
                        + (", done" if finished else ""))
        return report

    def _write(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        if self.echo is not None:
            self.echo(line)
