"""`python -m harness.trends fit`: fit the effective-robustness trends and write them beside this module.

- imagenet_testbed.json, from the ImageNet testbed's figures in `--reference DIR` (required for this fit; CI
  keeps them beside the clone at ../shared/reference; read, never copied): per natural shift of the imagenet
  benchmark, a fit over the "Standard training" models on ImageNet `val` accuracy (what a run report holds) and, where the shift covers a class subset, on
  `val-on-<shift>-classes` (Taori et al.'s definition);
- synth_family.json, from harness/embedded/trend_family.json: per natural shift of the synth benchmark, a fit over
  the supervised SynthCNN family on `test` accuracy.

A model with an accuracy of exactly 0 or 100% on either axis is left out of that fit (its logit is infinite) and
named in the file's `excluded`; in the testbed this is ResNet-50 on ImageNet-A, the model ImageNet-A was
filtered against, which the testbed's own plots leave out too.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

from ..data.imagenet import ImageNetBenchmark
from ..data.synth import SynthBenchmark
from ..embedded import EMBEDDED_DIR
from ..files import sha256_file, write_json_atomic
from ..seeding import TESTBED_COLUMNS
from . import TREND_FILES, TRENDS_DIR, Trend, fit_logit_linear, trend_document

TESTBED_FILE, TYPES_FILE = "imagenet_testbed_top1s.csv", "imagenet_testbed_model_types.csv"
STANDARD = "Standard training"
# imagenet natural shift -> the testbed column of ImageNet accuracy restricted to the shift's classes
CLASS_SUBSET_COLUMNS = {"rendition": "val-on-imagenet-r-classes", "imagenet-a": "val-on-imagenet-a-classes",
                        "objectnet": "val-on-objectnet-classes", "vid-pm0": "val-on-vid-robust-classes",
                        "vid-pm10": "val-on-vid-robust-classes", "ytbb-pm0": "val-on-ytbb-robust-classes",
                        "ytbb-pm10": "val-on-ytbb-robust-classes"}


class SourceError(ValueError):
    """A reference file is missing or not as expected; the message names it."""


def fit_points(shift: str, x: str, y: str, points: Iterable[tuple[str, float, float]]
               ) -> tuple[Trend, list[str]]:
    """The trend of `points` (model, acc_x, acc_y as fractions) and the models left out (an accuracy of 0 or 1)."""
    kept, excluded = [], []
    for model, acc_x, acc_y in points:
        (kept if 0 < acc_x < 1 and 0 < acc_y < 1 else excluded).append((model, acc_x, acc_y))
    a, b, r2 = fit_logit_linear([p[1] for p in kept], [p[2] for p in kept])
    x_range = (min(p[1] for p in kept), max(p[1] for p in kept))
    return Trend(shift, x, y, round(a, 8), round(b, 8), len(kept), round(r2, 6),
                 (round(x_range[0], 6), round(x_range[1], 6))), [m for m, _, _ in excluded]


def testbed_source(reference: Path) -> dict[str, Any]:
    """Repository, file and commit of the testbed figures, as ../shared/reference/README.md names them."""
    readme = reference / "README.md"
    try:
        text = readme.read_text()
    except OSError as error:
        raise SourceError(f"{readme}: cannot read ({error})") from None
    row = next((line for line in text.splitlines() if line.startswith(f"| {TESTBED_FILE} ")), "")
    match = re.search(r"([\w.-]+/[\w.-]+), file (\S+) at commit ([0-9a-f]{7,40})", row)
    if not match:
        raise SourceError(f"{readme}: no '<owner/repo>, file <name> at commit <sha>' in the {TESTBED_FILE} row")
    repository, file, commit = match.groups()
    return {"summary": f"ImageNet testbed {repository} {file} @ {commit}, {STANDARD!r} models",
            "repository": repository, "file": file, "commit": commit, "model_types": f"{repository} src/models/"
            "model_types", "models": STANDARD, "paper": "Taori et al. 2020, Measuring Robustness to Natural "
            "Distribution Shifts in Image Classification",
            "read_from": {TESTBED_FILE: sha256_file(reference / TESTBED_FILE),
                          TYPES_FILE: sha256_file(reference / TYPES_FILE)}}


def testbed_rows(reference: Path) -> list[dict[str, str]]:
    """Rows of the testbed CSV for its "Standard training" models."""
    for name in (TESTBED_FILE, TYPES_FILE):
        if not (reference / name).is_file():
            raise SourceError(f"{reference / name} not found; pass --reference DIR (../shared/reference)")
    with open(reference / TYPES_FILE, newline="") as handle:
        types = {row["model"]: row["type"] for row in csv.DictReader(handle)}
    with open(reference / TESTBED_FILE, newline="") as handle:
        return [row for row in csv.DictReader(handle) if types.get(row["model"]) == STANDARD]


def fit_testbed(reference: Path) -> dict[str, Any]:
    rows = testbed_rows(reference)
    trends, excluded = [], {}

    def add(shift: str, x: str, y: str) -> None:
        points = [(r["model"], float(r[x]) / 100, float(r[y]) / 100) for r in rows if r.get(x) and r.get(y)]
        trend, left_out = fit_points(shift, x, y, points)
        trends.append(trend)
        if left_out:
            excluded[(shift, x)] = left_out

    for shift in ImageNetBenchmark.natural_shifts:
        y = TESTBED_COLUMNS[f"natural/{shift.name}"]
        add(shift.name, "val", y)
        if shift.name in CLASS_SUBSET_COLUMNS:
            add(shift.name, CLASS_SUBSET_COLUMNS[shift.name], y)
    return trend_document("imagenet", "val", testbed_source(reference), trends, excluded)


def family_accuracy(accuracy: dict[str, Any], split: str, k: int | None) -> float:
    return accuracy[split] if k is None else accuracy[split][f"pm{k}"]


def fit_family(family_file: Path) -> dict[str, Any]:
    try:
        family = json.loads(Path(family_file).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SourceError(f"{family_file}: cannot read the trend family ({error}); python -m "
                          f"tools.train_family writes it") from None
    models = family["models"]
    trends, excluded = [], {}
    for shift in SynthBenchmark.natural_shifts:
        points = [(m["name"], m["accuracy"][SynthBenchmark.clean_split],
                   family_accuracy(m["accuracy"], shift.split, shift.k)) for m in models]
        trend, left_out = fit_points(shift.name, SynthBenchmark.clean_split, f"{shift.split} {shift.metric}", points)
        trends.append(trend)
        if left_out:
            excluded[(shift.name, trend.x)] = left_out
    program = family.get("program", "harness/embedded/family.py")  # families written before the move say nothing
    source = {"summary": f"{len(models)} supervised SynthCNNs of {program}",
              "file": "harness/embedded/trend_family.json", "sha256": sha256_file(family_file),
              "description": family["description"], "renderer_version": family["renderer_version"],
              "train_size": family["train_size"], "device": family["device"], "torch_version": family["torch_version"],
              "models": [{"name": m["name"], "width": m["width"], "steps": m["steps"]} for m in models]}
    return trend_document("synth", SynthBenchmark.clean_split, source, trends, excluded)


FITTERS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "imagenet": lambda args: fit_testbed(args.reference),
    "synth": lambda args: fit_family(args.family),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.trends", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fit = commands.add_parser("fit", help="fit the trends and write their JSON files")
    fit.add_argument("--reference", type=Path, metavar="DIR",
                     help="folder of the ImageNet testbed CSVs and README.md (needed to fit imagenet)")
    fit.add_argument("--family", type=Path, default=EMBEDDED_DIR / "trend_family.json",
                     help="the embedded trend family's JSON")
    fit.add_argument("--benchmark", choices=sorted(FITTERS), action="append",
                     help="fit only these (default: all)")
    fit.add_argument("--out", type=Path, default=TRENDS_DIR, help="folder to write the JSON files to")
    args = parser.parse_args(argv)
    benchmarks = args.benchmark or sorted(FITTERS)
    if "imagenet" in benchmarks and args.reference is None:
        print("error: fitting imagenet needs --reference DIR, the folder of the ImageNet testbed CSVs and README.md "
              "(CI keeps it beside the clone at ../shared/reference); or pass --benchmark synth", file=sys.stderr)
        return 2
    for benchmark in benchmarks:
        try:
            document = FITTERS[benchmark](args)
        except SourceError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        path = args.out / TREND_FILES[benchmark]
        write_json_atomic(path, document)
        print(f"wrote {path}: {len(document['trends'])} trends ({document['source']['summary']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
