"""Harness overhead against bare model compute, measured side by side in one run (warm, best of repeats).

(a) a clean case through harness.evaluate, computing its predictions, vs a bare loop of the same model over the
    same preprocessed tensors; (a') the same case with its predictions cached, as in a warm rerun;
(b) a PGD case through harness.evaluate vs a bare torchattacks call on the same tensors; the harness attacks only
    the images the model classifies correctly (as AutoAttack does), so (b') compares it with a bare loop doing
    that same work (a clean forward pass, then torchattacks on the correct images): (b') is the pure overhead;
(c) zero-shot head construction: all prompts batched vs one class at a time.
Prints each pair and the ratio; targets: (a), (b) and (b') <= 1.10, (c) < 1. Repeats alternate between the two sides
of a pair, so drift of the machine's speed does not favour either; each side keeps its best time.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import torch
import torchattacks

from harness.attacks import Attack, parse_attack
from harness.cache import ArrayCache
from harness.cases import Case, Setting
from harness.data import get_benchmark
from harness.evaluate import RunContext, evaluate
from harness.models import load_model
from harness.models.zeroshot import zero_shot_head


def best_of_alternating(repeats: int, ours, reference) -> tuple[float, float]:
    """Best wall seconds of `ours` and of `reference`, run alternately `repeats` times each."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for function, kept in ((ours, times[0]), (reference, times[1])):
            started = time.perf_counter()
            function()
            kept.append(time.perf_counter() - started)
    return min(times[0]), min(times[1])


class DataOnlyCache(ArrayCache):
    """Caches data like the run's cache but never predictions, so a case computes them every time."""

    def get_or_compute(self, key, compute, *args, **kwargs):
        if key.get("kind") == "predictions":
            return compute()
        return super().get_or_compute(key, compute, *args, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="embedded:synth-clip")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--attack-samples", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device("cpu")
    model = load_model(args.model, device)
    rows = []
    with TemporaryDirectory() as tmp:
        cache = DataOnlyCache(Path(tmp))
        benchmark = get_benchmark("synth")
        data = benchmark.load("test", args.samples, cache, model.preprocess)
        pixels = torch.from_numpy(data.images.copy()).permute(0, 3, 1, 2).float().div(255)
        labels = torch.from_numpy(data.labels.copy())
        batch = 250

        clean = Case(args.model, model.model_id.line, "synth", Setting("clean", "test", "test", args.samples))
        evaluate(clean, model, RunContext(device, cache, 0, batch))  # warm: data cached, kernels loaded

        def bare_clean():
            with torch.no_grad():
                for start in range(0, len(pixels), batch):
                    model.classifier(pixels[start:start + batch]).argmax(1)

        rows.append(("(a) clean case", *best_of_alternating(
            args.repeats, lambda: evaluate(clean, model, RunContext(device, cache, 0, batch)), bare_clean), 1.10))
        warm = ArrayCache(Path(tmp))
        evaluate(clean, model, RunContext(device, warm, 0, batch))
        rows.append(("(a') clean, cached", *best_of_alternating(
            args.repeats, lambda: evaluate(clean, model, RunContext(device, warm, 0, batch)), bare_clean), 1.10))

        spec = parse_attack("pgd-linf-1/255")
        attacked = Case(args.model, model.model_id.line, "synth",
                        Setting("adversarial", spec.name, "test", args.attack_samples, perturbation=Attack(spec)))
        few, few_labels = pixels[:args.attack_samples], labels[:args.attack_samples]

        def bare_pgd():
            attack = torchattacks.PGD(model.classifier, eps=spec.eps, alpha=spec.alpha, steps=spec.steps)
            for start in range(0, len(few), batch):
                adversarial = attack(few[start:start + batch], few_labels[start:start + batch])
                with torch.no_grad():
                    model.classifier(adversarial).argmax(1)

        def bare_pgd_correct_only():
            attack = torchattacks.PGD(model.classifier, eps=spec.eps, alpha=spec.alpha, steps=spec.steps)
            for start in range(0, len(few), batch):
                x, y = few[start:start + batch], few_labels[start:start + batch]
                with torch.no_grad():
                    correct = model.classifier(x).argmax(1) == y
                adversarial = attack(x[correct], y[correct])
                with torch.no_grad():
                    model.classifier(adversarial).argmax(1)

        rows.append(("(b) PGD-10 case", *best_of_alternating(
            args.repeats, lambda: evaluate(attacked, model, RunContext(device, cache, 0, batch)), bare_pgd), 1.10))
        rows.append(("(b') PGD-10, same work", *best_of_alternating(
            args.repeats, lambda: evaluate(attacked, model, RunContext(device, cache, 0, batch)),
            bare_pgd_correct_only), 1.10))

    if args.model == "embedded:synth-clip":
        import open_clip

        from harness.models.embedded import EMBEDDED_DIR, _checkpoint

        open_clip.add_model_config(EMBEDDED_DIR / "synth-clip.json")
        clip = open_clip.create_model("synth-clip", pretrained=str(_checkpoint(model.model_id))).eval()
        tokenizer = open_clip.get_tokenizer("synth-clip")

        prompts = get_benchmark("synth").prompts()

        def per_class():
            for name in prompts.classnames:
                zero_shot_head(clip.encode_text, tokenizer, dataclasses.replace(prompts, classnames=(name,)), device)

        rows.append(("(c) zero-shot head", *best_of_alternating(args.repeats, lambda: zero_shot_head(
            clip.encode_text, tokenizer, prompts, device), per_class), 1.0))

    print(f"{'measurement':<22} {'harness/batched s':>18} {'bare/per-class s':>17} {'ratio':>7} {'target':>7}")
    for name, ours, reference, target in rows:
        ratio = ours / reference
        print(f"{name:<22} {ours:>18.4f} {reference:>17.4f} {ratio:>7.3f} {'<=' if target >= 1.1 else '<'}{target:>5.2f}"
              f"  {'ok' if ratio <= target else 'MISSED'}")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
