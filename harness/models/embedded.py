"""The embedded models, trained by `python -m tools.train_embedded` and committed under harness/embedded/.

`embedded:synth-clip` is an open_clip model config loaded through open_clip's own factory and used zero-shot;
`embedded:synth-cnn` is a supervised CNN. Both classify the embedded benchmark (`synth`). A release candidate of
the same architecture names its weights file: `embedded:synth-clip@path/to/candidate.safetensors`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ..cache import ArrayCache
from ..data.base import Preprocess
from ..data.synth import SynthBenchmark
from ..files import sha256_file
from .base import LoadedModel, ModelId, PixelClassifier
from .registry import UnknownModelError, known_model_ids, register_family
from .zeroshot import zero_shot_head

EMBEDDED_DIR = Path(__file__).resolve().parent.parent / "embedded"
CHECKPOINTS = EMBEDDED_DIR / "checkpoints"


def _checkpoint(model_id: ModelId) -> Path:
    """The committed checkpoint of the model, or the safetensors file named after `@` (a release candidate)."""
    if model_id.weights is not None:
        return Path(model_id.weights).expanduser().resolve()
    path = CHECKPOINTS / f"{model_id.name}.safetensors"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: it is committed with the repository; restore it with `git checkout -- {path}` "
            f"or retrain with `python -m tools.train_embedded` from a checkout")
    return path


def clip_classifier(model: torch.nn.Module, tokenizer: Any, device: torch.device) -> PixelClassifier:
    """synth-clip as a pixel-space zero-shot classifier on `device`: its image tower behind its own normalization,
    scored against the head of the benchmark's own prompts (what the suite gates, and what training reports)."""
    head = zero_shot_head(model.encode_text, tokenizer, SynthBenchmark().prompts(), device)
    cfg = model.visual.preprocess_cfg
    return PixelClassifier(model.visual, cfg["mean"], cfg["std"], head=head,
                           logit_scale=model.logit_scale.exp().item()).to(device)


def _load_clip(model_id: ModelId, device: torch.device) -> LoadedModel:
    import open_clip

    from ..embedded.renderer import CLASSNAMES, IMAGE_SIZE

    open_clip.add_model_config(EMBEDDED_DIR / "synth-clip.json")
    checkpoint = _checkpoint(model_id)
    model, _, preprocess = open_clip.create_model_and_transforms("synth-clip", pretrained=str(checkpoint),
                                                                device=device)
    model.eval()
    classifier = clip_classifier(model, open_clip.get_tokenizer("synth-clip"), device)
    cfg = model.visual.preprocess_cfg
    return LoadedModel(model_id, classifier, tuple(CLASSNAMES), Preprocess(IMAGE_SIZE, IMAGE_SIZE), {
        "architecture": "open_clip:synth-clip",
        "weights": f"embedded checkpoint {checkpoint.name}",
        "weights_sha256": sha256_file(checkpoint),
        "preprocess": {"size": IMAGE_SIZE, "resize": "none (native 64 px)", "mean": list(cfg["mean"]),
                       "std": list(cfg["std"]), "interpolation": cfg.get("interpolation"),
                       "resize_mode": cfg.get("resize_mode")},
        "prompts_sha256": SynthBenchmark().prompts().sha256,
        "n_templates": len(SynthBenchmark().prompts().templates),
        "logit_scale": classifier.logit_scale,
        "n_classes": len(CLASSNAMES),
    })


def _load_cnn(model_id: ModelId, device: torch.device) -> LoadedModel:
    from ..embedded.renderer import CLASSNAMES, IMAGE_SIZE
    from ..embedded.cnn import CNN_MEAN, CNN_STD, SynthCNN

    checkpoint = _checkpoint(model_id)
    network = SynthCNN()
    network.load_state_dict(load_file(str(checkpoint)))
    classifier = PixelClassifier(network, CNN_MEAN, CNN_STD).to(device)
    return LoadedModel(model_id, classifier, tuple(CLASSNAMES), Preprocess(IMAGE_SIZE, IMAGE_SIZE), {
        "architecture": "harness.embedded.cnn.SynthCNN",
        "weights": f"embedded checkpoint {checkpoint.name}",
        "weights_sha256": sha256_file(checkpoint),
        "preprocess": {"size": IMAGE_SIZE, "resize": "none (native 64 px)", "mean": list(CNN_MEAN),
                       "std": list(CNN_STD)},
        "n_classes": len(CLASSNAMES),
    })


_LOADERS = {"synth-clip": _load_clip, "synth-cnn": _load_cnn}


@register_family("embedded")
class EmbeddedFamily:
    def names(self) -> list[str]:
        return sorted(_LOADERS)

    def validate(self, model_id: ModelId) -> None:
        if model_id.name not in _LOADERS:
            raise UnknownModelError(
                f"unknown embedded model {str(model_id)!r}; known model ids: {', '.join(known_model_ids())}")
        if model_id.weights is not None:
            path = Path(model_id.weights).expanduser()
            if path.suffix != ".safetensors" or not path.is_file():
                raise UnknownModelError(
                    f"{model_id}: the weights after '@' must be an existing .safetensors file with the "
                    f"{model_id.name} architecture (see tools/train_embedded.py), got {str(path)!r}")

    def benchmark(self, model_id: ModelId) -> str:
        return "synth"

    def load(self, model_id: ModelId, device: torch.device, cache: ArrayCache | None = None) -> LoadedModel:
        return _LOADERS[model_id.name](model_id, device)
