"""The embedded models, trained by `python -m tools.train_embedded` and committed under harness/embedded/.

`embedded:synth-clip` is an open_clip model config loaded through open_clip's own factory and used zero-shot;
`embedded:synth-cnn` is a supervised CNN. Both classify the embedded benchmark (`synth`). A release candidate of
the same architecture names its weights file: `embedded:synth-clip@path/to/candidate.safetensors`.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
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
# open_clip's default normalization (OPENAI_DATASET_MEAN and _STD), which synth-clip was trained under: written out
# so that the provenance needs no open_clip import; build_clip checks them against open_clip's.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


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


def export_open_clip_folder(folder: Path) -> Path:
    """Write synth-clip as an open_clip model folder, the layout of an open_clip hf-hub repo
    (open_clip_config.json and open_clip_model.safetensors, the committed weights), and return the folder: a trained
    open_clip model that `openclip:local-dir:<folder>`, or another tool's open_clip, loads."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model_cfg = json.loads((EMBEDDED_DIR / "synth-clip.json").read_text())
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": {}}))
    shutil.copyfile(CHECKPOINTS / "synth-clip.safetensors", folder / "open_clip_model.safetensors")
    return folder


def build_clip(checkpoint: Path, device: torch.device) -> PixelClassifier:
    """synth-clip with the weights of `checkpoint`, through open_clip's own factory, as a pixel classifier."""
    import open_clip

    open_clip.add_model_config(EMBEDDED_DIR / "synth-clip.json")
    model = open_clip.create_model("synth-clip", pretrained=str(checkpoint), device=device).eval()
    cfg = model.visual.preprocess_cfg
    if (tuple(cfg["mean"]), tuple(cfg["std"])) != (CLIP_MEAN, CLIP_STD):
        raise RuntimeError(f"open_clip {open_clip.__version__} normalizes synth-clip with other than the mean and "
                           f"std its provenance records ({CLIP_MEAN}, {CLIP_STD}); update CLIP_MEAN and CLIP_STD")
    return clip_classifier(model, open_clip.get_tokenizer("synth-clip"), device)


def _load_clip(model_id: ModelId, device: torch.device) -> LoadedModel:
    """Deferred: everything its provenance says is read without open_clip, so a run whose predictions are cached
    never imports it (about two seconds) nor builds the model and its head."""
    from ..embedded.renderer import CLASSNAMES, IMAGE_SIZE

    checkpoint = _checkpoint(model_id)
    with safe_open(str(checkpoint), "pt") as weights:
        if "logit_scale" not in weights.keys():
            raise ValueError(f"{checkpoint} holds no logit_scale: it is not a synth-clip checkpoint")
        logit_scale = weights.get_tensor("logit_scale").exp().item()
    prompts = SynthBenchmark().prompts()
    return LoadedModel(model_id, lambda: build_clip(checkpoint, device), tuple(CLASSNAMES),
                       Preprocess(IMAGE_SIZE, IMAGE_SIZE), {
        "architecture": "open_clip:synth-clip",
        "weights": f"embedded checkpoint {checkpoint.name}",
        "weights_sha256": sha256_file(checkpoint),
        "preprocess": {"size": IMAGE_SIZE, "resize": "none (native 64 px)", "mean": list(CLIP_MEAN),
                       "std": list(CLIP_STD), "interpolation": "bicubic", "resize_mode": "shortest"},
        "prompts_sha256": prompts.sha256,
        "n_templates": len(prompts.templates),
        "logit_scale": logit_scale,
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
