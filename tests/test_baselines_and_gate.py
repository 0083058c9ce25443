import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from case_records import case_record
from harness.baselines import OPENCLIP_SOURCE, BaselineError, baseline_entry, check_model, read_baseline, threshold_for
from harness.config import GatePolicy
from harness.files import write_json_atomic as write_atomic
from harness.gate import decide
from harness.records import decode_bits, encode_bits

POLICY = GatePolicy(confidence=0.99, margin=0.01)


def make_record(correct_bits, **overrides):
    bits = np.asarray(correct_bits, dtype=bool)
    record = {"id": "synth-clip-test", "key": "clean/test", "setting": {"category": "clean", "samples": len(bits)},
              "data_sha256": "abc", "seed": 0, "n": int(bits.size), "correct": int(bits.sum()),
              "accuracy": float(bits.mean()), "interval95": [0.0, 1.0], "per_sample": encode_bits(bits)}
    record.update(overrides)
    return case_record(**record)


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
    ("threshold", 1.5, "its recorded policy"),
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
    assert make_record(drop).accuracy > baseline["threshold"]
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
    with pytest.raises(BaselineError, match=r"gate\['adversarial'\]: 'margin' must be a number in \[0, 0.1\]"):
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


def measured_document(entries, line="synth-cnn", model="embedded:synth-cnn"):
    return {"schema_version": 1, "line": line, "model": model,
            "provenance": {"model": {"architecture": "harness.embedded.cnn.SynthCNN"}}, "cases": entries}


def _written(tmp_path, document, name="synth-cnn.json"):
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize("edit, message", [
    # finding 3: a measured entry marked seeded, threshold 0
    (lambda e: e.update(seeded_from="x", threshold=0), "names no published source"),
    # ... with a real source's name: the embedded family has no published figures
    (lambda e: e.update(seeded_from=OPENCLIP_SOURCE, threshold=0), "provenance names no such source"),
    # finding 4: the margin widened until the paired test cannot fail
    (lambda e: e.update(policy={"confidence": 0.99, "margin": 0.99}, threshold=0), r"'margin' must be a number"),
    # an accuracy that correct / n contradicts
    (lambda e: e.update(accuracy=0.1), "correct / n is 488/500"),
    # a threshold lowered by hand under an unchanged policy
    (lambda e: e.update(threshold=0.5), "its recorded policy"),
])
def test_hand_edits_that_would_switch_the_gate_off_are_refused(tmp_path, edit, message):
    entry = baseline_entry(make_record([True] * 488 + [False] * 12), POLICY)
    edit(entry)
    path = _written(tmp_path, measured_document({"clean/test": entry}))
    with pytest.raises(BaselineError, match=message) as error:
        read_baseline(path)
    assert str(path) in str(error.value) and "cases['clean/test']" in str(error.value)
    assert "restore the file from git" in str(error.value)


def test_a_seeded_figure_is_valid_only_for_a_family_with_published_figures(tmp_path):
    from harness.seeding import seeded_entry

    document = measured_document({"clean/val": seeded_entry("clean/val", 0.6, OPENCLIP_SOURCE, 0.03)})
    document["provenance"]["seeded_from"] = OPENCLIP_SOURCE
    with pytest.raises(BaselineError, match="figures only for openclip: models"):
        read_baseline(_written(tmp_path, document))
    document["model"] = "openclip:ViT-B-32@openai"
    assert read_baseline(_written(tmp_path, document)) is not None


def test_a_baseline_copied_from_another_line_is_refused(tmp_path):
    entry = baseline_entry(make_record([True] * 9 + [False]), POLICY)
    copied = measured_document({"clean/test": entry}, line="synth-clip", model="embedded:synth-clip")
    with pytest.raises(BaselineError, match="baseline of line 'synth-cnn'"):
        read_baseline(_written(tmp_path, copied))
    copied["line"] = "synth-cnn"  # line edited to match: the architecture still tells
    copied["provenance"]["model"]["architecture"] = "open_clip:synth-clip"
    path = _written(tmp_path, copied)
    with pytest.raises(BaselineError, match="recorded for embedded:synth-clip"):
        check_model(read_baseline(path), path, "embedded:synth-cnn",
                    {"architecture": "harness.embedded.cnn.SynthCNN"})


def test_hostile_json_is_a_clear_error_naming_the_file(tmp_path, monkeypatch):
    deep = tmp_path / "synth-cnn.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(BaselineError, match="nested too deeply") as error:
        read_baseline(deep)
    assert str(deep) in str(error.value) and "delete it and record the line again" in str(error.value)
    monkeypatch.setattr("harness.baselines.MAX_BYTES", 1000)
    deep.write_text(json.dumps({"cases": {}, "pad": "x" * 2000}))
    with pytest.raises(BaselineError, match="more than any baseline holds"):
        read_baseline(deep)


KILLER = """
import os, signal, sys
from pathlib import Path
from harness import baselines

directory, kill_at = Path(sys.argv[1]), int(sys.argv[2])
calls = 0
real_replace = os.replace

def replace(src, dst):
    global calls
    calls += 1
    if calls == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(src, dst)

os.replace = replace
with baselines.baselines_lock(directory):
    baselines.commit_documents(directory, {directory / f"{name}.json": {"run": "new", "name": name}
                                           for name in ("a", "b", "c")})
"""


@pytest.mark.parametrize("kill_at", [1, 2, 3, 4])
def test_a_commit_killed_at_any_rename_leaves_all_files_or_none(tmp_path, kill_at):
    """os.replace runs once for the journal, then once per file: SIGKILL before each of them in turn."""
    import subprocess
    import sys

    for name in ("a", "b", "c"):
        write_atomic(tmp_path / f"{name}.json", {"run": "old", "name": name})
    done = subprocess.run([sys.executable, "-c", KILLER, str(tmp_path), str(kill_at)], capture_output=True)
    assert done.returncode == -9
    from harness.baselines import baselines_lock

    with baselines_lock(tmp_path):  # the next writer (or gating run) finishes or drops the commit first
        runs = {json.loads((tmp_path / f"{name}.json").read_text())["run"] for name in ("a", "b", "c")}
    assert runs == ({"old"} if kill_at == 1 else {"new"})
    assert not list(tmp_path.glob(".*staged")) and not (tmp_path / ".commit.json").exists()


def test_a_symlinked_baseline_is_refused_with_the_fix(tmp_path):
    from harness.baselines import baselines_lock, commit_documents

    (tmp_path / "real.json").write_text("{}")
    (tmp_path / "a.json").symlink_to(tmp_path / "real.json")
    with baselines_lock(tmp_path), pytest.raises(BaselineError, match="symbolic link.*point --baselines-dir"):
        commit_documents(tmp_path, {tmp_path / "a.json": {"x": 1}})
    assert (tmp_path / "a.json").is_symlink()


def test_a_held_lock_fails_loudly_and_writes_nothing(tmp_path):
    from harness.baselines import baselines_lock

    with baselines_lock(tmp_path):
        with pytest.raises(BaselineError, match="another --update-baselines"):
            with baselines_lock(tmp_path, timeout=0.1):
                pass


def test_a_policy_edited_into_one_entry_is_refused():
    from harness.baselines import check_policy

    entry = baseline_entry(make_record([True] * 90 + [False] * 10), GatePolicy(0.99, 0.1))
    check_policy(entry, "b.json", "clean/test", GatePolicy(0.99, 0.1))
    with pytest.raises(BaselineError, match="recorded under policy.*restore the file from git"):
        check_policy(entry, "b.json", "clean/test", POLICY)


def test_updated_documents_is_pure_and_reports_new_changed_and_loosened_entries(tmp_path):
    from harness.baselines import updated_documents
    from harness.config import build_config

    def recorded(bits, key="clean/test"):
        return dataclasses.replace(make_record(bits, key=key, line="synth-clip", model="embedded:synth-clip",
                                               category="clean"), model_provenance={"weights_sha256": "w"})

    policy_for = build_config(tmp_path, {}, {}).policy_for
    first = updated_documents([recorded([True] * 90 + [False] * 10)], {}, tmp_path, policy_for, {"seed": 0})
    [(path, document)] = first.documents.items()
    assert path == tmp_path / "synth-clip.json" and not path.exists()  # nothing written
    assert document["schema_version"] == 1 and document["provenance"] == {"model": {"weights_sha256": "w"}, "seed": 0}
    assert first.changes[0].startswith("synth-clip clean/test: new, accuracy 0.9000") and not first.loosened
    worse = updated_documents([recorded([True] * 80 + [False] * 20)], {"synth-clip": document}, tmp_path,
                              policy_for, {"seed": 0})
    assert worse.loosened and worse.changes[0].startswith("synth-clip clean/test: 0.9000 (n=100) -> 0.8000")
    same = updated_documents([recorded([True] * 90 + [False] * 10)], {"synth-clip": document}, tmp_path,
                             policy_for, {"seed": 0})
    assert same.changes == [] and same.loosened == []
