"""Effective robustness (Taori et al. 2020, "Measuring Robustness to Natural Distribution Shifts in Image
Classification"): where a model sits against the trend of shift accuracy on in-distribution (ID) accuracy.

A trend is logit-linear, beta(x) = sigmoid(a * logit(x) + b), with a, b from a least-squares line of
logit(acc_shift) on logit(acc_ID) over a family of reference models: the ImageNet testbed's "Standard training"
models for `imagenet`, the supervised SynthCNN family of tools/train_family.py for `synth`. The effective
robustness of a model is rho = acc_shift - beta(acc_ID), in accuracy units (fractions): above the line is
positive. Coefficients live beside this module as JSON, one file per benchmark, written by
`python -m harness.trends fit` with their source named; nothing is fitted at run time.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

TRENDS_DIR = Path(__file__).resolve().parent
TREND_FILES = {"imagenet": "imagenet_testbed.json", "synth": "synth_family.json"}
PREDICT_CLIP = 1e-4  # an ID accuracy of exactly 0 or 1 (a small sample) is moved this far inside before the logit


def logit(p: np.ndarray | float) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return np.log(p) - np.log1p(-p)


def sigmoid(z: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=float)))


def fit_logit_linear(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """(a, b, r2) of the least-squares line logit(y) = a * logit(x) + b; r2 in logit space.

    Accuracies are fractions strictly inside (0, 1) (the logit of 0 or 1 is infinite: leave such models out);
    at least three models are needed."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or x.size < 3:
        raise ValueError(f"a trend needs at least 3 (x, y) pairs, got shapes {x.shape} and {y.shape}")
    if not (((x > 0) & (x < 1)).all() and ((y > 0) & (y < 1)).all()):
        raise ValueError("trend accuracies must be fractions strictly between 0 and 1")
    lx, ly = logit(x), logit(y)
    a, b = np.polyfit(lx, ly, 1)
    residual = ly - (a * lx + b)
    r2 = 1.0 - float(residual @ residual) / float(((ly - ly.mean()) ** 2).sum())
    return float(a), float(b), r2


@dataclasses.dataclass(frozen=True)
class Trend:
    """The trend of one natural-shift setting (`shift`, a case setting name) on the ID accuracy named `x`
    (a testbed column or a benchmark split), fitted on `n_models` reference models."""

    shift: str
    x: str
    y: str
    a: float
    b: float
    n_models: int
    r2: float
    x_range: tuple[float, float]

    def predict(self, id_accuracy: float) -> float:
        """beta(x): the shift accuracy the reference family reaches at this ID accuracy."""
        clipped = min(max(id_accuracy, PREDICT_CLIP), 1 - PREDICT_CLIP)
        return float(sigmoid(self.a * logit(clipped) + self.b))

    def effective_robustness(self, id_accuracy: float, shift_accuracy: float) -> float:
        return shift_accuracy - self.predict(id_accuracy)


@dataclasses.dataclass(frozen=True)
class TrendSet:
    """The trends of one benchmark. `clean` names the x of trends on the clean split's accuracy (what a run
    report holds); a shift may also have a trend on the ID accuracy over its own class subset (the testbed's
    `val-on-<shift>-classes`), the definition of Taori et al."""

    benchmark: str
    clean: str
    source: dict[str, Any]
    trends: tuple[Trend, ...]

    def on(self, shift: str, x: str) -> Trend | None:
        """The trend of `shift` on the ID accuracy named `x` (the clean split, or `val-on-<shift>-classes`)."""
        return next((t for t in self.trends if t.shift == shift and t.x == x), None)

    def on_clean(self, shift: str) -> Trend | None:
        return self.on(shift, self.clean)

    def on_classes(self, shift: str) -> Trend | None:
        """The trend on the shift's class-subset ID accuracy, or the clean one when the shift has no subset."""
        return next((t for t in self.trends if t.shift == shift and t.x != self.clean), None) or self.on_clean(shift)

    @property
    def label(self) -> str:
        return f"{TREND_FILES[self.benchmark]} ({self.source['summary']})"


def trend_document(benchmark: str, clean: str, source: dict[str, Any], trends: list[Trend],
                   excluded: dict[tuple[str, str], list[str]]) -> dict[str, Any]:
    """The JSON document of a benchmark's trends; `excluded[(shift, x)]` names models left out of that fit."""
    return {"benchmark": benchmark, "clean": clean, "source": source,
            "formula": "beta(x) = sigmoid(a * logit(x) + b); effective robustness = acc_shift - beta(acc_ID)",
            "trends": [dict(dataclasses.asdict(t), x_range=list(t.x_range), excluded=excluded.get((t.shift, t.x), []))
                       for t in trends]}


def parse_trends(document: dict[str, Any]) -> TrendSet:
    fields = {f.name for f in dataclasses.fields(Trend)}
    trends = tuple(Trend(**{k: (tuple(v) if k == "x_range" else v) for k, v in entry.items() if k in fields})
                   for entry in document["trends"])
    return TrendSet(document["benchmark"], document["clean"], document["source"], trends)


@functools.lru_cache(maxsize=None)
def load_trends(benchmark: str) -> TrendSet | None:
    """The committed trends of `benchmark`, or None for a benchmark without a reference family."""
    name = TREND_FILES.get(benchmark)
    if name is None or not (TRENDS_DIR / name).is_file():
        return None
    return parse_trends(json.loads((TRENDS_DIR / name).read_text()))
