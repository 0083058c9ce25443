"""Zero-shot head built with the tokens cut after the longest prompt against open_clip's own builder over the full
context: wall time of each and the largest difference between the two heads (target: at most 1e-5).

    python benchmarks/bench_head.py [--model ViT-B-32] [--classes 10] [--repeats 3]

A random-weight open_clip text tower (the cost does not depend on the weights) over the first `--classes`
ImageNet classes under OpenAI's 80 templates, cut where the whole of ImageNet's 80,000 prompts would be (after
the longest of them), so the ratio is the full head's; the difference is checked on the head cut after the
sample's own longest prompt, as the harness builds it. Each side runs `--repeats` times, best of each.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import open_clip
import torch

from harness.data import get_benchmark
from harness.models.openclip import open_clip_head, prefix_text_encoder
from harness.models.zeroshot import zero_shot_head


def best_seconds(repeats: int, function) -> tuple[float, torch.Tensor]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = open_clip.create_model(args.model).eval()
    tokenizer = open_clip.get_tokenizer(args.model)
    imagenet = get_benchmark("imagenet").prompts()
    prompts = dataclasses.replace(imagenet, classnames=imagenet.classnames[:args.classes])
    device = torch.device("cpu")
    encode, context = prefix_text_encoder(model)
    kept = context(tokenizer(imagenet.texts()))
    with torch.no_grad():
        full_s, full = best_seconds(args.repeats, lambda: open_clip.build_zero_shot_classifier(
            model, tokenizer, prompts.classnames, prompts.templates, num_classes_per_batch=None, device=device).T)
        cut_s, _ = best_seconds(args.repeats, lambda: zero_shot_head(encode, tokenizer, prompts, device,
                                                                     context=lambda tokens: kept))
        difference = (open_clip_head(model, tokenizer, prompts, device) - full).abs().max().item()
    print(f"zero-shot head, {args.model}, {len(prompts.classnames)} classes x {len(prompts.templates)} templates, "
          f"{torch.get_num_threads()} threads; ImageNet's prompts keep {kept} of {tokenizer.context_length} tokens")
    print(f"{'open_clip builder s':>20} {'cut head s':>11} {'ratio':>7} {'max |diff|':>11} {'target':>8}")
    print(f"{full_s:>20.3f} {cut_s:>11.3f} {cut_s / full_s:>7.3f} {difference:>11.2e} {'<=1e-05':>8}")
    if difference > 1e-5:
        raise SystemExit(f"the cut head differs from open_clip's by {difference:.2e} > 1e-5")


if __name__ == "__main__":
    main()
