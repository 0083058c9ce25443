"""The committed baselines are valid, cover every default case, and can fail."""
from pathlib import Path

import pytest

from harness.baselines import is_seeded, read_baseline
from harness.cases import expand_cases
from harness.config import build_config, read_pyproject_table

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def default_cases():
    return expand_cases(build_config(ROOT, read_pyproject_table(ROOT / "pyproject.toml"), {}))


def test_every_baseline_file_is_valid():
    files = sorted((ROOT / "baselines").glob("*.json"))
    assert files
    for path in files:
        document = read_baseline(path)
        assert document["line"] == path.stem, f"{path}: line {document['line']!r} does not match the file name"


def test_every_default_case_has_a_measured_baseline_that_can_fail(default_cases):
    for case in default_cases:
        document = read_baseline(ROOT / "baselines" / f"{case.line}.json")
        assert document is not None, f"no baseline for {case.line}"
        entry = document["cases"].get(case.setting.key)
        assert entry is not None and not is_seeded(entry), f"{case.id}: no measured baseline"
        assert entry["setting"] == case.setting.as_dict(), f"{case.id}: baseline recorded under another setting"
        # With a threshold of 0 only the paired test can fail a case, and only if enough samples can flip
        # correct -> wrong for an exact McNemar p below 1 - confidence (0.5 ** 7 < 0.01): otherwise the setting
        # gates nothing and its budget or severity should change.
        # The canary fails on its ceiling and a minimal perturbation on its per-sample values, whatever the threshold.
        flips_needed = next(b for b in range(1, 64) if 0.5 ** b < 1 - entry["policy"]["confidence"])
        other_route = (getattr(case.setting.perturbation, "ceiling", None) is not None
                       or len([v for v in entry.get("per_sample_values", []) if v is not None]) >= flips_needed)
        assert entry["threshold"] > 0 or entry["correct"] >= flips_needed or other_route, (
            f"{case.id}: a gate that cannot fail")
