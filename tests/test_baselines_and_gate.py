import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.baselines import (BaselineError, baseline_entry, decode_bits, encode_bits, read_baseline,
                               threshold_for, write_atomic)
from harness.config import GatePolicy
from harness.gate import decide

POLICY = GatePolicy(confidence=0.99, margin=0.01)


def make_record(correct_bits, **overrides):
    bits = np.asarray(correct_bits, dtype=bool)
    record = {"id": "synth-clip-test", "key": "clean/test", "setting": {"category": "clean", "samples": len(bits)},
              "data_sha256": "abc", "seed": 0, "n": int(bits.size), "correct": int(bits.sum()),
              "accuracy": float(bits.mean()), "interval95": [0.0, 1.0], "per_sample": encode_bits(bits)}
    record.update(overrides)
    return record


def write_baseline(path, entries):
    write_atomic(path, {"schema_version": 1, "line": "synth-clip", "model": "embedded:synth-clip",
                        "provenance": {}, "cases": entries})


@given(st.lists(st.booleans(), max_size=300))
def test_per_sample_bits_round_trip(values):
    bits = np.array(values, dtype=bool)
    assert np.array_equal(decode_bits(encode_bits(bits), bits.size), bits)


def test_threshold_is_below_the_baseline_and_tightens_with_n():
    small, large = threshold_for(90, 100, POLICY), threshold_for(900, 1000, POLICY)
    assert small < large < 0.9
    assert threshold_for(0, 100, POLICY) == 0.0


def test_gate_passes_equal_and_fails_a_clear_regression():
    baseline = baseline_entry(make_record([True] * 90 + [False] * 10), POLICY)
    same = decide(make_record([True] * 90 + [False] * 10), baseline, "baselines/x.json", "cmd")
    worse = decide(make_record([True] * 70 + [False] * 30), baseline, "baselines/x.json", "cmd")
    assert same.status == "passed" and same.ok
    assert worse.status == "regressed" and not worse.ok
    assert "0.7000" in worse.message and "threshold" in worse.message


def test_gate_explains_a_missing_baseline():
    decision = decide(make_record([True] * 10), None, "baselines/synth-clip.json",
                      "pytest --model embedded:synth-clip --update-baselines")
    assert decision.status == "no-baseline" and not decision.ok
    assert "--update-baselines" in decision.message and "baselines/synth-clip.json" in decision.message


def test_gate_refuses_to_compare_unlike_protocols():
    baseline = baseline_entry(make_record([True] * 10), POLICY)
    decision = decide(make_record([True] * 10, seed=1, data_sha256="other"), baseline, "b.json", "cmd")
    assert decision.status == "protocol-mismatch"
    assert "seed: baseline 0, now 1" in decision.message and "data_sha256" in decision.message


def test_baseline_round_trip(tmp_path):
    path = tmp_path / "synth-clip.json"
    entry = baseline_entry(make_record([True, False, True]), POLICY)
    write_baseline(path, {"clean/test": entry})
    assert read_baseline(path)["cases"]["clean/test"] == entry
    assert read_baseline(tmp_path / "absent.json") is None


@pytest.mark.parametrize("mutate, message", [
    (lambda text: text[: len(text) // 2], "not valid JSON"),
    (lambda text: json.dumps({**json.loads(text), "cases": []}), "'cases' must be dict"),
    (lambda text: text.replace('"schema_version": 1', '"schema_version": 9'), "schema_version 9"),
    (lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "line"}), "missing key 'line'"),
])
def test_malformed_baseline_names_file_and_key(tmp_path, mutate, message):
    path = tmp_path / "synth-clip.json"
    write_baseline(path, {"clean/test": baseline_entry(make_record([True, False]), POLICY)})
    path.write_text(mutate(path.read_text()))
    with pytest.raises(BaselineError, match=message) as error:
        read_baseline(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("field, value, message", [
    ("n", "10", r"\['n'\] must be int"),
    ("correct", 99, "0 <= correct <= n"),
    ("threshold", 1.5, "must be in"),
    ("per_sample", "!!", "not a valid encoding"),
])
def test_malformed_case_entries_are_named(tmp_path, field, value, message):
    path = tmp_path / "synth-clip.json"
    entry = baseline_entry(make_record([True, False]), POLICY)
    entry[field] = value
    write_baseline(path, {"clean/test": entry})
    with pytest.raises(BaselineError, match=message) as error:
        read_baseline(path)
    assert "cases['clean/test']" in str(error.value)


def test_missing_case_key_is_named(tmp_path):
    path = tmp_path / "synth-clip.json"
    entry = baseline_entry(make_record([True, False]), POLICY)
    del entry["threshold"]
    write_baseline(path, {"clean/test": entry})
    with pytest.raises(BaselineError, match="missing key 'threshold'"):
        read_baseline(path)


def test_paired_gate_tolerates_churn_but_catches_a_consistent_small_drop():
    n = 1000
    base = np.zeros(n, dtype=bool)
    base[:900] = True
    baseline = baseline_entry(make_record(base), POLICY)
    churn = base.copy()
    churn[:40] = False          # 40 correct -> wrong ...
    churn[900:935] = True       # ... and 35 wrong -> correct: noise of a retrained model
    noisy = decide(make_record(churn), baseline, "b.json", "cmd")
    assert noisy.status == "passed", noisy.message
    assert noisy.flips == {"to_wrong": 40, "to_right": 35} and noisy.p_value > 0.3
    drop = base.copy()
    drop[:25] = False           # 25 correct -> wrong, none back: 2.5 points, above the Wilson threshold
    worse = decide(make_record(drop), baseline, "b.json", "cmd")
    assert make_record(drop)["accuracy"] > baseline["threshold"]
    assert worse.status == "regressed" and "significant" in worse.message and worse.p_value < 1e-6


def test_max_flip_rate_gate():
    base = np.array([True] * 50 + [False] * 50)
    swapped = ~base
    baseline = baseline_entry(make_record(base), POLICY)
    assert decide(make_record(swapped), baseline, "b.json", "cmd").status == "passed"
    limited = decide(make_record(swapped), baseline, "b.json", "cmd", max_flip_rate=0.1)
    assert limited.status == "regressed" and "flip rate 1.0000 > --max-flip-rate 0.1" in limited.message


def test_per_model_gate_overrides_are_validated(tmp_path):
    path = tmp_path / "synth-clip.json"
    write_atomic(path, {"schema_version": 1, "line": "synth-clip", "model": "embedded:synth-clip",
                        "provenance": {}, "cases": {}, "gate": {"adversarial": {"margin": 2}}})
    with pytest.raises(BaselineError, match=r"gate\['adversarial'\]: 'margin' must be a number in \[0, 1\)"):
        read_baseline(path)


def corruption_record(bits, images, libraries=None, **overrides):
    """A library-corruption record: its data carries the pixel recipe and per-image digests."""
    from harness.pixels import image_digests

    recipe = {"clean_sha256": "clean", "corruption": "motion_blur", "severity": 3, "seed": 0,
              "libraries": libraries or {"imagecorruptions": "1.1.5", "numpy": "2.4.6", "scipy": "1.17.1"}}
    data = {"sha256": "clean", "perturbed_sha256": "x", "pixel_recipe": recipe, "image_digests": image_digests(images)}
    return make_record(bits, data=data, **overrides)


@pytest.fixture
def corrupted_images():
    return np.random.default_rng(0).integers(0, 256, size=(20, 8, 8, 3), dtype=np.uint8)


def test_a_library_version_that_moved_is_named_with_both_versions(corrupted_images):
    bits = [True] * 15 + [False] * 5
    baseline = baseline_entry(corruption_record(bits, corrupted_images), POLICY)
    assert baseline["pixel_recipe"]["libraries"]["scipy"] == "1.17.1" and "image_digests" in baseline
    moved = corruption_record(bits, corrupted_images,
                              {"imagecorruptions": "1.1.5", "numpy": "2.4.6", "scipy": "1.18.0"})
    decision = decide(moved, baseline, "baselines/x.json", "cmd")
    assert decision.status == "protocol-mismatch"
    assert "library scipy: baseline 1.17.1, now 1.18.0" in decision.message
    assert "numpy" not in decision.message.split("not comparable:")[1].split(".")[0]
    assert "make install" in decision.message and "requirements.lock" in decision.message


def test_bytes_that_drift_under_the_same_recipe_are_gated_and_shown(corrupted_images):
    bits = [True] * 15 + [False] * 5
    baseline = baseline_entry(corruption_record(bits, corrupted_images), POLICY)
    drifted = corrupted_images.copy()
    drifted[[3, 11], 0, 0, 0] ^= 1
    same = decide(corruption_record(bits, drifted, data_sha256="drifted"), baseline, "b.json", "cmd")
    assert same.status == "passed" and same.pixel_drift.images_differing == 2
    assert "pixel drift under the same recipe: 2 of 20 images differ in bytes" in same.message
    worse = decide(corruption_record([False] * 20, drifted, data_sha256="drifted"), baseline, "b.json", "cmd")
    assert worse.status == "regressed" and worse.pixel_drift is not None


def test_project_computed_pixels_that_differ_are_refused_with_the_right_fix():
    baseline = baseline_entry(make_record([True] * 10), POLICY)
    decision = decide(make_record([True] * 10, data_sha256="other"), baseline, "b.json", "cmd")
    assert decision.status == "protocol-mismatch" and "computed exactly on every CPU" in decision.message


def test_a_recipe_without_its_digests_is_a_baseline_error(tmp_path, corrupted_images):
    entry = baseline_entry(corruption_record([True] * 20, corrupted_images), POLICY)
    del entry["image_digests"]
    write_baseline(tmp_path / "synth-clip.json", {"synthetic/motion_blur-3": entry})
    with pytest.raises(BaselineError, match="pixel_recipe' without its partner"):
        read_baseline(tmp_path / "synth-clip.json")


def test_atomic_writes_keep_the_file_mode(tmp_path):
    path = tmp_path / "b.json"
    write_atomic(path, {"a": 1})
    assert path.stat().st_mode & 0o777 == 0o666 & ~current_umask()
    path.chmod(0o640)
    write_atomic(path, {"a": 2})
    assert path.stat().st_mode & 0o777 == 0o640 and json.loads(path.read_text()) == {"a": 2}


def current_umask() -> int:
    import os

    umask = os.umask(0)
    os.umask(umask)
    return umask
