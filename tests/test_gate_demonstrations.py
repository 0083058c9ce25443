"""The gate doing its job on real checkpoints of the embedded CLIP, each gated against the committed baseline of
line synth-clip (tests/fixtures/README.md says how the candidates were trained):

- the recorded model itself passes;
- the same recipe trained with another seed passes: retraining noise is not a regression;
- the same recipe trained for a sixth of the steps fails, with readable regressions.
"""
import pytest

from suite_helpers import ROOT, read_json, run_suite

FIXTURES = ROOT / "tests" / "fixtures"
SELECTION = " or ".join(f"synth-clip-{name}" for name in (
    "test", "v2", "sketch", "rendition", "pose", "vid-pm0", "contrast-3", "fog-3", "gaussian_noise-2",
    "pgd-linf-0.5/255"))


def gate(tmp_path, model):
    done = run_suite("--model", model, "-k", SELECTION, "-n", "2", f"--report-dir={tmp_path}")
    return done, read_json(tmp_path / "latest.json")


def test_recorded_model_passes(tmp_path):
    done, report = gate(tmp_path, "embedded:synth-clip")
    assert done.returncode == 0, done.stdout[-3000:]
    assert report["summary"]["passed"] == 10


def test_same_recipe_other_seed_passes(tmp_path):
    done, report = gate(tmp_path, f"embedded:synth-clip@{FIXTURES / 'synth-clip-seed1.safetensors'}")
    assert done.returncode == 0, done.stdout[-3000:]
    assert report["summary"]["passed"] == 10
    assert "differ from the baseline's" in done.stdout  # new weights are shown, not refused
    assert any(case["flips"]["to_wrong"] > 0 for case in report["cases"])  # it really is another model


def test_undertrained_checkpoint_fails_with_readable_regressions(tmp_path):
    done, report = gate(tmp_path, f"embedded:synth-clip@{FIXTURES / 'synth-clip-short.safetensors'}")
    assert done.returncode == 1
    regressed = [case for case in report["cases"] if case["status"] == "regressed"]
    assert len(regressed) >= 5
    assert "synth-clip-test" in {case["id"] for case in regressed}
    assert "REGRESSION (accuracy below threshold" in done.stdout
    summary = done.stdout.split("robustness-gate summary")[1]
    first_row = summary.splitlines()[3]
    assert first_row.rstrip().endswith("regressed"), "regressions are listed first"
