"""GPU check: the harness on a random-weight ViT-B-32 at 224 px over a generated 1,000-image ImageNet-layout set.

    python benchmarks/gpu_check.py [--device cuda] [--images 1000] [--batch-size 250] [--json FILE]

Writes random ViT-B-32 weights to a local file and a miniature ImageNet val tree (one JPEG per class, rendered
by the embedded benchmark and upscaled to 320x240, then filed under the class the model predicts for it, so that
every image is classified correctly and attacked) to a temporary folder, loads both through the real paths
(`openclip:ViT-B-32@<file>`, `--data-root`), and times a clean case in float32 and under bf16 autocast, a PGD-10
(L-inf 1/255) and a corruption (gaussian_noise, severity 3) case through `harness.evaluate`, each against a bare
loop of the same model over the same preprocessed tensors already on the device. The harness reads its decoded
(and corrupted) pixels from the cache, as a warm run does, but computes every prediction (`PixelsOnlyCache`).
Prints images/s and the harness-to-bare ratio per case against the targets (clean at most 1.10, PGD at most
1.05). Meant to finish within 5 minutes on one GPU; runs on CPU too (slowly).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import open_clip
import torch
import torchattacks
from PIL import Image
from safetensors.torch import save_file

from harness.attacks import Attack, parse_attack
from harness.cache import ArrayCache
from harness.cases import Case, Setting
from harness.data import get_benchmark
from harness.embedded.renderer import render_split
from harness.evaluate import RunContext, evaluate, predict
from harness.models import load_model
from harness.shifts.corruptions import Corruption, corrupted, recipe


def write_tree(root: Path, images: int) -> None:
    """`<root>/imagenet/val/<wnid>/*.JPEG`: 1000 class folders, the first `images` (<= 1000) holding one JPEG
    each, and a manifest.json stating the count (a deliberately reduced tree)."""
    val = root / "imagenet" / "val"
    wnids = [f"n{i:08d}" for i in range(1000)]
    for wnid in wnids:
        (val / wnid).mkdir(parents=True, exist_ok=True)
    rendered = render_split("test", images).images
    for i in range(images):
        picture = Image.fromarray(rendered[i]).resize((320, 240), Image.Resampling.BICUBIC)
        picture.save(val / wnids[i] / f"ILSVRC2012_val_{i:08d}.JPEG", quality=90)
    (root / "imagenet" / "manifest.json").write_text(json.dumps({"expected_images": images}))


def relabel_to_predictions(root: Path, labels: np.ndarray, predictions: np.ndarray) -> None:
    """Move each image of the tree written by `write_tree` into the folder of the class it is predicted as, so
    that the random-weight model classifies every image correctly: the harness attacks only correctly classified
    images, and a PGD case over a random model's 0.1% would time nothing. `labels` and `predictions` are per
    loaded image; every class folder holds at most one image (images <= 1000)."""
    val = root / "imagenet" / "val"
    wnids = [f"n{i:08d}" for i in range(1000)]
    moves = []
    for label, predicted in zip(labels, predictions):
        (source,) = (val / wnids[label]).glob("*.JPEG")
        moves.append((source, val / wnids[predicted] / source.name))
    for source, target in moves:
        source.rename(target)


class PixelsOnlyCache(ArrayCache):
    """A cache that serves pixels but recomputes predictions, so a timed case does its forward passes."""

    def get_or_compute(self, key, compute, remember=True, pixels=False):
        if key.get("kind") == "predictions":
            return compute()
        return super().get_or_compute(key, compute, remember, pixels)


TARGETS = {"clean": 1.10, "clean bf16": 1.10, "pgd-linf-1/255 (10 steps)": 1.05}


def synchronized(device: torch.device, function) -> float:
    """Wall seconds of `function()`, with the device's queued work finished before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", type=torch.device,
                        default=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args()
    if not 1 <= args.images <= 1000:
        parser.error("--images must be in 1..1000: the generated tree holds at most one image per class")
    device, batch, n = args.device, args.batch_size, args.images
    rows: list[dict] = []
    with TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        started = time.perf_counter()
        torch.manual_seed(0)
        weights = tmp_path / "vit-b-32-random.safetensors"
        save_file({k: v.contiguous() for k, v in open_clip.create_model("ViT-B-32").state_dict().items()},
                  str(weights))
        write_tree(tmp_path / "data", n)
        setup_s = time.perf_counter() - started

        started = time.perf_counter()
        model = load_model(f"openclip:ViT-B-32@{weights}", device)
        load_s = time.perf_counter() - started
        data_root = tmp_path / "data"
        data = get_benchmark("imagenet", data_root).load("val", n, ArrayCache(tmp_path / "unlabelled"),
                                                         model.preprocess)
        relabel_to_predictions(data_root, data.labels, predict(model, data.images, RunContext(device, batch_size=batch)))
        cache = PixelsOnlyCache(tmp_path / "cache")
        data = get_benchmark("imagenet", data_root).load("val", n, cache, model.preprocess)
        pixels = torch.from_numpy(data.images.copy()).to(device).permute(0, 3, 1, 2).float().div(255).contiguous()
        labels = torch.from_numpy(data.labels.copy()).to(device)

        def case(setting: Setting) -> Case:
            return Case(str(model.model_id), model.model_id.line, "imagenet", setting)

        def harness_run(setting: Setting, amp: str = "off"):
            return lambda: evaluate(case(setting), model, RunContext(device, cache, 0, batch, amp=amp,
                                                                     data_root=data_root))

        def bare_clean(inputs: torch.Tensor, autocast: bool = False):
            def run():
                with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=autocast):
                    for start in range(0, len(inputs), batch):
                        model.classifier(inputs[start:start + batch]).argmax(1).cpu()
            return run

        spec = parse_attack("pgd-linf-1/255")

        def bare_pgd():
            attack = torchattacks.PGD(model.classifier, eps=spec.eps, alpha=spec.alpha, steps=spec.steps)
            for start in range(0, n, batch):
                adversarial = attack(pixels[start:start + batch], labels[start:start + batch])
                with torch.no_grad():
                    model.classifier(adversarial).argmax(1).cpu()

        clean = Setting("clean", "val", "val", n)
        synchronized(device, harness_run(clean))  # warm: kernels, cached decode
        synchronized(device, bare_clean(pixels))
        corruption = Setting("synthetic", "gaussian_noise-3", "val", n, perturbation=Corruption("gaussian_noise", 3))
        cold_corruption_s = synchronized(device, harness_run(corruption))
        noisy = corrupted(data.images, recipe(data.provenance["sha256"], "gaussian_noise", 3, 0), cache)
        noisy_pixels = torch.from_numpy(noisy.copy()).to(device).permute(0, 3, 1, 2).float().div(255).contiguous()
        measured = [
            ("clean", harness_run(clean), bare_clean(pixels)),
            ("clean bf16", harness_run(clean, "bf16"), bare_clean(pixels, autocast=True)),
            ("pgd-linf-1/255 (10 steps)", harness_run(Setting("adversarial", spec.name, "val", n, perturbation=Attack(spec))),
             bare_pgd),
            ("gaussian_noise-3 (cached)", harness_run(corruption), bare_clean(noisy_pixels)),
        ]
        clean_accuracy = harness_run(clean)().accuracy
        for name, ours, bare in measured:
            ours_s = min(synchronized(device, ours) for _ in range(2))
            bare_s = min(synchronized(device, bare) for _ in range(2))
            rows.append({"case": name, "harness_s": ours_s, "bare_s": bare_s, "harness_images_per_s": n / ours_s,
                         "bare_images_per_s": n / bare_s, "ratio": ours_s / bare_s})

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"ViT-B-32 (random weights), 224 px, {n} images, batch {batch}, {name}, torch {torch.__version__}")
    print(f"set-up {setup_s:.1f} s (weights + tree), model load with 1000x80-prompt head {load_s:.1f} s, "
          f"corruption case cold (CPU corruption) {cold_corruption_s:.1f} s")
    print(f"clean accuracy {clean_accuracy:.3f} (images filed under the random model's own predictions, so every "
          f"image is attacked)")
    print(f"{'case':<28} {'harness img/s':>14} {'bare img/s':>11} {'ratio':>6}  target")
    for row in rows:
        target = TARGETS.get(row["case"])
        verdict = "" if target is None else f"<= {target:.2f}, {'met' if row['ratio'] <= target else 'NOT met'}"
        print(f"{row['case']:<28} {row['harness_images_per_s']:>14.1f} {row['bare_images_per_s']:>11.1f} "
              f"{row['ratio']:>6.2f}  {verdict}")
    if args.json:
        args.json.write_text(json.dumps({
            "device": name, "torch": torch.__version__, "images": n, "batch_size": batch, "setup_s": setup_s,
            "model_load_s": load_s, "corruption_cold_s": cold_corruption_s, "clean_accuracy": clean_accuracy,
            "rows": rows, "targets": TARGETS}, indent=2) + "\n")


if __name__ == "__main__":
    main()
