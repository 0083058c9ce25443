"""Data-overlap analysis, as in the CLIP paper (Radford et al. 2021, section 5): which evaluation images have
near-duplicates in a pretraining corpus, and whether a model scores better on them than on the clean rest.

    python -m harness overlap --eval synth:test --corpus DIR_OR_SHARD ... [--report REPORT.json] [-o OUT.json]

The evaluation set is a benchmark split (`synth:test`, `imagenet:val` with --data-root), loaded as the suite loads
it. The corpus is image folders (searched recursively) and webdataset shards (.tar, .tar.gz, .tgz; every member
with an image suffix is an image). Near-duplicates are found with the training-free embedding of
harness/neardup.py at a per-benchmark similarity threshold (THRESHOLDS); the evaluation set splits into
`overlap` (a corpus image scores at or above it) and `clean`.

Accuracy on all versus clean comes from a run report (--report): the per-sample correctness of each case measured
on this split without perturbation. Its samples are the first `n` of the split in the loader's order, checked by
the data hash the case recorded, so the evaluation set is loaded with that model's preprocessing. The one-sided
binomial test asks whether accuracy on the overlap exceeds accuracy on the clean subset (the CLIP paper's null
hypothesis: overlap accuracy = clean accuracy).
"""
from __future__ import annotations

import dataclasses
import io
import tarfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
from PIL import Image
from scipy.stats import binomtest

from . import neardup
from .cache import ArrayCache
from .data import DataMissingError, get_benchmark
from .data.base import Preprocess
from .records import CaseRecord, Report

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
# Similarity at or above which an evaluation image counts as a near-duplicate (see README, "Data overlap"):
# synth was calibrated on rendered images, a 30,000-image distinct corpus and planted duplicates; imagenet has had
# no calibration here (no ImageNet data on this machine) and starts from the same value.
THRESHOLDS = {"synth": 0.975, "imagenet": 0.975}
DEFAULT_PREPROCESS = {"synth": Preprocess(64, 64), "imagenet": Preprocess(224, 224, "bicubic")}


class OverlapError(ValueError):
    """The evaluation set, corpus or report cannot be used as asked; the message says why."""


def corpus_images(sources: Sequence[Path]) -> Iterator[tuple[str, Image.Image | None]]:
    """(name, image) for every image of the sources, in a stable order; the image is None when it does not
    decode. A folder's images are named by path, a shard's as `<shard>:<member>`."""
    for source in sources:
        source = Path(source)
        if source.is_dir():
            for path in sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
                yield str(path), _decode(path.read_bytes())
        elif source.is_file() and source.name.lower().endswith(SHARD_SUFFIXES):
            try:
                with tarfile.open(source, "r:*") as shard:
                    for member in shard:
                        if member.isfile() and member.name.lower().endswith(IMAGE_SUFFIXES):
                            yield f"{source}:{member.name}", _decode(shard.extractfile(member).read())
            except tarfile.TarError as error:
                raise OverlapError(f"{source}: not a readable tar shard ({error})") from None
        else:
            raise OverlapError(f"corpus source {source} is neither a folder nor a .tar/.tar.gz/.tgz shard")


def _decode(data: bytes) -> Image.Image | None:
    try:
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", (4 * neardup.WORK, 4 * neardup.WORK))
        return image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


@dataclasses.dataclass
class Corpus:
    names: list[str]
    index: neardup.CorpusIndex
    unreadable: list[str]


def read_corpus(sources: Sequence[Path]) -> Corpus:
    """Descriptors of every readable corpus image (a non-square one also by its central square)."""
    names: list[str] = []
    unreadable: list[str] = []

    def working() -> Iterator[tuple[int, np.ndarray]]:
        for name, image in corpus_images(sources):
            if image is None:
                unreadable.append(name)
                continue
            names.append(name)
            yield len(names) - 1, neardup.working_image(image)
            square = neardup.center_square(image)
            if square is not None:
                yield len(names) - 1, neardup.working_image(square)

    try:
        index = neardup.CorpusIndex.build(working())
    except ValueError as error:
        raise OverlapError(f"corpus {', '.join(map(str, sources))}: {error}") from None
    return Corpus(names, index, unreadable)


def parse_eval(spec: str) -> tuple[str, str]:
    benchmark, _, split = spec.partition(":")
    if not split:
        raise OverlapError(f"--eval {spec!r}: write <benchmark>:<split>, e.g. synth:test or imagenet:val")
    return benchmark, split


def preprocess_of(recorded: Mapping[str, Any] | None, benchmark: str) -> Preprocess:
    """The preprocessing a model's record names (size, resize, interpolation), else the benchmark's default."""
    if recorded and isinstance(recorded.get("size"), int) and isinstance(recorded.get("resize"), int):
        return Preprocess(recorded["size"], recorded["resize"], recorded.get("interpolation", "bicubic"))
    return DEFAULT_PREPROCESS[benchmark]


def split_cases(report: Report, benchmark: str, split: str, models: Sequence[str] | None) -> list[CaseRecord]:
    """The report's measured cases on `split` of `benchmark` without perturbation, of `models` when given."""
    cases = [c for c in report.cases if c.per_sample and c.benchmark == benchmark
             and (c.data or {}).get("split") == split and "perturbed_sha256" not in (c.data or {})
             and (not models or c.model in models)]
    if not cases:
        raise OverlapError(f"the report holds no measured, unperturbed case on {benchmark}:{split}"
                           + (f" for {', '.join(models)}" if models else ""))
    return cases


def accuracy_rows(cases: Sequence[CaseRecord], overlap: np.ndarray) -> list[dict[str, Any]]:
    """Per case: accuracy on all its samples, on the clean ones and on the overlapping ones, and the one-sided
    binomial p-value of the overlap accuracy against the clean accuracy. `overlap` is bool over the split's
    first samples, at least as many as each case measured."""
    rows = []
    for case in cases:
        n = case.n
        correct, mask = case.bits(), overlap[:n]
        clean = float(correct[~mask].mean()) if (~mask).any() else None
        on_overlap = float(correct[mask].mean()) if mask.any() else None
        p = (float(binomtest(int(correct[mask].sum()), int(mask.sum()), clean, alternative="greater").pvalue)
             if mask.any() and clean is not None else None)
        rows.append({"model": case.model, "case": case.id, "n": n, "n_overlap": int(mask.sum()),
                     "accuracy_all": float(correct.mean()), "accuracy_clean": clean, "accuracy_overlap": on_overlap,
                     "all_minus_clean": None if clean is None else float(correct.mean()) - clean, "p_value": p})
    return rows


@dataclasses.dataclass(frozen=True)
class OverlapRequest:
    """An overlap analysis: split `eval_spec` (`<benchmark>:<split>`) against the corpus `sources` (image folders
    and webdataset shards); with `report`, accuracy on all versus clean for its cases (of `models` when given).
    `threshold` defaults to the benchmark's; without a report, the split's first `samples` are read."""

    eval_spec: str
    sources: Sequence[Path]
    report: Report | None = None
    models: Sequence[str] | None = None
    threshold: float | None = None
    samples: int | None = None
    cache_dir: Path = Path(".cache/robustness-gate")
    data_root: Path | None = None


def analyse(request: OverlapRequest) -> dict[str, Any]:
    """The overlap analysis as a JSON-able document: the overlapping evaluation samples with their best corpus
    match, and, given a report, accuracy on all versus clean per case."""
    eval_spec, sources, report, models = request.eval_spec, request.sources, request.report, request.models
    threshold, samples, cache_dir, data_root = request.threshold, request.samples, request.cache_dir, request.data_root
    benchmark_name, split = parse_eval(eval_spec)
    if benchmark_name not in THRESHOLDS:
        raise OverlapError(f"--eval {eval_spec!r}: unknown benchmark; known: {', '.join(sorted(THRESHOLDS))}")
    threshold = THRESHOLDS[benchmark_name] if threshold is None else threshold
    benchmark = get_benchmark(benchmark_name, data_root)
    cache = ArrayCache(cache_dir)
    cases = split_cases(report, benchmark_name, split, models) if report is not None else []
    preprocesses = {preprocess_of(report.models.get(c.model, {}).get("preprocess"), benchmark_name)
                    for c in cases} or {DEFAULT_PREPROCESS[benchmark_name]}
    if len(preprocesses) > 1:
        raise OverlapError("the report's models preprocess the split differently; pick models with --model")
    preprocess = preprocesses.pop()
    n = max([c.n for c in cases], default=samples or 10 ** 9)
    try:
        data = benchmark.load(split, n, cache, preprocess)
    except DataMissingError as missing:
        raise OverlapError(f"--eval {eval_spec!r}: {missing}") from None
    except (KeyError, ValueError) as error:
        raise OverlapError(f"--eval {eval_spec!r}: cannot load split {split!r} "
                           f"({type(error).__name__}: {error})") from None
    for case in cases:
        if benchmark.load(split, case.n, cache, preprocess).provenance["sha256"] != case.data["sha256"]:
            raise OverlapError(f"case {case.id} of {case.model} was measured on other data than "
                               f"{eval_spec} loads now (its data hash differs): rerun the case or the analysis "
                               f"on matching data")
    images = data.images if data.images.ndim == 4 else data.images[:, data.images.shape[1] // 2]
    corpus = read_corpus(sources)
    matches = neardup.match(np.stack([neardup.working_image(image) for image in images]), corpus.index)
    overlap = matches.score >= threshold
    return {"eval": eval_spec, "n": int(len(images)), "threshold": threshold,
            "preprocess": preprocess.as_dict(), "data_sha256": data.provenance["sha256"],
            "corpus": {"sources": [str(s) for s in sources], "images": len(corpus.names),
                       "unreadable": corpus.unreadable},
            "n_overlap": int(overlap.sum()), "n_clean": int((~overlap).sum()),
            "overlap": [{"index": int(i), "match": corpus.names[matches.image[i]],
                         "similarity": round(float(matches.score[i]), 6)} for i in np.nonzero(overlap)[0]],
            "accuracy": accuracy_rows(cases, overlap)}


def format_analysis(result: Mapping[str, Any]) -> list[str]:
    lines = [f"{result['eval']}: {result['n_overlap']} of {result['n']} samples overlap the corpus "
             f"({result['corpus']['images']} images, {len(result['corpus']['unreadable'])} unreadable) at "
             f"similarity >= {result['threshold']}; {result['n_clean']} clean"]
    if result["accuracy"]:
        lines.append(f"  {'case':<28} {'n':>5} {'overlap':>7} {'all':>7} {'clean':>7} {'all-clean':>9} "
                     f"{'overlap acc':>11} {'p (overlap > clean)':>19}")
        fmt = lambda value, spec: "-" if value is None else format(value, spec)
        for row in result["accuracy"]:
            lines.append(f"  {row['case']:<28} {row['n']:>5} {row['n_overlap']:>7} {row['accuracy_all']:>7.4f} "
                         f"{fmt(row['accuracy_clean'], '.4f'):>7} {fmt(row['all_minus_clean'], '+.4f'):>9} "
                         f"{fmt(row['accuracy_overlap'], '.4f'):>11} {fmt(row['p_value'], '.3g'):>19}")
    return lines
