"""Effective and relative robustness: committed trends against fresh fits, the report's figures, the CLI."""
import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from harness.__main__ import main
from harness.records import CaseRecord, Status, encode_bits
from harness.report import build_report
from harness.trends import TRENDS_DIR, fit_logit_linear, load_trends
from harness.trends.__main__ import main as trends_main

REFERENCE = Path(__file__).resolve().parent.parent.parent / "shared" / "reference"
FAMILY = Path(__file__).resolve().parent.parent / "harness" / "embedded" / "trend_family.json"
needs_reference = pytest.mark.skipif(not (REFERENCE / "imagenet_testbed_top1s.csv").is_file(),
                                     reason=f"the ImageNet testbed figures are not at {REFERENCE} (CI has them "
                                            f"beside the clone at ../shared/reference)")

# Taori et al.'s pairs, written out here independently of harness/trends: shift setting -> (ID column, shift column)
TAORI_PAIRS = {
    "v2": ("val", "imagenetv2-matched-frequency-format-val"),
    "sketch": ("val", "imagenet-sketch"),
    "rendition": ("val-on-imagenet-r-classes", "imagenet-r"),
    "imagenet-a": ("val-on-imagenet-a-classes", "imagenet-a"),
    "objectnet": ("val-on-objectnet-classes", "objectnet-1.0-beta"),
    "vid-pm0": ("val-on-vid-robust-classes", "imagenet-vid-robust_pm0"),
    "vid-pm10": ("val-on-vid-robust-classes", "imagenet-vid-robust_pm10"),
    "ytbb-pm0": ("val-on-ytbb-robust-classes", "ytbb-robust_pm0"),
    "ytbb-pm10": ("val-on-ytbb-robust-classes", "ytbb-robust_pm10"),
}
CLIP_ROW = "vit_b_32_clip_zeroshot"  # zero-shot CLIP ViT-B/32 in the testbed


def read_testbed():
    with open(REFERENCE / "imagenet_testbed_model_types.csv", newline="") as handle:
        standard = {r["model"] for r in csv.DictReader(handle) if r["type"] == "Standard training"}
    with open(REFERENCE / "imagenet_testbed_top1s.csv", newline="") as handle:
        rows = {r["model"]: r for r in csv.DictReader(handle)}
    return [rows[m] for m in sorted(standard) if m in rows], rows[CLIP_ROW]


def fresh_effective_robustness(rows, model, x_column, y_column):
    """Percentage points, from a least-squares fit of logit(y) on logit(x) over `rows`, in percent as the CSV is."""
    pairs = np.array([(float(r[x_column]), float(r[y_column])) for r in rows if r[x_column] and r[y_column]])
    pairs = pairs[((pairs > 0) & (pairs < 100)).all(axis=1)] / 100
    lx, ly = np.log(pairs[:, 0] / (1 - pairs[:, 0])), np.log(pairs[:, 1] / (1 - pairs[:, 1]))
    slope, intercept = np.polyfit(lx, ly, 1)
    x, y = float(model[x_column]) / 100, float(model[y_column]) / 100
    return 100 * (y - 1 / (1 + np.exp(-(slope * np.log(x / (1 - x)) + intercept))))


@needs_reference
def test_clip_vit_b32_effective_robustness_matches_a_fresh_fit_within_0_1_points():
    rows, clip = read_testbed()
    trends = load_trends("imagenet")
    measured = {}
    for shift, (x_column, y_column) in TAORI_PAIRS.items():
        trend = trends.on_classes(shift)
        assert (trend.x, trend.y) == (x_column, y_column), shift
        ours = 100 * trend.effective_robustness(float(clip[x_column]) / 100, float(clip[y_column]) / 100)
        fresh = fresh_effective_robustness(rows, clip, x_column, y_column)
        measured[shift] = (round(ours, 4), round(float(fresh), 4))
        assert abs(ours - fresh) <= 0.1, (shift, ours, fresh)
    print("CLIP ViT-B/32 effective robustness (project, fresh fit), points:", measured)
    # the published picture: zero-shot CLIP sits far above the standard-training trend on every shift but V2
    assert all(ours > 5 for shift, (ours, _) in measured.items() if shift != "v2")


@needs_reference
def test_the_committed_trend_files_are_what_the_fit_script_writes(tmp_path):
    assert trends_main(["fit", f"--reference={REFERENCE}", f"--family={FAMILY}", f"--out={tmp_path}"]) == 0
    for name in ("imagenet_testbed.json", "synth_family.json"):
        assert json.loads((tmp_path / name).read_text()) == json.loads((TRENDS_DIR / name).read_text()), name
    testbed_document = json.loads((TRENDS_DIR / "imagenet_testbed.json").read_text())
    assert testbed_document["source"]["commit"] == "0170eec6"
    assert {t["n_models"] for t in testbed_document["trends"] if t["shift"] == "v2"} == {87}
    imagenet_a = next(t for t in testbed_document["trends"] if t["x"] == "val-on-imagenet-a-classes")
    assert imagenet_a["excluded"] == ["resnet50"]


def test_synth_trends_are_fitted_on_the_whole_family_and_cover_every_natural_shift():
    family = json.loads(FAMILY.read_text())["models"]
    trends = load_trends("synth")
    assert {t.shift for t in trends.trends} == {"v2", "sketch", "rendition", "hard", "pose", "vid-pm0", "vid-pm4",
                                               "ytbb-pm0", "ytbb-pm4"}
    rendition = trends.on_clean("rendition")
    a, b = np.polyfit(*[np.log(np.array(v) / (1 - np.array(v))) for v in
                        ([m["accuracy"]["test"] for m in family], [m["accuracy"]["rendition"] for m in family])], 1)
    assert rendition.n_models == len(family) == 21
    assert (rendition.a, rendition.b) == pytest.approx((a, b), abs=1e-6)
    vid = trends.on_clean("vid-pm4")
    a, b = np.polyfit(*[np.log(np.array(v) / (1 - np.array(v))) for v in
                        ([m["accuracy"]["test"] for m in family], [m["accuracy"]["vid"]["pm4"] for m in family])], 1)
    assert (vid.a, vid.b) == pytest.approx((a, b), abs=1e-6)


def test_fit_logit_linear_recovers_a_known_line_and_refuses_infinite_logits():
    x = np.array([0.3, 0.5, 0.7, 0.9])
    y = 1 / (1 + np.exp(-(0.8 * np.log(x / (1 - x)) - 0.4)))
    a, b, r2 = fit_logit_linear(x, y)
    assert (a, b, r2) == pytest.approx((0.8, -0.4, 1.0))
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        fit_logit_linear([0.3, 0.5, 1.0], [0.2, 0.4, 0.6])
    with pytest.raises(ValueError, match="at least 3"):
        fit_logit_linear([0.3, 0.5], [0.2, 0.4])


def record(model, category, name, accuracy, benchmark="synth"):
    n = 200
    bits = np.arange(n) < round(accuracy * n)
    return CaseRecord(id=f"{model.split(':')[1]}-{name}", key=f"{category}/{name}", model=model,
                      line=model.split(":")[1], benchmark=benchmark, category=category,
                      setting={"category": category, "name": name}, n=n, correct=int(bits.sum()),
                      accuracy=float(bits.mean()), per_sample=encode_bits(bits), data_sha256=f"{benchmark}-{name}",
                      seed=0, status=Status.PASSED, model_provenance={})


def report(cases, run_id="run1"):
    run = {"id": run_id, "started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T01:00:00+00:00",
           "complete": True}
    return build_report(run, cases)


def expected(trend, clean, shift):
    return shift - 1 / (1 + np.exp(-(trend.a * np.log(clean / (1 - clean)) + trend.b)))


def test_the_report_holds_effective_robustness_of_every_model_on_every_natural_shift():
    cases = [record("embedded:synth-clip", "clean", "test", 0.85), record("embedded:synth-clip", "natural", "v2", 0.8),
             record("embedded:synth-clip", "natural", "sketch", 0.2),
             record("embedded:synth-cnn", "natural", "v2", 0.9),  # no clean case: no effective robustness
             record("openclip:ViT-B-32@openai", "clean", "val", 0.63, benchmark="imagenet"),
             record("openclip:ViT-B-32@openai", "natural", "rendition", 0.69, benchmark="imagenet")]
    metrics = report(cases).metrics
    synth = metrics["embedded:synth-clip"]["effective_robustness"]
    assert set(synth) == {"v2", "sketch"}
    assert synth["sketch"]["effective_robustness"] == pytest.approx(
        expected(load_trends("synth").on_clean("sketch"), 0.85, 0.2), abs=1e-6)
    assert synth["v2"]["trend"]["x"] == "test" and synth["v2"]["id_accuracy"] == 0.85
    assert "embedded:synth-cnn" not in metrics
    rendition = metrics["openclip:ViT-B-32@openai"]["effective_robustness"]["rendition"]
    assert rendition["trend"]["x"] == "val"  # a report holds full-val accuracy, so the val-based testbed trend
    assert rendition["effective_robustness"] == pytest.approx(
        expected(load_trends("imagenet").on_clean("rendition"), 0.63, 0.69), abs=1e-6)


def test_relative_robustness_between_two_reports(tmp_path, capsys):
    model = "embedded:synth-clip"
    before = [record(model, "clean", "test", 0.85), record(model, "natural", "v2", 0.80),
              record(model, "natural", "sketch", 0.20)]
    after = [record(model, "clean", "test", 0.85), record(model, "natural", "v2", 0.80),
             record(model, "natural", "sketch", 0.45)]
    (tmp_path / "a.json").write_text(json.dumps(report(before).to_json()))
    (tmp_path / "b.json").write_text(json.dumps(report(after, "run2").to_json()))
    assert main(["relative-robustness", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    sketch = next(line.split() for line in out.splitlines() if line.strip().startswith("sketch"))
    gained = expected(load_trends("synth").on_clean("sketch"), 0.85, 0.45) - expected(
        load_trends("synth").on_clean("sketch"), 0.85, 0.20)
    assert sketch[3] == "+0.2500" and sketch[-1] == "robust" and sketch[-2] == "more"
    assert float(sketch[-3]) == pytest.approx(100 * gained, abs=0.01)
    v2 = next(line.split() for line in out.splitlines() if line.strip().startswith("v2"))
    assert v2[3] == "+0.0000" and v2[-1] == "same"
    assert main(["relative-robustness", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                 "--models", "embedded:synth-clip", "embedded:nope"]) == 2
    assert "model embedded:nope is not in report B" in capsys.readouterr().err


def test_a_shift_with_a_class_subset_uses_the_measured_subset_accuracy_and_its_trend():
    """Taori et al.'s definition: ImageNet-R against ImageNet val over ImageNet-R's 200 classes."""
    model = "openclip:ViT-B-32@openai"
    clean = record(model, "clean", "val", 0.63, benchmark="imagenet")
    shift = dataclasses.replace(record(model, "natural", "rendition", 0.69, benchmark="imagenet"),
                                metrics={"id_on_classes": {"split": "val-on-imagenet-r-classes", "n": 200,
                                                           "correct": 160, "accuracy": 0.8}})
    entry = report([clean, shift]).metrics[model]["effective_robustness"]["rendition"]
    trend = load_trends("imagenet").on("rendition", "val-on-imagenet-r-classes")
    assert entry["trend"]["x"] == "val-on-imagenet-r-classes" and entry["id_accuracy"] == 0.8
    assert entry["effective_robustness"] == pytest.approx(0.69 - trend.predict(0.8), abs=1e-6)
    without_clean = report([shift]).metrics[model]["effective_robustness"]["rendition"]
    assert without_clean["id_accuracy"] == 0.8  # the subset accuracy needs no clean case
