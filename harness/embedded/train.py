"""Deterministic training of the embedded models.

    python -m harness.embedded.train [--out DIR] [--seed S] [--clip-steps N] ...

Renders the train split, trains (1) a small reference CNN and builds the
adversarially filtered "hard" split from it, (2) the synth-clip open_clip model
contrastively on (image, caption) pairs and (3) the gated SynthCNN with
cross-entropy; then evaluates both gated models on every split. Writes
``checkpoints/*.safetensors``, ``hard_split.json`` and ``training_record.json``
under ``--out`` (default: this package's folder). The same seed gives the same
weights on the same machine and device (deterministic algorithms, fixed thread
count, no TF32); ``--device cuda`` trains on a GPU, where the weights differ from
a CPU run's in the last bits and the record names the device.

``--clip-continue N --clip-restart-steps S ...`` continues the synth-clip checkpoint under ``--out`` (the result
of N cycles) with further cycles of S steps, keeping the CNNs and the hard split; the new record nests the
previous one, so the whole history of the committed weights stays on record.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
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
from torch.nn.attention import SDPBackend, sdpa_kernel
from safetensors.torch import load_file, save_file

from . import CLIP_CONFIG, CLIP_MEAN, CLIP_MODEL_NAME, CLIP_STD, EMBEDDED_DIR
from .benchmark import (CLASSNAMES, FRAMES, HARD_PER_CLASS, RENDERER_VERSION, SPLITS, TEMPLATES,
                        render_candidates, render_split, train_captions)
from .cnn import CNN_MEAN, CNN_STD, SynthCNN

THREADS = 2
CANDIDATE_CHUNK = 1000
MAX_CANDIDATES = 20000
HARD_MARGIN = 0.1
Predictor = Callable[[np.ndarray], np.ndarray]


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


def to_unit(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [0, 1]."""
    x = torch.as_tensor(images)
    return x.permute(0, 3, 1, 2).float().div_(255.0)


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Per-channel ``(x - mean) / std`` for x (N, 3, H, W), on x's device."""
    return ((x - torch.tensor(mean, device=x.device).view(1, 3, 1, 1))
            / torch.tensor(std, device=x.device).view(1, 3, 1, 1))


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mild photometric augmentation of x (N, 3, H, W) in [0, 1]: contrast,
    brightness, Gaussian noise (half the samples) and 3x3 blur (30%); `gen` is
    a generator on x's device."""
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


def train_clip(images: torch.Tensor, labels: torch.Tensor, captions: tuple[str, ...], *, steps: int,
               batch: int, lr: float, seed: int, init: dict[str, torch.Tensor] | None = None,
               device: torch.device = torch.device("cpu")) -> torch.nn.Module:
    """Contrastive training (one warm-up + cosine cycle) from scratch or from ``init``
    (a state_dict); captions of the same class are soft positives. The data moves to `device`
    once; batches are drawn and augmented there from one generator seeded ``seed``."""
    register_clip_config()
    torch.manual_seed(seed)
    model = open_clip.create_model(CLIP_MODEL_NAME)
    if init is not None:
        model.load_state_dict(init)
    model.to(device)
    images, labels = images.to(device), labels.to(device)
    tokens = open_clip.get_tokenizer(CLIP_MODEL_NAME)(list(captions)).to(device)
    optimizer = make_optimizer(model, lr, weight_decay=0.05)
    schedule = cosine_schedule(optimizer, steps, warmup=max(1, steps // 20))
    gen = torch.Generator(device).manual_seed(seed)
    model.train()
    start = time.perf_counter()
    with sdpa_kernel(SDPBackend.MATH) if device.type == "cuda" else contextlib.nullcontext():
        for step, idx in enumerate(batches(len(labels), batch, steps, gen)):
            x = normalize(augment(to_unit(images[idx]), gen), CLIP_MEAN, CLIP_STD)
            img = model.encode_image(x, normalize=True)
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
            if step % 100 == 0 or step == steps - 1:
                print(f"clip step {step}/{steps} loss {loss.item():.3f} ({time.perf_counter() - start:.0f} s)",
                      flush=True)
    return model.eval()


def train_cnn(images: torch.Tensor, labels: torch.Tensor, *, width: int, steps: int, batch: int, lr: float,
              seed: int, name: str, device: torch.device = torch.device("cpu")) -> SynthCNN:
    """Cross-entropy training (label smoothing 0.1) of a SynthCNN on `device` (data, batches and augmentation
    there too)."""
    torch.manual_seed(seed)
    model = SynthCNN(width=width).to(device)
    images, labels = images.to(device), labels.to(device)
    optimizer = make_optimizer(model, lr, weight_decay=0.05)
    schedule = cosine_schedule(optimizer, steps, warmup=max(1, steps // 20))
    gen = torch.Generator(device).manual_seed(seed)
    model.train()
    start = time.perf_counter()
    for step, idx in enumerate(batches(len(labels), batch, steps, gen)):
        x = normalize(augment(to_unit(images[idx]), gen), CNN_MEAN, CNN_STD)
        loss = F.cross_entropy(model(x), labels[idx], label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 200 == 0 or step == steps - 1:
            print(f"{name} step {step}/{steps} loss {loss.item():.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
    return model.eval()


# --------------------------------------------------------------------------- evaluation

def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def zero_shot_head(model: torch.nn.Module, tokenizer) -> torch.Tensor:
    """(C, D) on the model's device: per class, the re-normalized mean of normalized text embeddings over
    TEMPLATES."""
    rows = []
    for name in CLASSNAMES:
        tokens = tokenizer([t.format(name) for t in TEMPLATES]).to(model_device(model))
        emb = model.encode_text(tokens, normalize=True)
        rows.append(F.normalize(emb.mean(dim=0), dim=0))
    return torch.stack(rows)


def clip_predictor(model: torch.nn.Module, tokenizer) -> Predictor:
    """uint8 (N, 64, 64, 3) -> predicted class indices (N,) by zero-shot classification."""
    head = zero_shot_head(model, tokenizer)
    device = model_device(model)

    @torch.no_grad()
    def predict(images: np.ndarray) -> np.ndarray:
        out = [model.encode_image(normalize(to_unit(images[i:i + 500]).to(device), CLIP_MEAN, CLIP_STD),
                                  normalize=True) @ head.T for i in range(0, len(images), 500)]
        return torch.cat(out).argmax(dim=1).cpu().numpy()
    return predict


@torch.no_grad()
def cnn_logits(model: SynthCNN, images: np.ndarray) -> np.ndarray:
    """uint8 (N, 64, 64, 3) -> float32 logits (N, len(CLASSNAMES))."""
    device = model_device(model)
    out = [model(normalize(to_unit(images[i:i + 500]).to(device), CNN_MEAN, CNN_STD))
           for i in range(0, len(images), 500)]
    return torch.cat(out).cpu().numpy()


def cnn_predictor(model: SynthCNN) -> Predictor:
    """uint8 (N, 64, 64, 3) -> predicted class indices (N,)."""
    return lambda images: cnn_logits(model, images).argmax(axis=1)


def frame_accuracies(predict: Predictor, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """pm-0 and pm-4 accuracy for sequences (N, FRAMES, 64, 64, 3)."""
    n = len(labels)
    correct = (predict(images.reshape(n * FRAMES, *images.shape[2:])).reshape(n, FRAMES) == labels[:, None])
    anchor = FRAMES // 2
    return {f"pm{k}": float(correct[:, anchor - k:anchor + k + 1].all(axis=1).mean()) for k in (0, 4)}


def evaluate(predictors: dict[str, Predictor], data: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """{model: {split: accuracy or {"pm0", "pm4"}}} over the rendered evaluation splits."""
    result: dict[str, dict] = {name: {} for name in predictors}
    for split, (images, labels) in data.items():
        for name, predict in predictors.items():
            if images.ndim == 5:
                result[name][split] = frame_accuracies(predict, images, labels)
            else:
                result[name][split] = float((predict(images) == labels).mean())
    return result


# --------------------------------------------------------------------------- hard split

def build_hard_split(reference: SynthCNN, reference_path: Path, seed: int) -> dict:
    """Keep HARD_PER_CLASS candidates per class that the reference misclassifies.

    A candidate is kept when some wrong class out-scores the true class by
    more than HARD_MARGIN (so the error is robust to numerical noise).
    Candidates are rendered in chunks until every class has enough; indices
    are interleaved by class so that label(i) = i % len(CLASSNAMES).
    """
    wrong: list[list[int]] = [[] for _ in CLASSNAMES]
    pool = 0
    while min(map(len, wrong)) < HARD_PER_CLASS:
        if pool >= MAX_CANDIDATES:
            raise RuntimeError(f"only {min(map(len, wrong))} hard candidates per class in {pool}")
        cand = render_candidates(range(pool, pool + CANDIDATE_CHUNK), seed)
        logits = cnn_logits(reference, cand.images)
        true = logits[np.arange(len(cand.labels)), cand.labels]
        logits[np.arange(len(cand.labels)), cand.labels] = -np.inf
        for j in np.flatnonzero(logits.max(axis=1) - true > HARD_MARGIN):
            wrong[int(cand.labels[j])].append(pool + int(j))
        pool += CANDIDATE_CHUNK
    indices = [wrong[c][k] for k in range(HARD_PER_CLASS) for c in range(len(CLASSNAMES))]
    return {"renderer_version": RENDERER_VERSION, "seed": seed, "candidate_pool": pool, "indices": indices,
            "reference_checkpoint_sha256": hashlib.sha256(reference_path.read_bytes()).hexdigest()}


# --------------------------------------------------------------------------- main

def train_clip_schedule(images: torch.Tensor, labels: torch.Tensor, captions: tuple[str, ...], *,
                        schedule: list[int], batch: int, lr: float, seed: int, device: torch.device,
                        after_cycle: Callable[[int, torch.nn.Module], None] | None = None,
                        init: dict[str, torch.Tensor] | None = None, first_cycle: int = 0) -> torch.nn.Module:
    """synth-clip's recipe: cycle 0 trains ``schedule[0]`` steps from scratch (seed ``seed``), every later cycle
    i is a warm restart from the previous cycle's weights seeded ``seed + 2 + i``. To continue a model that
    already went through ``first_cycle`` cycles, pass its state as ``init``: ``schedule`` then lists the steps of
    cycles ``first_cycle``, ``first_cycle + 1``, ... ``after_cycle(i, model)`` is called after each cycle."""
    if (init is None) != (first_cycle == 0):
        raise ValueError("init (a trained state) goes with first_cycle >= 1, and only with it")
    clip, state = None, init
    for cycle, steps in enumerate(schedule, start=first_cycle):
        clip = train_clip(images, labels, captions, steps=steps, batch=batch, lr=lr,
                          seed=seed if cycle == 0 else seed + 2 + cycle, init=state, device=device)
        state = clip.state_dict()
        if after_cycle is not None:
            after_cycle(cycle, clip)
    return clip


def save_clip(model: torch.nn.Module, path: Path, dtype: torch.dtype = torch.float32) -> None:
    save_file({k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}, str(path))


def eval_data(hard: dict, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    data = {}
    for split in SPLITS[1:]:
        rendered = render_candidates(hard["indices"], seed) if split == "hard" else render_split(split, seed=seed)
        data[split] = (rendered.images, rendered.labels)
    return data


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
        record = {"command": shlex.join(["python", "-m", "harness.embedded.train",
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
    images, labels = torch.from_numpy(train.images), torch.from_numpy(train.labels)
    captions = train_captions(args.train_size, seed=args.seed)
    walls["render_train"] = time.perf_counter() - t0

    if args.clip_continue:
        hard = json.loads((args.out / "hard_split.json").read_text())
    else:
        t0 = time.perf_counter()
        reference = train_cnn(images, labels, width=args.reference_width, steps=args.reference_steps, batch=128,
                              lr=3e-3, seed=args.seed + 1, name="reference", device=args.device)
        reference.save(ckpt_dir / "reference-cnn.safetensors")
        walls["reference_cnn"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        hard = build_hard_split(reference, ckpt_dir / "reference-cnn.safetensors", args.seed)
        (args.out / "hard_split.json").write_text(json.dumps(hard) + "\n")
        walls["hard_split"] = time.perf_counter() - t0

    data = eval_data(hard, args.seed)
    cycle_accuracy: list[float] = []
    clip_path = ckpt_dir / f"{CLIP_MODEL_NAME}.safetensors"

    def monitor(cycle: int, model: torch.nn.Module) -> None:
        tokenizer = open_clip.get_tokenizer(CLIP_MODEL_NAME)
        test_images, test_labels = data["test"]
        cycle_accuracy.append(float((clip_predictor(model, tokenizer)(test_images) == test_labels).mean()))
        print(f"synth-clip after cycle {cycle + 1}: test accuracy {cycle_accuracy[-1]:.3f}", flush=True)
        save_clip(model, clip_path)  # an interrupted run keeps its last cycle

    if args.clip_continue:
        schedule, init = args.clip_restart_steps, load_file(str(clip_path))
        continued = {"checkpoint_sha256": hashlib.sha256(clip_path.read_bytes()).hexdigest(),
                     "cycles_done": args.clip_continue}
    else:
        schedule, init, continued = [args.clip_steps, *args.clip_restart_steps], None, None
    t0 = time.perf_counter()
    clip = train_clip_schedule(images, labels, captions, schedule=schedule, batch=args.batch, lr=args.clip_lr,
                               seed=args.seed, device=args.device, after_cycle=monitor, init=init,
                               first_cycle=args.clip_continue)
    save_clip(clip, clip_path)
    walls["synth_clip"] = time.perf_counter() - t0

    if args.clip_continue:
        cnn = SynthCNN.load(ckpt_dir / "synth-cnn.safetensors").to(args.device)
    else:
        t0 = time.perf_counter()
        cnn = train_cnn(images, labels, width=SynthCNN().width, steps=args.cnn_steps, batch=128, lr=3e-3,
                        seed=args.seed + 2, name="synth-cnn", device=args.device)
        cnn.save(ckpt_dir / "synth-cnn.safetensors")
        walls["synth_cnn"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    clip_loaded, tokenizer = load_clip(clip_path)
    clip_loaded.to(args.device)
    accuracies = evaluate({"synth-clip": clip_predictor(clip_loaded, tokenizer), "synth-cnn": cnn_predictor(cnn)},
                          data)
    walls["evaluation"] = time.perf_counter() - t0

    record = {
        "seed": args.seed, "renderer_version": RENDERER_VERSION, "torch_version": torch.__version__,
        "open_clip_version": open_clip.__version__, "device": device_description(args.device),
        "threads": THREADS, "train_size": args.train_size,
        "steps": {"synth_clip": schedule} if continued else {
            "synth_clip": schedule, "synth_cnn": args.cnn_steps, "reference_cnn": args.reference_steps},
        "batch": args.batch, "clip_lr": args.clip_lr,
        "widths": {"synth_cnn": cnn.width, "reference_cnn": args.reference_width},
        "wall_time_s": {k: round(v, 1) for k, v in walls.items()},
        "hard_candidate_pool": hard["candidate_pool"],
        "synth_clip_test_accuracy_after_each_cycle": cycle_accuracy,
        "chance_accuracy": 1.0 / len(CLASSNAMES),
        "accuracy": accuracies,
    }
    if continued:
        record["synth_clip_continued_from"] = continued
        record["previous_stage"] = json.loads((args.out / "training_record.json").read_text())
    return record


if __name__ == "__main__":
    main()
