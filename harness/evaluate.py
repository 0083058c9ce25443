"""case -> CaseResult: stream the setting's data, perturb it, classify, score per sample.

`evaluate(case, model, run)` streams the case's split in pieces of data chunks (harness.stream), lets the
setting's perturbation (harness.shifts.base) make each chunk's inputs (or reads them pre-rendered from the
benchmark), re-cuts them on batch boundaries on a prefetch thread, and scores them through a `CaseScorer`, which
classifies and attacks in batches that fit the device.
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
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from .attacks import COMPONENT, AttackSpec, attack_stats, run_attack
from .cache import ArrayCache
from .cases import Case
from .config import SuiteConfig
from .data import Benchmark, get_benchmark
from .data.base import content_sha256
from .files import write_atomic
from .metrics import pm_k_correct, wilson_interval
from .models import LoadedModel
from .progress import Progress
from .records import CaseRecord, encode_bits, encode_values
from .shifts.base import Inputs, Perturbation, Scored
from .stream import ProvenanceMerge, concatenated, data_blocks, data_chunks, ends_chunk, joined_rows, \
    perturbed_chunks, prefetched, rechunked, scoring_unit, sliced


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What a case is measured with, fixed for the run: the device, the content-addressed cache (None: nothing
    cached), the seed of every perturbation, images per forward pass, autocast ("off", "bf16", "fp16") of
    non-adversarial forward passes, the --data-root folder, the folder adversarial images are saved to (None:
    not saved), `models(id)` to load another model (transfer surrogates), `progress(done, total)` and the
    processes a corruption is computed on (0: the machine's cores shared among xdist workers)."""

    device: torch.device
    cache: ArrayCache | None = None
    seed: int = 0
    batch_size: int = 250
    amp: str = "off"
    data_root: Path | None = None
    save_adversarials: Path | None = None
    models: Callable[[str], LoadedModel] | None = None
    progress: Progress | None = None
    corruption_workers: int = 0

    @classmethod
    def of_suite(cls, suite: SuiteConfig, device: torch.device, cache: ArrayCache,
                 models: Callable[[str], LoadedModel]) -> "RunContext":
        return cls(device, cache, suite.seed, suite.batch_size, suite.amp, suite.data_root, suite.save_adversarials,
                   models, corruption_workers=suite.corruption_workers)


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
    if device.type == "cuda":  # a pinned copy goes to the device without blocking this thread
        pixels = pixels.pin_memory().to(device, non_blocking=True)
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
    """Per sample (N,): `robust` (correct on the adversarial image), `clean_correct`, `norms` (the perturbation's
    norm in the spec's units), `components` a worst case's bits per component attack; `adversarial` uint8
    (N, H, W, 3) when asked for (clamped to [0, 1] first, for the RoZ space)."""

    robust: np.ndarray
    clean_correct: np.ndarray
    norms: np.ndarray
    components: dict[str, np.ndarray]
    adversarial: np.ndarray | None = None

    @property
    def stats(self) -> dict[str, Any]:
        """harness.attacks.attack_stats of this outcome."""
        return attack_stats(self.clean_correct, self.norms, self.components)


def attack(model: LoadedModel, inputs: Inputs, spec: AttackSpec, run: RunContext,
           surrogate: LoadedModel | None = None) -> Attacked:
    """Robust correctness of `inputs` (their images and labels) under `spec` (crafted on `surrogate` when given),
    in float32 whatever `run.amp` says. The batch from sample `inputs.offset + start` of the split is attacked
    under seed `run.seed * 1_000_003 + offset + start`, so a chunk starting on a batch boundary gets the bits the
    whole split would. With `run.save_adversarials`, the adversarial images come back as uint8 pixels (rounded,
    so a re-evaluation of them can differ slightly from the float images that were scored)."""
    images, labels, offset = inputs.images, inputs.data.labels, inputs.offset
    robust, clean, norms, adversarial = [], [], [], []
    components: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(images), run.batch_size):
        pixels = to_pixels(images[start:start + run.batch_size], run.device)
        targets = torch.from_numpy(labels[start:start + run.batch_size]).to(run.device)
        outcome = run_attack(model.classifier, pixels, targets, spec, seed=run.seed * 1_000_003 + offset + start,
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
    return Attacked(np.concatenate(robust), np.concatenate(clean), np.concatenate(norms),
                    {name: np.concatenate(bits) for name, bits in components.items()},
                    np.concatenate(adversarial) if adversarial else None)


def minimal(model: LoadedModel, inputs: Inputs, spec: AttackSpec, bisections: int, run: RunContext) -> np.ndarray:
    """float (N,): each image's minimal flipping budget (harness.minimal.minimal_eps), in batches, float32;
    seeded per batch as `attack` is, from the split index `inputs.offset + start`."""
    from .minimal import minimal_eps

    images, labels, offset = inputs.images, inputs.data.labels, inputs.offset
    values = []
    for start in range(0, len(images), run.batch_size):
        pixels = to_pixels(images[start:start + run.batch_size], run.device)
        targets = torch.from_numpy(labels[start:start + run.batch_size]).to(run.device)
        values.append(minimal_eps(model.classifier, pixels, targets, spec, bisections,
                                  seed=run.seed * 1_000_003 + offset + start).numpy())
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
    the batch on CUDA out-of-memory (`fitted`), for this chunk and the case's later ones; `batch_size` is the
    one used last."""

    def __init__(self, case: Case, model: LoadedModel, run: RunContext):
        self.case, self.model, self.run = case, model, run
        self.batch_size = run.batch_size

    def predictions(self, inputs: Inputs) -> np.ndarray:
        images = inputs.images
        flat = images.reshape(-1, *images.shape[-3:]) if images.ndim == 5 else images
        predictions, self.batch_size = fitted(lambda b: predict(
            self.model, flat, dataclasses.replace(self.run, batch_size=b), inputs.data.class_subset),
            self.batch_size)
        return predictions.reshape(images.shape[:-3])

    def correct(self, inputs: Inputs, k: int | None) -> Scored:
        predictions = self.predictions(inputs)
        correct = inputs.data.correct(predictions)
        return Scored(pm_k_correct(correct, k) if inputs.images.ndim == 5 else correct)

    def attack(self, inputs: Inputs, spec: AttackSpec, surrogate: str | None) -> Scored:
        source = self.run.models(surrogate) if surrogate is not None else None
        labels = inputs.data.labels
        attacked, self.batch_size = fitted(lambda b: attack(
            self.model, inputs, spec, dataclasses.replace(self.run, batch_size=b), source), self.batch_size)
        if attacked.adversarial is not None:
            name = re.sub(r"[^A-Za-z0-9._-]", "_", self.case.setting.name)
            name += ".npz" if inputs.offset == 0 else f".{inputs.offset:08d}.npz"
            save_adversarials(Path(self.run.save_adversarials) / self.case.line / name, attacked, labels)
        return Scored(attacked.robust, columns={"clean_correct": attacked.clean_correct, "norm": attacked.norms,
                                                **{COMPONENT + name: bits for name, bits in attacked.components.items()}})

    def minimal(self, inputs: Inputs, spec: AttackSpec, bisections: int) -> np.ndarray:
        values, self.batch_size = fitted(lambda b: minimal(self.model, inputs, spec, bisections,
                                                           dataclasses.replace(self.run, batch_size=b)),
                                         self.batch_size)
        return values


def _split_inputs(case: Case, model: LoadedModel, run: RunContext,
                  benchmark: Benchmark) -> tuple[Iterator[Inputs], dict[str, Any]]:
    """The case's inputs, streamed, and what its record takes from elsewhere than their pieces' provenance. The
    inputs are its split's pieces (harness.stream), joined into whole data chunks first for a perturbation that
    makes pixels (`Perturbation.per_chunk`), each perturbed by the setting's perturbation; or the benchmark's
    pre-rendered perturbation (ImageNet-C, Stylized-ImageNet) read instead when it has it on disk, recorded
    beside the clean split's record (its hash and unreadable files, which the second part returns)."""
    setting = case.setting
    clean = data_chunks(benchmark, setting.split, setting.samples, run.cache, model.preprocess)
    perturbation = setting.perturbation
    on_disk = None if perturbation is None else perturbed_chunks(benchmark, perturbation.record(), setting.samples,
                                                                  run.cache, model.preprocess)
    if on_disk is None:
        if perturbation is not None and perturbation.per_chunk:
            clean = data_blocks(clean)
        return (perturbation.perturb(Inputs(data, data.images, dict(data.provenance)), model, run)
                if perturbation is not None else Inputs(data, data.images, dict(data.provenance))
                for data in clean), {}
    clean_record = ProvenanceMerge()
    for data in clean:
        clean_record.add(data.provenance, len(data.labels))
    source = clean_record.result()
    fixed = {key: source[key] for key in ("sha256", "unreadable_files") if key in source}
    shared = {key: value for key, value in source.items() if key not in fixed}

    def perturbed() -> Iterator[Inputs]:
        for data in on_disk:
            provenance = {**shared, "n": len(data.labels), "perturbed_source": data.provenance["dataset_path"]}
            if ends_chunk(data):
                provenance["perturbed_sha256"] = data.provenance["sha256"]
            yield Inputs(data, data.images, provenance)

    return perturbed(), fixed


def _hashed(inputs: Inputs) -> Inputs:
    """`inputs` with its pixels made read-only and hashed, on the prefetch thread, so the predictions' cache key
    (`predictions_key`) finds their hash remembered instead of hashing them between forward passes."""
    inputs.images.flags.writeable = False
    content_sha256(inputs.images)
    return inputs


def _scoring_chunks(inputs: Iterator[Inputs], batch_size: int) -> Iterator[Inputs]:
    """Data chunks re-cut to start on batch boundaries of the split (harness.stream.rechunked)."""
    def frames(chunk: Inputs) -> int:
        return chunk.images.shape[1] if chunk.images.ndim == 5 else 1

    def cut(chunk: Inputs, start: int, stop: int) -> Inputs:
        return Inputs(sliced(chunk.data, start, stop), chunk.images[start:stop], chunk.provenance,
                      None if chunk.targets is None else chunk.targets[start:stop])

    def join(chunks: Sequence[Inputs]) -> Inputs:
        if len(chunks) == 1:
            return chunks[0]
        targets = None if chunks[0].targets is None else np.concatenate([chunk.targets for chunk in chunks])
        data = concatenated([chunk.data for chunk in chunks])
        return Inputs(data, joined_rows([chunk.images for chunk in chunks]), chunks[0].provenance, targets)

    return rechunked(inputs, lambda chunk: len(chunk.images), cut, join,
                     lambda chunk: scoring_unit(batch_size, frames(chunk)))


def _scored(case: Case, model: LoadedModel, run: RunContext, scorer: CaseScorer, perturbation: Perturbation,
            inputs: Iterator[Inputs]) -> tuple[Scored, dict[str, Any]]:
    """The joined outcome of `inputs` and their merged provenance; they are decoded, perturbed and re-cut a
    scoring chunk ahead, on another thread, while this one scores."""
    merge, parts = ProvenanceMerge(), []
    for chunk in _scoring_stream(inputs, merge, run.batch_size):
        scorer.run = _chunk_run(run, chunk, case.setting.samples)
        parts.append(perturbation.score(chunk, scorer, case.setting.k))
    scorer.run = run
    if not parts:
        raise ValueError(f"{case.id}: its split {case.setting.split!r} gave no samples")
    return Scored.joined(parts), merge.result()


def _scoring_stream(inputs: Iterator[Inputs], merge: ProvenanceMerge, batch_size: int) -> Iterator[Inputs]:
    """`inputs` re-cut into scoring chunks (`_scoring_chunks`), each hashed, a scoring chunk ahead on the
    prefetch thread (harness.stream.prefetched) while this one scores; the provenance of what `inputs` holds is
    added to `merge` as it passes (`_recorded`)."""
    return prefetched(_hashed(chunk) for chunk in _scoring_chunks(_recorded(inputs, merge), batch_size))


def _recorded(chunks: Iterator[Inputs], merge: ProvenanceMerge) -> Iterator[Inputs]:
    """`chunks`, each one's provenance (a piece's, or a whole data chunk's) added to `merge` as it passes. A stream
    whose last piece carries no hash ended inside a data chunk, whose samples no recorded hash would cover: that
    is refused."""
    ended = True
    for chunk in chunks:
        merge.add(chunk.provenance, len(chunk.images))
        ended = any(key in chunk.provenance for key in ProvenanceMerge.HASHED)
        yield chunk
    if not ended:
        raise ValueError("the split's stream ended inside a data chunk (its last piece carries no sha256), so its "
                         "last samples would be scored but not hashed: the benchmark's stream breaks "
                         "harness.stream's contract")


def _chunk_run(run: RunContext, chunk: Inputs, samples: int) -> RunContext:
    """`run` with its progress counting the whole case's samples for a chunk that starts at `chunk.offset`."""
    if run.progress is None:
        return run
    frames = chunk.images.shape[1] if chunk.images.ndim == 5 else 1
    progress, total = run.progress, max(samples, chunk.offset + len(chunk.images))
    return dataclasses.replace(run, progress=lambda done, _: progress(chunk.offset + done // frames, total))


def _id_accuracy(case: Case, model: LoadedModel, scorer: CaseScorer, benchmark: Benchmark) -> dict[str, Any]:
    """The model's accuracy on the case's in-distribution split over the shift's classes (`Setting.id_split`),
    under the same class-subset restriction as the shift, at the same sample cap."""
    run = scorer.run
    chunks = (Inputs(data, data.images, dict(data.provenance))
              for data in data_chunks(benchmark, case.setting.id_split, case.setting.samples, run.cache,
                                      model.preprocess))
    correct, merge = [], ProvenanceMerge()
    for chunk in _scoring_stream(chunks, merge, run.batch_size):
        correct.append(chunk.data.correct(scorer.predictions(chunk)))
    joined_correct = np.concatenate(correct) if correct else np.zeros(0, bool)
    return {"split": case.setting.id_split, "n": int(joined_correct.size), "correct": int(joined_correct.sum()),
            "accuracy": float(joined_correct.mean()) if joined_correct.size else None, "sha256": merge.result()["sha256"]}


def evaluate(case: Case, model: LoadedModel, run: RunContext, benchmark: Benchmark | None = None) -> CaseResult:
    """Measure `case` on `model` under `run`, streaming its split (harness.stream): a worker holds a few data
    chunks at a time, whatever the split's size, and the per-sample outcome is the one a run holding the whole
    split would give. Attacks always run in float32; other forward passes autocast to `run.amp`, and a case run
    under autocast says so in its metrics (`autocast`). `run.progress(done, total)` is called after each batch.
    A batch that does not fit in GPU memory is halved until it does (`fitted`); the result records the batch
    size used last. `benchmark` is the case's benchmark when the caller already has it (the plugin checks its
    splits before loading the model, and its listings are then reused); by default get_benchmark's."""
    started = time.perf_counter()
    if benchmark is None:
        benchmark = get_benchmark(case.benchmark, run.data_root)
    perturbation = case.setting.perturbation or Perturbation()
    scorer = CaseScorer(case, model, run)
    inputs, fixed = _split_inputs(case, model, run, benchmark)
    scored, provenance = _scored(case, model, run, scorer, perturbation, inputs)
    provenance.update(fixed)
    extra = perturbation.summarize(scored)
    if case.setting.id_split is not None:
        extra["id_on_classes"] = _id_accuracy(case, model, scorer, benchmark)
    if run.amp != "off" and perturbation.autocast:
        extra["autocast"] = run.amp
    return CaseResult(case, scored.per_sample.astype(bool), provenance, run.seed, scorer.batch_size,
                      time.perf_counter() - started, extra, scored.values)
