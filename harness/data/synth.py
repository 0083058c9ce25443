"""`synth`: the embedded benchmark rendered by harness.embedded.renderer (offline, deterministic)."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..cache import ArrayCache
from ..prompts import Prompts
from .base import EvalData, NaturalShift, Preprocess, content_sha256

DATA_SEED = 0  # the benchmark is a fixed dataset: run seeds (--seed) never change its pixels


class SynthBenchmark:
    name = "synth"
    clean_split = "test"
    natural_shifts = (
        NaturalShift("v2", "v2"),
        NaturalShift("sketch", "sketch"),
        NaturalShift("rendition", "rendition"),
        NaturalShift("hard", "hard"),
        NaturalShift("pose", "pose"),
        NaturalShift("vid-pm0", "vid", k=0),
        NaturalShift("vid-pm4", "vid", k=4),
        NaturalShift("ytbb-pm0", "ytbb", k=0),
        NaturalShift("ytbb-pm4", "ytbb", k=4),
    )

    def prompts(self) -> Prompts:
        from ..embedded.renderer import CLASSNAMES, TEMPLATES

        return Prompts(tuple(CLASSNAMES), tuple(TEMPLATES), "synth", "synth")

    def check(self, split: str) -> None:
        """Always there: the benchmark is rendered, not read."""

    def load_perturbed(self, perturbation: Mapping[str, Any], n: int, cache: ArrayCache,
                       preprocess: Preprocess) -> EvalData | None:
        """None: every perturbation of the rendered benchmark is applied in memory."""
        return None

    def load(self, split: str, n: int, cache: ArrayCache, preprocess: Preprocess) -> EvalData:
        from ..embedded import renderer

        n = min(n, renderer.SPLIT_SIZES[split])
        key = {"kind": "synth-split", "renderer": renderer.RENDERER_VERSION, "split": split, "n": n,
               "seed": DATA_SEED}
        if split == "hard":  # its samples are the candidates listed in hard_split.json, which retraining changes
            key["hard_indices"] = renderer.load_hard_indices()[1][:n]

        def render() -> dict[str, np.ndarray]:
            rendered = renderer.render_split(split, n, seed=DATA_SEED)
            return {"images": rendered.images, "labels": rendered.labels.astype(np.int64)}

        arrays = cache.get_or_compute(key, render, pixels=True)
        native = Preprocess(renderer.IMAGE_SIZE, renderer.IMAGE_SIZE)
        if (preprocess.size, preprocess.resize) != (native.size, native.resize):
            arrays = cache.get_or_compute({**key, "preprocess": preprocess.as_dict()}, lambda: {
                "images": resized(arrays["images"], preprocess), "labels": arrays["labels"]}, pixels=True)
        return EvalData(arrays["images"], arrays["labels"], {
            "benchmark": self.name, "split": split, "n": n, "seed": DATA_SEED,
            "renderer_version": renderer.RENDERER_VERSION,
            "sha256": content_sha256(arrays["images"], arrays["labels"]),
            **({} if (preprocess.size, preprocess.resize) == (native.size, native.resize)
               else {"resized_from": native.size, "preprocess": preprocess.as_dict()}),
        })


def resized(images: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    """uint8 (N, H, W, 3) or (N, F, H, W, 3) rendered images, each resized and center-cropped as `preprocess` says
    (PIL, as real datasets are decoded), so a model wanting other than 64 px can be evaluated on the benchmark."""
    from PIL import Image

    from .folders import resize_crop

    frames = images.reshape(-1, *images.shape[-3:])
    out = np.stack([resize_crop(Image.fromarray(frame), preprocess) for frame in frames])
    return out.reshape(*images.shape[:-3], *out.shape[1:])
