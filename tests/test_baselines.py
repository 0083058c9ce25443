"""Baseline files: thresholds, validation of every field a hand edit could switch the gate off with, and commits
that write all files or none under the folder's lock."""
import dataclasses
import json

import numpy as np
import pytest

from case_records import corruption_record, measured
from harness.baselines import OPENCLIP_SOURCE, BaselineError, baseline_entry, check_model, read_baseline, threshold_for
from harness.config import GatePolicy
from harness.files import write_json_atomic as write_atomic


POLICY = GatePolicy(confidence=0.99, margin=0.01)


def write_baseline(path, entries):
    write_atomic(path, {"schema_version": 1, "line": "synth-clip", "model": "embedded:synth-clip",
                        "provenance": {}, "cases": entries})


def test_threshold_is_below_the_baseline_and_tightens_with_n():
    small, large = threshold_for(90, 100, POLICY), threshold_for(900, 1000, POLICY)
    assert small < large < 0.9
    assert threshold_for(0, 100, POLICY) == 0.0


def test_baseline_round_trip(tmp_path):
    path = tmp_path / "synth-clip.json"
    entry = baseline_entry(measured([True, False, True]), POLICY)
    write_baseline(path, {"clean/clean": entry})
    assert read_baseline(path)["cases"]["clean/clean"] == entry
    assert read_baseline(tmp_path / "absent.json") is None


def test_a_clean_entry_keyed_by_its_split_reads_as_the_clean_case(tmp_path):
    """Files recorded before the clean case was named `clean` (keys `clean/test`, `clean/val`) keep gating."""
    path = tmp_path / "synth-clip.json"
    entry = baseline_entry(measured([True, False, True]), POLICY)
    old = {**entry, "setting": {**entry["setting"], "name": "test"}}
    write_baseline(path, {"clean/test": old, "natural/v2": entry})
    cases = read_baseline(path)["cases"]
    assert list(cases) == ["clean/clean", "natural/v2"] and cases["clean/clean"] == entry
    write_baseline(path, {"clean/test": old, "clean/clean": entry})
    with pytest.raises(BaselineError, match="more than one clean entry"):
        read_baseline(path)


@pytest.mark.parametrize("mutate, message", [
    (lambda text: text[: len(text) // 2], "not valid JSON"),
    (lambda text: json.dumps({**json.loads(text), "cases": []}), "'cases' must be dict"),
    (lambda text: text.replace('"schema_version": 1', '"schema_version": 9'), "schema_version 9"),
    (lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "line"}), "missing key 'line'"),
])
def test_malformed_baseline_names_file_and_key(tmp_path, mutate, message):
    path = tmp_path / "synth-clip.json"
    write_baseline(path, {"clean/clean": baseline_entry(measured([True, False]), POLICY)})
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
    entry = baseline_entry(measured([True, False]), POLICY)
    entry[field] = value
    write_baseline(path, {"clean/clean": entry})
    with pytest.raises(BaselineError, match=message) as error:
        read_baseline(path)
    assert "cases['clean/clean']" in str(error.value)


def test_missing_case_key_is_named(tmp_path):
    path = tmp_path / "synth-clip.json"
    entry = baseline_entry(measured([True, False]), POLICY)
    del entry["threshold"]
    write_baseline(path, {"clean/clean": entry})
    with pytest.raises(BaselineError, match="missing key 'threshold'"):
        read_baseline(path)


def test_per_model_gate_overrides_are_validated(tmp_path):
    path = tmp_path / "synth-clip.json"
    write_atomic(path, {"schema_version": 1, "line": "synth-clip", "model": "embedded:synth-clip",
                        "provenance": {}, "cases": {}, "gate": {"adversarial": {"margin": 2}}})
    with pytest.raises(BaselineError, match=r"gate\['adversarial'\]: 'margin' must be a number in \[0, 0.1\]"):
        read_baseline(path)


@pytest.fixture
def corrupted_images():
    return np.random.default_rng(0).integers(0, 256, size=(20, 8, 8, 3), dtype=np.uint8)


def test_a_recipe_without_its_digests_is_a_baseline_error(tmp_path, corrupted_images):
    entry = baseline_entry(corruption_record([True] * 20, corrupted_images), POLICY)
    del entry["image_digests"]
    write_baseline(tmp_path / "synth-clip.json", {"synthetic/motion_blur-3": entry})
    with pytest.raises(BaselineError, match="pixel_recipe' without its partner"):
        read_baseline(tmp_path / "synth-clip.json")


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
    entry = baseline_entry(measured([True] * 488 + [False] * 12), POLICY)
    edit(entry)
    path = _written(tmp_path, measured_document({"clean/clean": entry}))
    with pytest.raises(BaselineError, match=message) as error:
        read_baseline(path)
    assert str(path) in str(error.value) and "cases['clean/clean']" in str(error.value)
    assert "restore the file from git" in str(error.value)


def test_a_seeded_figure_is_valid_only_for_a_family_with_published_figures(tmp_path):
    from harness.seeding import seeded_entry

    document = measured_document({"clean/clean": seeded_entry("clean/clean", 0.6, OPENCLIP_SOURCE, 0.03)})
    document["provenance"]["seeded_from"] = OPENCLIP_SOURCE
    with pytest.raises(BaselineError, match="figures only for openclip: models"):
        read_baseline(_written(tmp_path, document))
    document["model"] = "openclip:ViT-B-32@openai"
    assert read_baseline(_written(tmp_path, document)) is not None


def test_a_baseline_copied_from_another_line_is_refused(tmp_path):
    entry = baseline_entry(measured([True] * 9 + [False]), POLICY)
    copied = measured_document({"clean/clean": entry}, line="synth-clip", model="embedded:synth-clip")
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

    entry = baseline_entry(measured([True] * 90 + [False] * 10), GatePolicy(0.99, 0.1))
    check_policy(entry, "b.json", "clean/clean", GatePolicy(0.99, 0.1))
    with pytest.raises(BaselineError, match="recorded under policy.*restore the file from git"):
        check_policy(entry, "b.json", "clean/clean", POLICY)


def test_updated_documents_is_pure_and_reports_new_changed_and_loosened_entries(tmp_path):
    from harness.baselines import updated_documents
    from harness.config import build_config

    def recorded(bits, key="clean/clean"):
        return dataclasses.replace(measured(bits, key=key, line="synth-clip", model="embedded:synth-clip",
                                               category="clean"), model_provenance={"weights_sha256": "w"})

    policy_for = build_config(tmp_path, {}, {}).policy_for
    first = updated_documents([recorded([True] * 90 + [False] * 10)], {}, tmp_path, policy_for, {"seed": 0})
    [(path, document)] = first.documents.items()
    assert path == tmp_path / "synth-clip.json" and not path.exists()  # nothing written
    assert document["schema_version"] == 1 and document["provenance"] == {"model": {"weights_sha256": "w"}, "seed": 0}
    assert first.changes[0].startswith("synth-clip clean/clean: new, accuracy 0.9000") and not first.loosened
    worse = updated_documents([recorded([True] * 80 + [False] * 20)], {"synth-clip": document}, tmp_path,
                              policy_for, {"seed": 0})
    assert worse.loosened and worse.changes[0].startswith("synth-clip clean/clean: 0.9000 (n=100) -> 0.8000")
    same = updated_documents([recorded([True] * 90 + [False] * 10)], {"synth-clip": document}, tmp_path,
                             policy_for, {"seed": 0})
    assert same.changes == [] and same.loosened == []


def test_a_baseline_keeps_per_sample_values_and_refuses_values_that_disagree_with_its_bits(tmp_path):
    from harness.records import encode_values

    values = np.array([0.0, 0.01, np.inf])
    record = measured(np.isinf(values), per_sample_values=encode_values(values))
    entry = baseline_entry(record, POLICY)
    assert entry["per_sample_values"] == [0.0, 0.01, None]
    path = tmp_path / "synth-clip.json"
    write_baseline(path, {"clean/clean": entry})
    assert read_baseline(path)["cases"]["clean/clean"]["per_sample_values"] == [0.0, 0.01, None]
    write_baseline(path, {"clean/clean": {**entry, "per_sample_values": [0.0, None, None]}})
    with pytest.raises(BaselineError, match="disagree with 'per_sample'"):
        read_baseline(path)
    write_baseline(path, {"clean/clean": {**entry, "per_sample_values": [0.0, "x", None]}})
    with pytest.raises(BaselineError, match="per_sample_values'\\] is not valid"):
        read_baseline(path)


@pytest.mark.parametrize("values, message", [
    ([float("nan"), 0.01, None], "finite numbers >= 0"),
    ([-1.0, 0.01, None], "finite numbers >= 0"),
    ([0.0, 0.5, None], "exceed the search's maximum"),
    (None, "without 'per_sample_values'"),
])
def test_a_minimal_baseline_with_missing_or_impossible_values_is_refused(tmp_path, values, message):
    from harness.records import encode_values

    setting = {"category": "adversarial", "name": "minimal-pgd-linf-8/255", "minimal": {"eps": 8 / 255}}
    good = np.array([0.0, 0.01, np.inf])
    entry = baseline_entry(measured(np.isinf(good), setting=setting, per_sample_values=encode_values(good)), POLICY)
    if values is None:
        del entry["per_sample_values"]
    else:
        entry["per_sample_values"] = values
    path = tmp_path / "synth-clip.json"
    write_baseline(path, {"adversarial/minimal-pgd-linf-8/255": entry})
    with pytest.raises(BaselineError, match=message):
        read_baseline(path)


def test_re_recording_a_lower_median_minimal_perturbation_loosens_the_baseline(tmp_path):
    from harness.baselines import updated_documents
    from harness.records import encode_values

    def record(values):
        values = np.asarray(values, dtype=float)
        return measured(np.isinf(values), per_sample_values=encode_values(values), metrics={"precision": 0.001},
                        model_provenance={})

    previous = baseline_entry(record([0.02] * 10 + [np.inf] * 2), POLICY)
    old = {"synth-clip": {"cases": {"clean/clean": previous}, "provenance": {}}}
    update = updated_documents([record([0.01] * 10 + [np.inf] * 2)], old, tmp_path, lambda *_: POLICY, {})
    assert any("median minimal perturbation 0.02 -> 0.01" in line for line in update.loosened)
    same = updated_documents([record([0.02] * 10 + [np.inf] * 2)], old, tmp_path, lambda *_: POLICY, {})
    assert same.loosened == []
