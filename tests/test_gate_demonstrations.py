"""The gate doing its job on real checkpoints of the embedded CLIP, each gated against the committed baseline of
line synth-clip (baselines/synth-clip.json), as a release candidate would be:

- the same recipe under another training seed passes: seed-to-seed noise is not a regression (the recorded
  model itself passing is the suite's own run, on every case);
- the first cycle of the recipe alone (1,300 of 11,500 steps) fails, with readable regressions.

The candidates are tests/fixtures/synth-clip-{seed1,short}.safetensors, written by
`python -m tools.make_candidates` (their recipe and clean accuracy are in tests/fixtures/candidates.json).
The selection spans every category; it was fixed before the candidates were gated.
"""
import json
from pathlib import Path

from suite_helpers import ROOT, read_json, run_suite

FIXTURES = Path(__file__).parent / "fixtures"
SELECTION = ("synth-clip-clean or synth-clip-v2 or synth-clip-sketch or synth-clip-rendition or "
             "synth-clip-gaussian_noise-3 or synth-clip-contrast-3 or synth-clip-greyscale or "
             "synth-clip-fgsm-linf-1/255 or synth-clip-pgd-linf-1/255")
SELECTED = 9


def gate(model: str, tmp_path: Path):
    done = run_suite("-n", "0", "-k", SELECTION, f"--model={model}", f"--report-dir={tmp_path}")
    return done, read_json(tmp_path / "latest.json")


def committed_cases() -> dict:
    return json.loads((ROOT / "baselines" / "synth-clip.json").read_text())["cases"]


def test_same_recipe_under_another_seed_passes_the_gate(tmp_path):
    done, report = gate(f"embedded:synth-clip@{FIXTURES / 'synth-clip-seed1.safetensors'}", tmp_path)
    assert done.returncode == 0, done.stdout[-4000:]
    assert report["run"]["complete"] and len(report["cases"]) == SELECTED
    assert {case["line"] for case in report["cases"]} == {"synth-clip"}
    assert {case["status"] for case in report["cases"]} == {"passed"}


def test_under_trained_checkpoint_fails_with_readable_regressions(tmp_path):
    short = FIXTURES / "synth-clip-short.safetensors"
    done, report = gate(f"embedded:synth-clip@{short}", tmp_path)
    assert done.returncode == 1, done.stdout[-4000:]
    regressed = [case for case in report["cases"] if case["status"] == "regressed"]
    assert {case["id"] for case in regressed} >= {"synth-clip-clean", "synth-clip-v2"}
    baselines = committed_cases()
    for case in regressed:
        assert case["accuracy"] < case["threshold"] or case["mcnemar_p"] < 0.01
        assert case["baseline"] == baselines[case["key"]]["accuracy"]
        assert case["id"] in done.stdout and "regressed" in done.stdout
    assert report["summary"]["regressed"] == len(regressed)
    assert report["models"]["embedded:synth-clip@" + str(short)]["weights_sha256"] != \
        read_json(ROOT / "baselines" / "synth-clip.json")["provenance"]["model"]["weights_sha256"]
