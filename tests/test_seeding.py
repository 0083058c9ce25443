import csv
import json
from pathlib import Path

import numpy as np
import pytest

from harness.__main__ import main
from harness.baselines import BaselineError, read_baseline
from harness.files import write_json_atomic as write_atomic
from case_records import case_record
from harness.records import encode_bits
from harness.gate import decide
from harness.seeding import OPENCLIP_SOURCE, seeded_entry

REFERENCE = Path(__file__).resolve().parent.parent.parent / "shared" / "reference"


def record(accuracy, n=1000):
    correct = round(accuracy * n)
    bits = np.arange(n) < correct
    return case_record(id="ViT-B-32-openai-clean", key="clean/clean", data_sha256="d", seed=0, n=n, correct=correct,
                       accuracy=correct / n, interval95=[0, 1], per_sample=encode_bits(bits))


def test_seeded_entry_gates_unpaired_at_published_minus_margin():
    entry = seeded_entry("clean/clean", 0.6332, OPENCLIP_SOURCE, 0.03)
    assert entry["threshold"] == pytest.approx(0.6032)
    assert decide(record(0.62), entry, "b.json", "cmd").status == "passed"
    failed = decide(record(0.58), entry, "b.json", "cmd")
    assert failed.status == "regressed" and "published, not measured here" in failed.message


def test_a_flip_rate_limit_cannot_be_checked_against_a_published_figure():
    """--max-flip-rate needs per-sample outcomes; a seeded entry has none, so the case is not comparable under it."""
    entry = seeded_entry("clean/clean", 0.6332, OPENCLIP_SOURCE, 0.03)
    decision = decide(record(0.62), entry, "b.json", "cmd", max_flip_rate=0.05)
    assert decision.status == "protocol-mismatch" and not decision.ok
    assert "--max-flip-rate 0.05 needs per-sample outcomes" in decision.message


def test_seeded_entries_are_validated(tmp_path):
    path = tmp_path / "x.json"
    entry = seeded_entry("clean/clean", 0.6, OPENCLIP_SOURCE, 0.03)
    provenance = {"seeded_from": OPENCLIP_SOURCE, "measured": False}
    write_atomic(path, {"schema_version": 1, "line": "x", "model": "openclip:x@y", "provenance": provenance,
                        "cases": {"clean/clean": entry}})
    assert read_baseline(path)["cases"]["clean/clean"] == entry
    entry["accuracy"] = 63.3  # a percent where a fraction belongs
    write_atomic(path, {"schema_version": 1, "line": "x", "model": "openclip:x@y", "provenance": provenance,
                        "cases": {"clean/clean": entry}})
    with pytest.raises(BaselineError, match="must be in"):
        read_baseline(path)


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/reference is not beside this checkout")
def test_seed_baselines_cover_every_openclip_row_and_keep_existing_files(tmp_path, capsys):
    existing = tmp_path / "ViT-B-32-openai.json"
    existing.write_text("{}")
    assert main(["seed-baselines", "--out", str(tmp_path), "--openclip-results", str(REFERENCE / "openclip_results.csv"),
                 "--testbed", str(REFERENCE / "imagenet_testbed_top1s.csv")]) == 0
    with open(REFERENCE / "openclip_results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        path = tmp_path / f"{row['name']}-{row['pretrained']}.json"
        assert path.is_file(), path
    assert existing.read_text() == "{}"
    b32 = read_baseline(tmp_path / "ViT-B-32-laion2b_s34b_b79k.json")
    published = next(r for r in rows if r["name"] == "ViT-B-32" and r["pretrained"] == "laion2b_s34b_b79k")
    assert b32["cases"]["clean/clean"]["accuracy"] == pytest.approx(float(published["ImageNet 1k"]))
    resnet = read_baseline(tmp_path / "resnet50-IMAGENET1K_V1.json")
    assert 0.70 < resnet["cases"]["clean/clean"]["accuracy"] < 0.80
    assert json.loads((tmp_path / "resnet50-IMAGENET1K_V1.json").read_text())["provenance"]["measured"] is False
