"""Baselines seeded from published figures, for real models nobody has measured here yet.

A seeded case entry holds the published accuracy, its source, and a threshold `published - margin` (the margin
absorbs pipeline differences: resize, JPEG decoder, prompts). It is gated unpaired (there are no per-sample
outcomes) and without the protocol guard (there is no data hash); the first measured `--update-baselines` run
replaces it, without needing --allow-loosen. Sources (read from ../shared/reference, never copied):
- OpenCLIP zero-shot results, mlfoundations/open_clip docs/openclip_results.csv at commit 89fb801f;
- the ImageNet testbed, modestyachts/imagenet-testbed robustness_top1s.csv at commit 0170eec6 (Taori et al. 2020).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterable

from .baselines import OPENCLIP_SOURCE, SCHEMA_VERSION, TESTBED_SOURCE, baseline_path
from .files import write_json_atomic
from .models.base import ModelId
DEFAULT_MARGIN = 0.03

# case key of the imagenet benchmark -> column of each source (fractions in open_clip's file, percent in the
# testbed's)
OPENCLIP_COLUMNS = {"clean/clean": "ImageNet 1k", "natural/v2": "ImageNet v2", "natural/sketch": "ImageNet Sketch",
                    "natural/rendition": "ImageNet-R", "natural/imagenet-a": "ImageNet-A",
                    "natural/objectnet": "ObjectNet"}
TESTBED_COLUMNS = {"clean/clean": "val", "natural/v2": "imagenetv2-matched-frequency-format-val",
                   "natural/sketch": "imagenet-sketch", "natural/rendition": "imagenet-r",
                   "natural/imagenet-a": "imagenet-a", "natural/objectnet": "objectnet-1.0-beta",
                   "natural/vid-pm0": "imagenet-vid-robust_pm0", "natural/vid-pm10": "imagenet-vid-robust_pm10",
                   "natural/ytbb-pm0": "ytbb-robust_pm0", "natural/ytbb-pm10": "ytbb-robust_pm10"}


def seeded_entry(key: str, accuracy: float, source: str, margin: float) -> dict[str, Any]:
    category, name = key.split("/", 1)
    return {"seeded_from": source, "setting": {"category": category, "name": name},
            "accuracy": round(accuracy, 6), "threshold": round(max(0.0, accuracy - margin), 6),
            "policy": {"confidence": 0.99, "margin": margin}}


def _document(model: str, cases: dict[str, Any], source: str) -> dict[str, Any]:
    model_id = ModelId.parse(model)
    return {"schema_version": SCHEMA_VERSION, "line": model_id.line, "model": model,
            "provenance": {"seeded_from": source, "measured": False}, "cases": dict(sorted(cases.items()))}


def openclip_documents(path: Path, margin: float) -> Iterable[dict[str, Any]]:
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            cases = {key: seeded_entry(key, float(row[column]), OPENCLIP_SOURCE, margin)
                     for key, column in OPENCLIP_COLUMNS.items() if row.get(column)}
            if cases:
                yield _document(f"openclip:{row['name']}@{row['pretrained']}", cases, OPENCLIP_SOURCE)


def testbed_documents(path: Path, margin: float) -> Iterable[dict[str, Any]]:
    """Supervised torchvision baselines: testbed rows named as a torchvision architecture with IMAGENET1K_V1."""
    from torchvision.models import get_model_weights, list_models

    architectures = set(list_models())
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            name = row["model"]
            if name not in architectures or "IMAGENET1K_V1" not in get_model_weights(name).__members__:
                continue
            cases = {key: seeded_entry(key, float(row[column]) / 100, TESTBED_SOURCE, margin)
                     for key, column in TESTBED_COLUMNS.items() if row.get(column)}
            if cases:
                yield _document(f"torchvision:{name}@IMAGENET1K_V1", cases, TESTBED_SOURCE)


def write_seeded(documents: Iterable[dict[str, Any]], directory: Path) -> list[Path]:
    """Write seeded baselines, never over a file that exists (a measured baseline is never replaced by seeds)."""
    written = []
    for document in documents:
        path = baseline_path(directory, document["line"])
        if path.exists():
            continue
        write_json_atomic(path, document)
        written.append(path)
    return written
