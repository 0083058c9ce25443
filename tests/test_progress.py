"""Progress lines of long cases: rate-limited per case, one file per process."""
from harness.progress import ProgressLog


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_short_cases_write_nothing_and_long_ones_write_at_most_one_line_per_interval(tmp_path):
    clock, echoed = Clock(), []
    log = ProgressLog(tmp_path / "progress" / "gw0.log", interval_s=10, echo=echoed.append, clock=clock)
    quick = log.for_case("synth-clip-clean")
    for done in (250, 500):
        clock.now += 1
        quick(done, 500)
    assert not (tmp_path / "progress" / "gw0.log").exists()

    slow = log.for_case("synth-clip-fab-linf-0.5/255")
    for done in range(10, 101, 10):  # a batch every 4 s for 40 s
        clock.now += 4
        slow(done, 100)
    lines = (tmp_path / "progress" / "gw0.log").read_text().splitlines()
    assert len(lines) == 4 and lines == echoed  # at 12, 24, 36 s and when done at 40 s
    assert all("synth-clip-fab-linf-0.5/255" in line for line in lines)
    assert "30/100 (30%) after 12 s" in lines[0] and lines[-1].endswith("100/100 (100%) after 40 s, done")
