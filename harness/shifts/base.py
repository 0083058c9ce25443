"""A setting's perturbation: what it is (its record), what it does to the pixels, and how its case is scored.

Each kind (a corruption at a severity, a whole-image transform, a perturbation sequence, a typographic overlay,
an attack) is a frozen dataclass in the module of its shift, subclassing `Perturbation`. A setting without one
is scored on its data as loaded. The split is streamed (harness.stream): `harness.evaluate` calls `perturb` on each
data chunk (`per_chunk`; else on each piece a benchmark hands on) and `score` on each scoring chunk, handing the
kind a `Scorer` that classifies (and attacks) with the run's model, device, batch size and autocast, joins the
chunks' `Scored` and calls `summarize` once on the whole. A perturbation's sample i must depend only on (seed, its
index in the split, `inputs.offset + i`), never on where a chunk begins.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Mapping, Protocol

import numpy as np

from ..data.base import content_sha256

if TYPE_CHECKING:
    from ..attacks import AttackSpec
    from ..data import EvalData
    from ..evaluate import RunContext
    from ..models import LoadedModel


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What a case scores: `images` uint8 (N, H, W, 3), or frames (N, F, H, W, 3); `data` the split they come
    from (labels, label sets, class subset); `provenance` the data's record, which a perturbation extends with
    the hash of the pixels it made; `targets` int (N,) when a perturbation aims each image at a class (the class
    a typographic attack writes on it), else None. A chunk of a streamed split: `offset` is the index in the
    split of its first sample."""

    data: "EvalData"
    images: np.ndarray
    provenance: Mapping[str, Any]
    targets: np.ndarray | None = None

    @property
    def offset(self) -> int:
        return self.data.offset


@dataclasses.dataclass(frozen=True)
class Scored:
    """`per_sample` bool (N,): sample i scored correct under the setting's metric; `metrics` what the setting adds;
    `values` float (N,) when the setting also measures a quantity per sample (a minimal perturbation; +inf for
    "above the search's maximum"), which the gate compares pairwise with the baseline's; `columns` the per-sample
    quantities (N, ...) the setting's metrics are computed from once the chunks are joined (`summarize`)."""

    per_sample: np.ndarray
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    values: np.ndarray | None = None
    columns: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @classmethod
    def joined(cls, parts: "list[Scored]") -> "Scored":
        """Consecutive chunks' outcomes as one; chunks carry columns, not metrics."""
        if any(part.metrics for part in parts):
            raise ValueError("a chunk's Scored carries columns; metrics are computed once, by summarize")
        if len(parts) == 1:
            return parts[0]
        values = None if parts[0].values is None else np.concatenate([part.values for part in parts])
        return cls(np.concatenate([part.per_sample for part in parts]), {}, values,
                   {name: np.concatenate([part.columns[name] for part in parts]) for name in parts[0].columns})


class Scorer(Protocol):
    """Classifies and attacks a case's inputs with the run's model (implemented by harness.evaluate)."""

    def predictions(self, inputs: Inputs) -> np.ndarray:
        """Predicted classes: int (N,) for images, (N, F) for frames."""

    def correct(self, inputs: Inputs, k: int | None) -> Scored:
        """Top-1 correctness against the data's labels (label sets); for frames, pm-k over each frame set."""

    def attack(self, inputs: Inputs, spec: "AttackSpec", surrogate: str | None) -> Scored:
        """Robust correctness under `spec`, crafted on the model `surrogate` names when given."""

    def minimal(self, inputs: Inputs, spec: "AttackSpec", bisections: int) -> np.ndarray:
        """float (N,): each sample's minimal flipping budget under `spec`'s attack up to `spec.eps`
        (harness.minimal.minimal_eps)."""


class Perturbation:
    """Base of the perturbation kinds: a frozen dataclass naming the perturbation and its parameters."""

    def record(self) -> dict[str, Any]:
        """What the setting's protocol record (`Setting.as_dict`) holds of this perturbation: compared against a
        baseline's, so a change here is a protocol change."""
        raise NotImplementedError

    def perturb(self, inputs: Inputs, model: "LoadedModel", run: "RunContext") -> Inputs:
        """The inputs this perturbation makes of clean `inputs`, deterministic in `run.seed`; the default leaves
        them (a perturbation applied in the scoring, as an attack)."""
        return inputs

    @property
    def per_chunk(self) -> bool:
        """Whether `perturb` is handed whole data chunks (harness.stream) rather than the pieces a benchmark
        streams: so for every perturbation that makes pixels (overrides `perturb`), whose pixels are hashed
        and cached per data chunk; not for one applied in the scoring."""
        return type(self).perturb is not Perturbation.perturb

    def score(self, inputs: Inputs, scorer: Scorer, k: int | None) -> Scored:
        """The per-sample outcome on a chunk of perturbed `inputs`; the default is top-1 (or pm-k) correctness."""
        return scorer.correct(inputs, k)

    def summarize(self, scored: Scored) -> dict[str, Any]:
        """The case's metrics from its joined outcome (`scored.columns`); may raise to fail the case."""
        return {}

    @property
    def frames(self) -> int:
        """Images the perturbation makes of each input image (a sequence's frames), for sizing chunks."""
        return 1

    @property
    def metric(self) -> str | None:
        """The metric this perturbation scores by, when not the setting's own (top-1 or pm-k)."""
        return None

    @property
    def autocast(self) -> bool:
        """Whether scoring may run under --amp autocast (not for attacks: budgets and gradients stay float32)."""
        return True


def with_pixels(inputs: Inputs, images: np.ndarray, **provenance: Any) -> Inputs:
    """`inputs` holding `images` instead, their sha256 as `perturbed_sha256` and `provenance` added. The images
    are made read-only, so their hash is remembered (`content_sha256`) for the predictions' cache key."""
    images.flags.writeable = False
    return dataclasses.replace(inputs, images=images, provenance={**inputs.provenance, **provenance,
                                                                  "perturbed_sha256": content_sha256(images)})
