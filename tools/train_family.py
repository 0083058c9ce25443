"""A family of supervised embedded models of varied capacity and training length, for effective robustness.

    python -m tools.train_family [--out FILE] [--device cuda]

Trains SynthCNNs on the rendered train split for every (width, steps) in the grid, evaluates each on every
evaluation split and writes ``trend_family.json``: per model its width, steps, seed and accuracies. The
effective-robustness trend of the embedded benchmark is fitted on these accuracies, as the ImageNet testbed's
trend is fitted on its standard-training models. Weights are not kept; the same seed and device give the same
accuracies.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from harness.embedded import EMBEDDED_DIR
from harness.embedded.renderer import RENDERER_VERSION, render_split
from tools.train_embedded import (Cycle, TrainingSet, accuracies, cnn_predictor, device_description, eval_data,
                                  seed_everything, train_cnn)

WIDTHS = (4, 6, 8, 12, 16, 24, 32)
STEPS = (100, 300, 1000)
FAMILY_FILE = EMBEDDED_DIR / "trend_family.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=FAMILY_FILE)
    p.add_argument("--hard-split", type=Path, default=EMBEDDED_DIR / "hard_split.json",
                   help="the hard split's indices, as tools.train_embedded wrote them")
    p.add_argument("--seed", type=int, default=0, help="data seed (as train_embedded's); model i is seeded 1000 + i")
    p.add_argument("--train-size", type=int, default=20000)
    p.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS))
    p.add_argument("--steps", type=int, nargs="+", default=list(STEPS))
    p.add_argument("--device", type=torch.device, default=torch.device("cpu"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    seed_everything(args.seed, args.device)
    train = render_split("train", args.train_size, seed=args.seed)
    data = TrainingSet(torch.from_numpy(train.images), torch.from_numpy(train.labels))
    hard = json.loads(args.hard_split.read_text())
    evaluation = eval_data(hard, args.seed)
    models = []
    for index, (width, steps) in enumerate((w, s) for w in args.widths for s in args.steps):
        started = time.perf_counter()
        model = train_cnn(data, Cycle(steps, 128, 3e-3, 1000 + index), width, f"family-w{width}-s{steps}",
                          args.device)
        accuracy = accuracies({"model": cnn_predictor(model)}, evaluation)["model"]
        models.append({"name": f"synth-cnn-w{width}-s{steps}", "width": width, "steps": steps,
                       "seed": 1000 + index, "parameters": sum(p.numel() for p in model.parameters()),
                       "wall_time_s": round(time.perf_counter() - started, 1), "accuracy": accuracy})
        print(f"{models[-1]['name']}: test {accuracy['test']:.3f}", flush=True)
    family = {"description": "supervised SynthCNNs (cross-entropy, label smoothing 0.1, AdamW 3e-3, batch 128) "
                             "of varied width and training length", "program": "tools/train_family.py",
              "renderer_version": RENDERER_VERSION, "data_seed": args.seed, "train_size": args.train_size,
              "hard_split_reference_sha256": hard["reference_checkpoint_sha256"],
              "torch_version": torch.__version__, "device": device_description(args.device), "models": models}
    args.out.write_text(json.dumps(family, indent=2) + "\n")
    return family


if __name__ == "__main__":
    main()
