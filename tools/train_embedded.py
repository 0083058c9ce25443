"""Deterministic training of the embedded models.

    python -m tools.train_embedded [--out DIR] [--seed S] [--clip-steps N] ...

Renders the train split, trains (1) a small reference CNN and builds the
adversarially filtered "hard" split from it, (2) the synth-clip open_clip model
contrastively on (image, caption) pairs and (3) the gated SynthCNN with
cross-entropy; then evaluates both gated models on every split with the
harness's own classifiers (zero-shot head, in-model normalization, pm-k). Writes
``checkpoints/*.safetensors``, ``hard_split.json`` and ``training_record.json``
under ``--out`` (default: the harness's embedded folder). The same seed gives the
same weights on the same machine and device (deterministic algorithms, fixed
thread count, no TF32); ``--device cuda`` trains on a GPU, where the weights
differ from a CPU run's in the last bits and the record names the device.

``--clip-continue N --clip-restart-steps S ...`` continues the synth-clip checkpoint under ``--out`` (the result
of N cycles) with further cycles of S steps, keeping the CNNs and the hard split; the new record nests the
previous one, so the whole history of the committed weights stays on record.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import shlex
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch.nn.attention import SDPBackend, sdpa_kernel

from harness.embedded import CLIP_CONFIG, CLIP_MEAN, CLIP_MODEL_NAME, CLIP_STD, EMBEDDED_DIR
from harness.embedded.renderer import (CLASSNAMES, HARD_PER_CLASS, RENDERER_VERSION, SPLITS, render_candidates,
                                        render_split, train_captions)
from harness.embedded.cnn import CNN_MEAN, CNN_STD, SynthCNN
from harness.evaluate import RunContext, classify, to_pixels
from harness.files import sha256_file
from harness.metrics import pm_k_correct
from harness.models.base import PixelClassifier
from harness.models.embedded import clip_classifier

THREADS = 2
CANDIDATE_CHUNK = 1000
MAX_CANDIDATES = 20000
HARD_MARGIN = 0.1
EVAL_BATCH = 500


@dataclasses.dataclass(frozen=True)
class TrainingSet:
    """The rendered train split: uint8 `images` (N, 64, 64, 3), int64 `labels` (N,), a caption per image (CLIP)."""

    images: torch.Tensor
    labels: torch.Tensor
    captions: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Cycle:
    """One warm-up + cosine cycle: `steps` AdamW steps of `batch` samples at peak learning rate `lr`; the model's
    initialization, the batches and the augmentation all draw from `seed`."""

    steps: int
    batch: int
    lr: float
    seed: int


@dataclasses.dataclass(frozen=True)
class ClipSchedule:
    """synth-clip's recipe: a cycle of `steps[0]` steps from scratch seeded `seed`, then warm restarts of
    `steps[1:]` steps, restart i seeded `seed + 2 + i`. With `resume`, a checkpoint that already went through
    `resume[1]` cycles continues with cycles numbered from there."""

    steps: tuple[int, ...]
    batch: int
    lr: float
    seed: int
    resume: tuple[dict[str, torch.Tensor], int] | None = None

    def __post_init__(self) -> None:
        if self.resume is not None and self.resume[1] < 1:
            raise ValueError("resume holds a trained state and the number of cycles it went through (>= 1)")

    def cycles(self) -> list[tuple[int, Cycle]]:
        first = 0 if self.resume is None else self.resume[1]
        return [(number, Cycle(steps, self.batch, self.lr, self.seed if number == 0 else self.seed + 2 + number))
                for number, steps in enumerate(self.steps, start=first)]


def seed_everything(seed: int, device: torch.device = torch.device("cpu")) -> None:
    """Seed torch and fix threads/algorithms for bitwise-reproducible training on `device`.

    On CUDA, cuBLAS gets a fixed workspace and TF32 is off; an op without a deterministic CUDA kernel warns
    instead of failing (``main`` records such warnings in the training record). ``train_clip`` runs attention
    through the math kernel on CUDA: the memory-efficient kernel's backward is not deterministic."""
    torch.manual_seed(seed)
    torch.set_num_threads(THREADS)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mild photometric augmentation of x (N, 3, H, W) in [0, 1]: contrast, brightness, Gaussian noise (half the
    samples) and 3x3 blur (30%); `gen` is a generator on x's device."""
    n = x.shape[0]
    u = lambda: torch.rand(n, 1, 1, 1, generator=gen, device=x.device)  # noqa: E731
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * (0.75 + 0.5 * u()) + mean) * (0.8 + 0.4 * u())
    blurred = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    x = torch.where(u() < 0.3, blurred, x)
    noise_std = 0.06 * u() * (u() < 0.5)
    x = x + noise_std * torch.randn(x.shape, generator=gen, device=x.device)
    return x.clamp_(0.0, 1.0)


def cosine_schedule(optimizer: torch.optim.Optimizer, steps: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices/kernels only (not on norms, biases, scales)."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.98))


def batches(n: int, batch: int, steps: int, gen: torch.Generator):
    """Yield ``steps`` index batches, epoch-wise shuffled (on gen's device)."""
    perm = torch.randperm(n, generator=gen, device=gen.device)
    pos = 0
    for _ in range(steps):
        if pos + batch > n:
            perm, pos = torch.randperm(n, generator=gen, device=gen.device), 0
        yield perm[pos:pos + batch]
        pos += batch


# --------------------------------------------------------------------------- models

def register_clip_config() -> None:
    """Make the synth-clip config known to open_clip's factory."""
    open_clip.add_model_config(CLIP_CONFIG)


def load_clip(checkpoint: str | Path):
    """(model in eval mode, tokenizer) through open_clip's factory from a checkpoint."""
    register_clip_config()
    model, _, _ = open_clip.create_model_and_transforms(CLIP_MODEL_NAME, pretrained=str(checkpoint))
    return model.eval(), open_clip.get_tokenizer(CLIP_MODEL_NAME)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def train_clip(data: TrainingSet, cycle: Cycle, init: dict[str, torch.Tensor] | None = None,
               device: torch.device = torch.device("cpu")) -> torch.nn.Module:
    """Contrastive training (one cycle) from scratch or from ``init`` (a state_dict); captions of the same class
    are soft positives. Images are normalized as the harness's PixelClassifier does, inside the image tower's
    wrapper. The data moves to `device` once; batches are drawn and augmented there from one generator."""
    register_clip_config()
    torch.manual_seed(cycle.seed)
    model = open_clip.create_model(CLIP_MODEL_NAME)
    if init is not None:
        model.load_state_dict(init)
    model.to(device)
    image_tower = PixelClassifier(model.visual, CLIP_MEAN, CLIP_STD).to(device)
    images, labels = data.images.to(device), data.labels.to(device)
    tokens = open_clip.get_tokenizer(CLIP_MODEL_NAME)(list(data.captions)).to(device)
    optimizer = make_optimizer(model, cycle.lr, weight_decay=0.05)
    schedule = cosine_schedule(optimizer, cycle.steps, warmup=max(1, cycle.steps // 20))
    gen = torch.Generator(device).manual_seed(cycle.seed)
    model.train()
    start = time.perf_counter()
    with sdpa_kernel(SDPBackend.MATH) if device.type == "cuda" else contextlib.nullcontext():
        for step, idx in enumerate(batches(len(labels), cycle.batch, cycle.steps, gen)):
            img = F.normalize(image_tower(augment(to_pixels(images[idx], device, contiguous=False), gen)), dim=-1)
            txt = model.encode_text(tokens[idx], normalize=True)
            logits = model.logit_scale.exp() * img @ txt.T
            same = (labels[idx, None] == labels[None, idx]).float()
            target = same / same.sum(dim=1, keepdim=True)
            loss = 0.5 * (soft_cross_entropy(logits, target) + soft_cross_entropy(logits.T, target))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0.0, math.log(100.0))
            if step % 100 == 0 or step == cycle.steps - 1:
                print(f"clip step {step}/{cycle.steps} loss {loss.item():.3f} ({time.perf_counter() - start:.0f} s)",
                      flush=True)
    return model.eval()


def train_cnn(data: TrainingSet, cycle: Cycle, width: int, name: str,
              device: torch.device = torch.device("cpu")) -> SynthCNN:
    """Cross-entropy training (label smoothing 0.1) of a SynthCNN of `width` on `device` (data, batches and
    augmentation there too), through the harness's PixelClassifier normalization; `name` labels the log."""
    torch.manual_seed(cycle.seed)
    model = SynthCNN(width=width).to(device)
    classifier = cnn_classifier(model).to(device)
    images, labels = data.images.to(device), data.labels.to(device)
    optimizer = make_optimizer(model, cycle.lr, weight_decay=0.05)
    schedule = cosine_schedule(optimizer, cycle.steps, warmup=max(1, cycle.steps // 20))
    gen = torch.Generator(device).manual_seed(cycle.seed)
    model.train()
    start = time.perf_counter()
    for step, idx in enumerate(batches(len(labels), cycle.batch, cycle.steps, gen)):
        loss = F.cross_entropy(classifier(augment(to_pixels(images[idx], device, contiguous=False), gen)),
                               labels[idx], label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 200 == 0 or step == cycle.steps - 1:
            print(f"{name} step {step}/{cycle.steps} loss {loss.item():.3f} ({time.perf_counter() - start:.0f} s)",
                  flush=True)
    return model.eval()


def train_clip_schedule(data: TrainingSet, schedule: ClipSchedule, device: torch.device,
                        after_cycle: Callable[[int, torch.nn.Module], None] | None = None) -> torch.nn.Module:
    """synth-clip trained cycle by cycle (`ClipSchedule`), each from the previous cycle's weights;
    ``after_cycle(number, model)`` is called after each."""
    clip, state = None, None if schedule.resume is None else schedule.resume[0]
    for number, cycle in schedule.cycles():
        clip = train_clip(data, cycle, init=state, device=device)
        state = clip.state_dict()
        if after_cycle is not None:
            after_cycle(number, clip)
    return clip


def save_clip(model: torch.nn.Module, path: Path, dtype: torch.dtype = torch.float32) -> None:
    save_file({k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}, str(path))


# --------------------------------------------------------------------------- evaluation, with the harness's classifiers

Classifier = Callable[[np.ndarray], np.ndarray]  # uint8 (N, 64, 64, 3) -> predicted class indices (N,)


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def cnn_classifier(model: SynthCNN) -> PixelClassifier:
    return PixelClassifier(model, CNN_MEAN, CNN_STD)


def predictor(classifier: PixelClassifier) -> Classifier:
    """Predicted classes of uint8 images, by the harness's own batched classification on the model's device."""
    run = RunContext(model_device(classifier), batch_size=EVAL_BATCH)
    return lambda images: classify(classifier.eval(), images, run)


def clip_predictor(model: torch.nn.Module, tokenizer) -> Classifier:
    """Zero-shot classification through the harness's synth-clip classifier (its head over TEMPLATES)."""
    return predictor(clip_classifier(model, tokenizer, model_device(model)))


def cnn_predictor(model: SynthCNN) -> Classifier:
    return predictor(cnn_classifier(model).to(model_device(model)))


def accuracies(predictors: dict[str, Classifier], data: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """{model: {split: top-1 accuracy, or {"pm0", "pm4"} of frame sequences (N, F, 64, 64, 3)}}."""
    result: dict[str, dict] = {name: {} for name in predictors}
    for split, (images, labels) in data.items():
        for name, predict in predictors.items():
            if images.ndim == 5:
                n, frames = images.shape[:2]
                correct = predict(images.reshape(n * frames, *images.shape[2:])).reshape(n, frames) == labels[:, None]
                result[name][split] = {f"pm{k}": float(pm_k_correct(correct, k).mean()) for k in (0, 4)}
            else:
                result[name][split] = float((predict(images) == labels).mean())
    return result


# --------------------------------------------------------------------------- hard split

def build_hard_split(reference: SynthCNN, reference_path: Path, seed: int) -> dict:
    """Keep HARD_PER_CLASS candidates per class that the reference misclassifies.

    A candidate is kept when some wrong class out-scores the true class by more than HARD_MARGIN (so the error is
    robust to numerical noise). Candidates are rendered in chunks until every class has enough; indices are
    interleaved by class so that label(i) = i % len(CLASSNAMES).
    """
    classifier = cnn_classifier(reference).to(model_device(reference)).eval()
    wrong: list[list[int]] = [[] for _ in CLASSNAMES]
    pool = 0
    while min(map(len, wrong)) < HARD_PER_CLASS:
        if pool >= MAX_CANDIDATES:
            raise RuntimeError(f"only {min(map(len, wrong))} hard candidates per class in {pool}")
        cand = render_candidates(range(pool, pool + CANDIDATE_CHUNK), seed)
        with torch.no_grad():
            logits = torch.cat([classifier(to_pixels(cand.images[i:i + EVAL_BATCH], model_device(reference),
                                                     contiguous=False))
                                for i in range(0, len(cand.images), EVAL_BATCH)]).cpu().numpy()
        true = logits[np.arange(len(cand.labels)), cand.labels]
        logits[np.arange(len(cand.labels)), cand.labels] = -np.inf
        for j in np.flatnonzero(logits.max(axis=1) - true > HARD_MARGIN):
            wrong[int(cand.labels[j])].append(pool + int(j))
        pool += CANDIDATE_CHUNK
    indices = [wrong[c][k] for k in range(HARD_PER_CLASS) for c in range(len(CLASSNAMES))]
    return {"renderer_version": RENDERER_VERSION, "seed": seed, "candidate_pool": pool, "indices": indices,
            "reference_checkpoint_sha256": sha256_file(reference_path)}


def eval_data(hard: dict, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    data = {}
    for split in SPLITS[1:]:
        rendered = render_candidates(hard["indices"], seed) if split == "hard" else render_split(split, seed=seed)
        data[split] = (rendered.images, rendered.labels)
    return data


# --------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=EMBEDDED_DIR)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-size", type=int, default=20000)
    p.add_argument("--clip-steps", type=int, default=1300)
    p.add_argument("--clip-restart-steps", type=int, nargs="*", default=[600, 2400, 2400, 2400],
                   help="steps of each further cosine cycle (warm restart from the previous cycle's weights)")
    p.add_argument("--cnn-steps", type=int, default=700)
    p.add_argument("--reference-steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--clip-lr", type=float, default=1.5e-3)
    p.add_argument("--reference-width", type=int, default=12)
    p.add_argument("--device", type=torch.device, default=torch.device("cpu"),
                   help="where the models train and are evaluated (cpu, cuda, cuda:1); the record names it")
    p.add_argument("--clip-continue", type=int, metavar="CYCLES_DONE", default=0,
                   help="continue the synth-clip checkpoint under --out, which went through CYCLES_DONE cycles, "
                        "with the cycles in --clip-restart-steps; the CNNs and the hard split are kept, and the "
                        "previous training record is nested in the new one")
    args = p.parse_args(argv)
    if args.clip_continue < 0:
        p.error("--clip-continue takes the number of cycles the checkpoint went through (>= 1)")
    return args


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda})"
    return f"{device} ({THREADS} threads)"


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    seed_everything(args.seed, args.device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = {"command": shlex.join(["python", "-m", "tools.train_embedded",
                                         *(sys.argv[1:] if argv is None else argv)]), **train_all(args)}
    nondeterministic = sorted({str(w.message).split("\n")[0] for w in caught
                               if "deterministic" in str(w.message)})
    record["nondeterministic_ops"] = nondeterministic
    (args.out / "training_record.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return record


def train_all(args: argparse.Namespace) -> dict:
    """Every stage of ``main``; returns the training record."""
    ckpt_dir = args.out / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    walls: dict[str, float] = {}

    t0 = time.perf_counter()
    train = render_split("train", args.train_size, seed=args.seed)
    data = TrainingSet(torch.from_numpy(train.images), torch.from_numpy(train.labels),
                       train_captions(args.train_size, seed=args.seed))
    walls["render_train"] = time.perf_counter() - t0

    if args.clip_continue:
        hard = json.loads((args.out / "hard_split.json").read_text())
    else:
        t0 = time.perf_counter()
        reference = train_cnn(data, Cycle(args.reference_steps, 128, 3e-3, args.seed + 1), args.reference_width,
                              "reference", args.device)
        reference.save(ckpt_dir / "reference-cnn.safetensors")
        walls["reference_cnn"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        hard = build_hard_split(reference, ckpt_dir / "reference-cnn.safetensors", args.seed)
        (args.out / "hard_split.json").write_text(json.dumps(hard) + "\n")
        walls["hard_split"] = time.perf_counter() - t0

    evaluation = eval_data(hard, args.seed)
    cycle_accuracy: list[float] = []
    clip_path = ckpt_dir / f"{CLIP_MODEL_NAME}.safetensors"

    def monitor(cycle: int, model: torch.nn.Module) -> None:
        tokenizer = open_clip.get_tokenizer(CLIP_MODEL_NAME)
        test_images, test_labels = evaluation["test"]
        cycle_accuracy.append(float((clip_predictor(model, tokenizer)(test_images) == test_labels).mean()))
        print(f"synth-clip after cycle {cycle + 1}: test accuracy {cycle_accuracy[-1]:.3f}", flush=True)
        save_clip(model, clip_path)  # an interrupted run keeps its last cycle

    if args.clip_continue:
        steps = tuple(args.clip_restart_steps)
        resume = (load_file(str(clip_path)), args.clip_continue)
        continued = {"checkpoint_sha256": sha256_file(clip_path), "cycles_done": args.clip_continue}
    else:
        steps, resume, continued = (args.clip_steps, *args.clip_restart_steps), None, None
    t0 = time.perf_counter()
    clip = train_clip_schedule(data, ClipSchedule(steps, args.batch, args.clip_lr, args.seed, resume), args.device,
                               after_cycle=monitor)
    save_clip(clip, clip_path)
    walls["synth_clip"] = time.perf_counter() - t0

    if args.clip_continue:
        cnn = SynthCNN.load(ckpt_dir / "synth-cnn.safetensors").to(args.device)
    else:
        t0 = time.perf_counter()
        cnn = train_cnn(data, Cycle(args.cnn_steps, 128, 3e-3, args.seed + 2), SynthCNN().width, "synth-cnn",
                        args.device)
        cnn.save(ckpt_dir / "synth-cnn.safetensors")
        walls["synth_cnn"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    clip_loaded, tokenizer = load_clip(clip_path)
    clip_loaded.to(args.device)
    measured = accuracies({"synth-clip": clip_predictor(clip_loaded, tokenizer), "synth-cnn": cnn_predictor(cnn)},
                          evaluation)
    walls["evaluation"] = time.perf_counter() - t0

    record = {
        "seed": args.seed, "renderer_version": RENDERER_VERSION, "torch_version": torch.__version__,
        "open_clip_version": open_clip.__version__, "device": device_description(args.device),
        "threads": THREADS, "train_size": args.train_size,
        "steps": {"synth_clip": list(steps)} if continued else {
            "synth_clip": list(steps), "synth_cnn": args.cnn_steps, "reference_cnn": args.reference_steps},
        "batch": args.batch, "clip_lr": args.clip_lr,
        "widths": {"synth_cnn": cnn.width, "reference_cnn": args.reference_width},
        "wall_time_s": {k: round(v, 1) for k, v in walls.items()},
        "hard_candidate_pool": hard["candidate_pool"],
        "synth_clip_test_accuracy_after_each_cycle": cycle_accuracy,
        "chance_accuracy": 1.0 / len(CLASSNAMES),
        "accuracy": measured,
    }
    if continued:
        record["synth_clip_continued_from"] = continued
        record["previous_stage"] = json.loads((args.out / "training_record.json").read_text())
    return record


if __name__ == "__main__":
    main()
