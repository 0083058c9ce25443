"""case -> CaseResult: load the setting's data, perturb it, classify, score per sample."""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import re
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .attacks import AttackSpec, run_attack
from .cache import ArrayCache
from .cases import Case
from .data import EvalData, get_benchmark
from .data.base import content_sha256
from .metrics import pm_k_correct, wilson_interval
from .models import LoadedModel
from .pixels import image_digests
from .progress import Progress
from .shifts.corruptions import corrupted, recipe
from .shifts.perturbations import TRANSFORMS, flips, sequences
from .shifts.typographic import overlay


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


def _to_pixels(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [0, 1] on `device`. `images` may be read-only (shared cached
    data): the tensor viewing it is only read, copied by the conversion."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        pixels = torch.from_numpy(images)
    return pixels.to(device).permute(0, 3, 1, 2).float().div_(255.0).contiguous()


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


def predict(model: LoadedModel, images: np.ndarray, batch_size: int, device: torch.device,
            class_subset: np.ndarray | None = None, amp: str = "off", progress: Progress | None = None,
            cache: ArrayCache | None = None) -> np.ndarray:
    """Predicted class indices (N,) of uint8 images (N, H, W, 3), chosen among `class_subset` when given; under
    autocast to `amp` ("bf16", "fp16") unless it is "off". With `cache`, predictions are kept under
    `predictions_key`, so a warm run does not recompute them."""
    if cache is not None:
        key = predictions_key(model, images, batch_size, device, class_subset, amp)
        return cache.get_or_compute(key, lambda: {"predictions": predict(
            model, images, batch_size, device, class_subset, amp, progress)})["predictions"]
    predictions = []
    subset = None if class_subset is None else torch.as_tensor(class_subset, device=device)
    autocast = contextlib.nullcontext() if amp == "off" else torch.autocast(device.type, AUTOCAST_DTYPES[amp])
    with torch.no_grad(), autocast:
        for start in range(0, len(images), batch_size):
            logits = model.classifier(_to_pixels(images[start:start + batch_size], device))
            if subset is not None:
                logits = torch.full_like(logits, float("-inf")).index_copy_(1, subset, logits[:, subset])
            predictions.append(logits.argmax(dim=1).cpu().numpy())
            if progress is not None:
                progress(min(start + batch_size, len(images)), len(images))
    return np.concatenate(predictions)


def attack(model: LoadedModel, images: np.ndarray, labels: np.ndarray, spec: AttackSpec, seed: int,
           batch_size: int, device: torch.device, surrogate: LoadedModel | None = None,
           save_to: Path | None = None, progress: Progress | None = None) -> tuple[np.ndarray, dict]:
    """Robust correctness (N,) under `spec` (crafted on `surrogate` when given) and summary statistics.

    With `save_to`, the adversarial images are written there as an .npz for inspection: uint8 pixels (rounded,
    so a re-evaluation of the saved file can differ slightly from the float images that were scored), with
    labels, clean correctness and robustness per sample.
    """
    robust, clean, norms, adversarial = [], [], [], []
    for start in range(0, len(images), batch_size):
        pixels = _to_pixels(images[start:start + batch_size], device)
        targets = torch.from_numpy(labels[start:start + batch_size]).to(device)
        outcome = run_attack(model.classifier, pixels, targets, spec, seed=seed * 1_000_003 + start,
                             n_classes=len(model.classnames),
                             attack_model=surrogate.classifier if surrogate is not None else None)
        robust.append(outcome.robust.cpu().numpy())
        clean.append(outcome.clean_correct.cpu().numpy())
        norms.append(outcome.norms.cpu().numpy())
        if save_to is not None:
            adversarial.append((outcome.adversarial.permute(0, 2, 3, 1) * 255).round().byte().cpu().numpy())
        if progress is not None:
            progress(min(start + batch_size, len(images)), len(images))
    if save_to is not None:
        save_to.parent.mkdir(parents=True, exist_ok=True)
        tmp = save_to.with_name(save_to.name + ".tmp")
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, images=np.concatenate(adversarial), labels=labels,
                                clean_correct=np.concatenate(clean), robust=np.concatenate(robust))
        os.replace(tmp, save_to)
    clean_correct, all_norms = np.concatenate(clean), np.concatenate(norms)
    stats = {"clean_accuracy": float(clean_correct.mean()),
             "median_perturbation_norm": float(np.median(all_norms[clean_correct])) if clean_correct.any() else None}
    return np.concatenate(robust), stats


def evaluate(case: Case, model: LoadedModel, cache: ArrayCache, seed: int, batch_size: int,
             device: torch.device, models: Callable[[str], LoadedModel] | None = None,
             save_adversarials: Path | None = None, data_root: Path | None = None, amp: str = "off",
             progress: Progress | None = None) -> CaseResult:
    """Measure `case` on `model`; `models` loads a surrogate for transfer attacks; adversarial images are saved
    under `save_adversarials/<line>/<setting>.npz` when it is given. `amp` ("off", "bf16", "fp16") autocasts
    the forward passes of non-adversarial cases; attacks always run in float32, so budgets and gradients mean
    what they say. A case run under autocast says so in its metrics (`autocast`). `progress(done, total)` is
    called after each batch (images, or frames for sequences). A batch that does not fit in GPU memory is
    halved until it does (`fitted`); the result records the batch size used."""
    started = time.perf_counter()
    setting = case.setting
    benchmark = get_benchmark(case.benchmark, data_root)
    data: EvalData = benchmark.load(setting.split, setting.samples, cache, model.preprocess)
    images, labels = data.images, data.labels
    provenance = dict(data.provenance)
    extra: dict[str, Any] = {}
    on_disk = None
    if hasattr(benchmark, "load_perturbed"):
        corruption = None if setting.corruption is None else (setting.corruption, setting.severity)
        on_disk = benchmark.load_perturbed(corruption, setting.transform, setting.samples, cache, model.preprocess)
    if on_disk is not None:
        data, images, labels = on_disk, on_disk.images, on_disk.labels
        provenance["perturbed_sha256"] = on_disk.provenance["sha256"]
        provenance["perturbed_source"] = on_disk.provenance["dataset_path"]
    elif setting.corruption is not None:
        provenance["pixel_recipe"] = recipe(provenance["sha256"], setting.corruption, setting.severity, seed)
        images = corrupted(images, provenance["pixel_recipe"], cache)
        provenance["perturbed_sha256"] = content_sha256(images)
        provenance["perturbed_source"] = "in memory (imagecorruptions)"
        provenance["image_digests"] = image_digests(images)
    if setting.typographic is not None:
        images, written = overlay(images, labels, model.classnames, setting.typographic, seed)
        provenance["perturbed_sha256"] = content_sha256(images)
    if setting.transform is not None and on_disk is None:
        images = TRANSFORMS[setting.transform](images, seed)
        provenance["perturbed_sha256"] = content_sha256(images)
    if setting.sequence is not None:
        images = sequences(images, setting.sequence, seed)
        provenance["perturbed_sha256"] = content_sha256(images)

    if images.ndim == 5:
        n, frames = images.shape[:2]
        flat = images.reshape(n * frames, *images.shape[2:])
        predictions, batch_size = fitted(lambda b: predict(model, flat, b, device, data.class_subset, amp,
                                                           progress, cache), batch_size)
        predictions = predictions.reshape(n, frames)
        if setting.sequence is not None:
            flipped = flips(predictions, setting.sequence)
            per_sample = flipped == 0
            extra = {"flip_probability": float(flipped.sum() / (n * (frames - 1))),
                     "accuracy_first_frame": float((predictions[:, 0] == labels).mean())}
        else:
            per_sample = pm_k_correct(data.correct(predictions), setting.k)
    elif setting.attack is not None:
        surrogate = models(setting.surrogate) if setting.surrogate is not None else None
        save_to = None
        if save_adversarials is not None:
            save_to = Path(save_adversarials) / case.line / (re.sub(r"[^A-Za-z0-9._-]", "_", setting.name) + ".npz")
        (per_sample, extra), batch_size = fitted(lambda b: attack(
            model, images, labels, setting.attack, seed, b, device, surrogate, save_to, progress), batch_size)
    else:
        predictions, batch_size = fitted(lambda b: predict(model, images, b, device, data.class_subset, amp,
                                                           progress, cache), batch_size)
        per_sample = data.correct(predictions)
        if setting.typographic is not None:
            extra["attack_success_rate"] = float((predictions == written).mean())
    if amp != "off" and setting.attack is None:
        extra["autocast"] = amp
    return CaseResult(case, per_sample.astype(bool), provenance, seed, batch_size,
                      time.perf_counter() - started, extra)
