"""case -> CaseResult: load the setting's data, perturb it, classify, score per sample."""
from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import torch

from .attacks import attack_batch
from .cache import ArrayCache
from .cases import Case
from .data import EvalData, get_benchmark
from .data.base import content_sha256
from .metrics import pm_k_correct, wilson_interval
from .models import LoadedModel
from .shifts.corruptions import corrupted


@dataclasses.dataclass(frozen=True)
class CaseResult:
    """What one case measured. `per_sample` is bool (n,): sample i scored correct under the setting's metric."""

    case: Case
    per_sample: np.ndarray
    data: dict[str, Any]
    seed: int
    batch_size: int
    duration_s: float

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
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [0, 1] on `device`."""
    return torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float().div_(255.0)


def predict(model: LoadedModel, images: np.ndarray, labels: np.ndarray, case: Case, seed: int,
            batch_size: int, device: torch.device) -> np.ndarray:
    """Predicted class indices (N,) for still images (N, H, W, 3), attacked first when the setting has an attack."""
    attack = case.setting.attack
    predictions = []
    for start in range(0, len(images), batch_size):
        pixels = _to_pixels(images[start:start + batch_size], device)
        if attack is not None:
            targets = torch.from_numpy(labels[start:start + batch_size]).to(device)
            pixels = attack_batch(model.classifier, pixels, targets, attack, seed=seed * 1_000_003 + start)
        with torch.no_grad():
            predictions.append(model.classifier(pixels).argmax(dim=1).cpu().numpy())
    return np.concatenate(predictions)


def evaluate(case: Case, model: LoadedModel, cache: ArrayCache, seed: int, batch_size: int,
             device: torch.device) -> CaseResult:
    started = time.perf_counter()
    setting = case.setting
    data: EvalData = get_benchmark(case.benchmark).load(setting.split, setting.samples, cache)
    images = data.images
    provenance = dict(data.provenance)
    if setting.corruption is not None:
        images = corrupted(images, provenance["sha256"], setting.corruption, setting.severity, seed, cache)
        provenance["perturbed_sha256"] = content_sha256(images)

    if data.is_sequence:
        n, frames = images.shape[:2]
        flat = images.reshape(n * frames, *images.shape[2:])
        predictions = predict(model, flat, np.repeat(data.labels, frames), case, seed, batch_size, device)
        per_sample = pm_k_correct(predictions.reshape(n, frames) == data.labels[:, None], setting.k)
    else:
        per_sample = predict(model, images, data.labels, case, seed, batch_size, device) == data.labels
    return CaseResult(case, per_sample.astype(bool), provenance, seed, batch_size,
                      time.perf_counter() - started)
