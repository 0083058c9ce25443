"""case -> CaseResult: load the setting's data, perturb it, classify, score per sample.

`evaluate(case, model, run)` loads the case's split, lets the setting's perturbation (harness.shifts.base) make
its inputs (or reads them pre-rendered from the benchmark) and score them through a `CaseScorer`, which classifies
and attacks in batches that fit the device.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import re
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from .attacks import AttackSpec, run_attack
from .cache import ArrayCache
from .cases import Case
from .config import SuiteConfig
from .data import get_benchmark
from .data.base import content_sha256
from .files import write_atomic
from .metrics import pm_k_correct, wilson_interval
from .models import LoadedModel
from .progress import Progress
from .records import CaseRecord, encode_bits, encode_values
from .shifts.base import Inputs, Perturbation, Scored


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What a case is measured with, fixed for the run: the device, the content-addressed cache (None: nothing
    cached), the seed of every perturbation, images per forward pass, autocast ("off", "bf16", "fp16") of
    non-adversarial forward passes, the --data-root folder, the folder adversarial images are saved to (None:
    not saved), `models(id)` to load another model (transfer surrogates) and `progress(done, total)`."""

    device: torch.device
    cache: ArrayCache | None = None
    seed: int = 0
    batch_size: int = 250
    amp: str = "off"
    data_root: Path | None = None
    save_adversarials: Path | None = None
    models: Callable[[str], LoadedModel] | None = None
    progress: Progress | None = None

    @classmethod
    def of_suite(cls, suite: SuiteConfig, device: torch.device, cache: ArrayCache,
                 models: Callable[[str], LoadedModel]) -> "RunContext":
        return cls(device, cache, suite.seed, suite.batch_size, suite.amp, suite.data_root, suite.save_adversarials,
                   models)


@dataclasses.dataclass(frozen=True)
class CaseResult:
    """What one case measured. `per_sample` is bool (n,): sample i scored correct under the setting's metric."""

    case: Case
    per_sample: np.ndarray
    data: dict[str, Any]
    seed: int
    batch_size: int
    duration_s: float
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    values: np.ndarray | None = None  # float (n,), a quantity measured per sample (harness.shifts.base.Scored)

    @property
    def n(self) -> int:
        return int(self.per_sample.size)

    @property
    def correct(self) -> int:
        return int(self.per_sample.sum())

    @property
    def accuracy(self) -> float:
        return self.correct / self.n

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        return wilson_interval(self.correct, self.n, confidence)

    def record(self, model_provenance: Mapping[str, Any]) -> CaseRecord:
        """This result as a case record, not yet judged (`status` None until `CaseRecord.judged`)."""
        case, lo_hi = self.case, self.interval(0.95)
        return CaseRecord(
            id=case.id, key=case.setting.key, model=case.model, line=case.line, benchmark=case.benchmark,
            category=case.setting.category, setting=case.setting.as_dict(),
            data=self.data, data_sha256=self.data.get("perturbed_sha256", self.data["sha256"]), seed=self.seed,
            batch_size=self.batch_size, n=self.n, correct=self.correct, accuracy=self.accuracy,
            interval95=(round(lo_hi[0], 6), round(lo_hi[1], 6)), per_sample=encode_bits(self.per_sample),
            metrics=dict(self.extra), duration_s=round(self.duration_s, 3), model_provenance=dict(model_provenance),
            per_sample_values=None if self.values is None else encode_values(self.values))


def to_pixels(images: np.ndarray | torch.Tensor, device: torch.device, contiguous: bool = True) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [0, 1] on `device`, contiguous unless `contiguous=False`
    (which keeps the images' channels-last strides: the memory order the embedded models were trained on, and a
    convolution's last bits depend on it). `images` may be read-only (shared cached data): the tensor viewing it
    is only read, copied by the conversion."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        pixels = torch.as_tensor(images)
    pixels = pixels.to(device).permute(0, 3, 1, 2).float().div_(255.0)
    return pixels.contiguous() if contiguous else pixels


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@functools.lru_cache(maxsize=1)
def harness_code_sha256() -> str:
    """sha256 over the harness's Python sources: cached predictions are never reused across code changes."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(str(path.relative_to(Path(__file__).parent)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def fitted(run: Callable[[int], Any], batch_size: int) -> tuple[Any, int]:
    """(run(b), b) for the largest b in batch_size, batch_size // 2, ..., 1 that fits in GPU memory: on CUDA
    out-of-memory the batch size is halved and the whole run repeated."""
    while True:
        try:
            return run(batch_size), batch_size
        except torch.cuda.OutOfMemoryError:
            if batch_size == 1:
                raise
            torch.cuda.empty_cache()
            batch_size //= 2


def predictions_key(model: LoadedModel, images: np.ndarray, batch_size: int, device: torch.device,
                    class_subset: np.ndarray | None, amp: str) -> dict[str, Any]:
    """Everything predictions depend on: the model (weights, preprocessing, head), the input bytes, the harness
    code, torch and the numerics (device type, batch size, autocast)."""
    model_provenance = {k: v for k, v in model.provenance.items() if k != "head_cache"}
    return {"kind": "predictions", "model": str(model.model_id), "model_provenance": model_provenance,
            "images": content_sha256(images), "class_subset": None if class_subset is None else
            [int(c) for c in class_subset], "batch_size": batch_size, "device": device.type, "amp": amp,
            "torch": torch.__version__, "harness_code": harness_code_sha256()}


def predict(model: LoadedModel, images: np.ndarray, run: RunContext,
            class_subset: np.ndarray | None = None) -> np.ndarray:
    """Predicted class indices (N,) of uint8 images (N, H, W, 3) in batches of `run.batch_size` on `run.device`,
    chosen among `class_subset` when given, under autocast to `run.amp` unless it is "off". With `run.cache`,
    predictions are kept under `predictions_key`, so a warm run does not recompute them."""
    if run.cache is None:
        return classify(model.classifier, images, run, class_subset)
    key = predictions_key(model, images, run.batch_size, run.device, class_subset, run.amp)
    return run.cache.get_or_compute(key, lambda: {"predictions": classify(model.classifier, images, run,
                                                                          class_subset)})["predictions"]


def classify(classifier: torch.nn.Module, images: np.ndarray, run: RunContext,
             class_subset: np.ndarray | None = None) -> np.ndarray:
    """Predicted class indices (N,) of uint8 images (N, H, W, 3) by a pixel-space classifier (logits (N, C)),
    uncached; see `predict`."""
    predictions = []
    device, batch_size = run.device, run.batch_size
    subset = None if class_subset is None else torch.as_tensor(class_subset, device=device)
    autocast = (contextlib.nullcontext() if run.amp == "off"
                else torch.autocast(device.type, AUTOCAST_DTYPES[run.amp]))
    with torch.no_grad(), autocast:
        for start in range(0, len(images), batch_size):
            logits = classifier(to_pixels(images[start:start + batch_size], device))
            if subset is not None:
                logits = torch.full_like(logits, float("-inf")).index_copy_(1, subset, logits[:, subset])
            predictions.append(logits.argmax(dim=1).cpu().numpy())
            if run.progress is not None:
                run.progress(min(start + batch_size, len(images)), len(images))
    return np.concatenate(predictions)


@dataclasses.dataclass(frozen=True)
class Attacked:
    """Per sample (N,): `robust` (correct on the adversarial image), `clean_correct`; `stats` the clean accuracy,
    the median perturbation norm of clean-correct samples and, for a worst case, each component's accuracy and
    bits; `adversarial` uint8 (N, H, W, 3) when asked for (clamped to [0, 1] first, for the RoZ space)."""

    robust: np.ndarray
    clean_correct: np.ndarray
    stats: dict[str, Any]
    adversarial: np.ndarray | None = None


def attack(model: LoadedModel, images: np.ndarray, labels: np.ndarray, spec: AttackSpec, run: RunContext,
           surrogate: LoadedModel | None = None) -> Attacked:
    """Robust correctness under `spec` (crafted on `surrogate` when given), in float32 whatever `run.amp` says.
    With `run.save_adversarials`, the adversarial images come back as uint8 pixels (rounded, so a re-evaluation of
    them can differ slightly from the float images that were scored)."""
    robust, clean, norms, adversarial = [], [], [], []
    components: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(images), run.batch_size):
        pixels = to_pixels(images[start:start + run.batch_size], run.device)
        targets = torch.from_numpy(labels[start:start + run.batch_size]).to(run.device)
        outcome = run_attack(model.classifier, pixels, targets, spec, seed=run.seed * 1_000_003 + start,
                             attack_model=surrogate.classifier if surrogate is not None else None)
        robust.append(outcome.robust.cpu().numpy())
        clean.append(outcome.clean_correct.cpu().numpy())
        norms.append(outcome.norms.cpu().numpy())
        for name, bits in outcome.components.items():
            components.setdefault(name, []).append(bits.cpu().numpy())
        if run.save_adversarials is not None:
            pixels = outcome.adversarial.clamp(0, 1).permute(0, 2, 3, 1)
            adversarial.append((pixels * 255).round().byte().cpu().numpy())
        if run.progress is not None:
            run.progress(min(start + run.batch_size, len(images)), len(images))
    clean_correct, all_norms = np.concatenate(clean), np.concatenate(norms)
    stats = {"clean_accuracy": float(clean_correct.mean()),
             "median_perturbation_norm": float(np.median(all_norms[clean_correct])) if clean_correct.any() else None}
    if components:
        stats["components"] = {name: {"accuracy": float(np.concatenate(bits).mean()),
                                      "per_sample": encode_bits(np.concatenate(bits))}
                               for name, bits in components.items()}
    return Attacked(np.concatenate(robust), clean_correct, stats,
                    np.concatenate(adversarial) if adversarial else None)


def minimal(model: LoadedModel, images: np.ndarray, labels: np.ndarray, spec: AttackSpec, bisections: int,
            run: RunContext) -> np.ndarray:
    """float (N,): each image's minimal flipping budget (harness.minimal.minimal_eps), in batches, float32."""
    from .minimal import minimal_eps

    values = []
    for start in range(0, len(images), run.batch_size):
        pixels = to_pixels(images[start:start + run.batch_size], run.device)
        targets = torch.from_numpy(labels[start:start + run.batch_size]).to(run.device)
        values.append(minimal_eps(model.classifier, pixels, targets, spec, bisections,
                                  seed=run.seed * 1_000_003 + start).numpy())
        if run.progress is not None:
            run.progress(min(start + run.batch_size, len(images)), len(images))
    return np.concatenate(values)


def save_adversarials(path: Path, attacked: Attacked, labels: np.ndarray) -> None:
    """An .npz of the adversarial images with labels, clean correctness and robustness per sample, for inspection."""
    write_atomic(path, lambda handle: np.savez_compressed(handle, images=attacked.adversarial, labels=labels,
                                                          clean_correct=attacked.clean_correct,
                                                          robust=attacked.robust))


class CaseScorer:
    """The `Scorer` of one case (harness.shifts.base): classifies and attacks with `model` under `run`, halving
    the batch on CUDA out-of-memory (`fitted`); `batch_size` is the one used last."""

    def __init__(self, case: Case, model: LoadedModel, run: RunContext):
        self.case, self.model, self.run = case, model, run
        self.batch_size = run.batch_size

    def predictions(self, inputs: Inputs) -> np.ndarray:
        images = inputs.images
        flat = images.reshape(-1, *images.shape[-3:]) if images.ndim == 5 else images
        predictions, self.batch_size = fitted(lambda b: predict(
            self.model, flat, dataclasses.replace(self.run, batch_size=b), inputs.data.class_subset),
            self.run.batch_size)
        return predictions.reshape(images.shape[:-3])

    def correct(self, inputs: Inputs, k: int | None) -> Scored:
        predictions = self.predictions(inputs)
        correct = inputs.data.correct(predictions)
        return Scored(pm_k_correct(correct, k) if inputs.images.ndim == 5 else correct)

    def attack(self, inputs: Inputs, spec: AttackSpec, surrogate: str | None) -> Scored:
        source = self.run.models(surrogate) if surrogate is not None else None
        labels = inputs.data.labels
        attacked, self.batch_size = fitted(lambda b: attack(
            self.model, inputs.images, labels, spec, dataclasses.replace(self.run, batch_size=b), source),
            self.run.batch_size)
        if attacked.adversarial is not None:
            name = re.sub(r"[^A-Za-z0-9._-]", "_", self.case.setting.name) + ".npz"
            save_adversarials(Path(self.run.save_adversarials) / self.case.line / name, attacked, labels)
        return Scored(attacked.robust, attacked.stats)

    def minimal(self, inputs: Inputs, spec: AttackSpec, bisections: int) -> np.ndarray:
        values, self.batch_size = fitted(lambda b: minimal(self.model, inputs.images, inputs.data.labels, spec,
                                                           bisections, dataclasses.replace(self.run, batch_size=b)),
                                         self.run.batch_size)
        return values


def _inputs(case: Case, model: LoadedModel, run: RunContext) -> Inputs:
    """The case's inputs: its split, perturbed by the setting's perturbation or read pre-rendered from the
    benchmark when it has that perturbation on disk (ImageNet-C, Stylized-ImageNet)."""
    setting = case.setting
    benchmark = get_benchmark(case.benchmark, run.data_root)
    data = benchmark.load(setting.split, setting.samples, run.cache, model.preprocess)
    inputs = Inputs(data, data.images, dict(data.provenance))
    if setting.perturbation is None:
        return inputs
    on_disk = benchmark.load_perturbed(setting.perturbation.record(), setting.samples, run.cache, model.preprocess)
    if on_disk is None:
        return setting.perturbation.perturb(inputs, model, run)
    return Inputs(on_disk, on_disk.images, {**inputs.provenance, "perturbed_sha256": on_disk.provenance["sha256"],
                                            "perturbed_source": on_disk.provenance["dataset_path"]})


def _id_accuracy(case: Case, model: LoadedModel, scorer: CaseScorer) -> dict[str, Any]:
    """The model's accuracy on the case's in-distribution split over the shift's classes (`Setting.id_split`),
    under the same class-subset restriction as the shift, at the same sample cap."""
    run = scorer.run
    data = get_benchmark(case.benchmark, run.data_root).load(case.setting.id_split, case.setting.samples, run.cache,
                                                             model.preprocess)
    correct = data.correct(scorer.predictions(Inputs(data, data.images, dict(data.provenance))))
    return {"split": case.setting.id_split, "n": int(correct.size), "correct": int(correct.sum()),
            "accuracy": float(correct.mean()) if correct.size else None, "sha256": data.provenance["sha256"]}


def evaluate(case: Case, model: LoadedModel, run: RunContext) -> CaseResult:
    """Measure `case` on `model` under `run`. Attacks always run in float32; other forward passes autocast to
    `run.amp`, and a case run under autocast says so in its metrics (`autocast`). `run.progress(done, total)` is
    called after each batch (images, or frames for sequences). A batch that does not fit in GPU memory is halved
    until it does (`fitted`); the result records the batch size used."""
    started = time.perf_counter()
    inputs = _inputs(case, model, run)
    perturbation = case.setting.perturbation or Perturbation()
    scorer = CaseScorer(case, model, run)
    scored = perturbation.score(inputs, scorer, case.setting.k)
    extra = dict(scored.metrics)
    if case.setting.id_split is not None:
        extra["id_on_classes"] = _id_accuracy(case, model, scorer)
    if run.amp != "off" and perturbation.autocast:
        extra["autocast"] = run.amp
    return CaseResult(case, scored.per_sample.astype(bool), dict(inputs.provenance), run.seed, scorer.batch_size,
                      time.perf_counter() - started, extra, scored.values)
