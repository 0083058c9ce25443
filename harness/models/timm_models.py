"""`timm:<model>@<TAG>`: supervised ImageNet-1k classifiers from timm, evaluated on `imagenet`.

`<TAG>` is a pretrained tag of the architecture (`timm:resnet50@a1_in1k` is timm's `resnet50.a1_in1k`), read from
the Hugging Face hub cache only, where timm itself puts it: `models--<hf_hub_id, '/' as '--'>/snapshots/*/` holding
`model.safetensors` or `pytorch_model.bin` (hf_cache). Or a local checkpoint: `timm:resnet50@/path/weights.pth`,
`.safetensors`, or `.pth`/`.pt`/`.bin` loaded with `torch.load(weights_only=True)`; a pickle that would execute
code is refused with UnsafeCheckpointError. Nothing is downloaded: an uncached tag fails at once with
WeightsNotCachedError naming the paths searched and the command that fetches the weights on a connected machine.
The tensors go through timm's own pretrained loading (the architecture's checkpoint filter included), as
`timm.create_model(..., pretrained=True)` would load them.

Preprocessing is the tag's pretrained_cfg (a local file takes that of the architecture's default tag), resolved as
timm resolves it (`timm.data.resolve_data_config`): mean, std, interpolation, input size, crop_pct, crop_mode.
The harness's protocol (resize the shorter side to `resize`, center-crop `size`) expresses timm's eval transform
when crop_mode is "center" and the input square: `resize = floor(size / crop_pct)`, timm's own arithmetic.
Other crop modes ("squash", "border"), non-square inputs, interpolations the loaders lack, heads that are not the
1000 ImageNet classes, and tags whose weights are not on the HF hub are refused when the id is validated.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ..cache import ArrayCache
from ..data.base import Preprocess
from ..data.folders import RESAMPLE
from ..files import sha256_file
from .base import LoadedModel, ModelId, PixelClassifier
from .hf_cache import hf_cached, hf_repo_folder
from .registry import UnknownModelError, register_family
from .weights import LOCAL_SUFFIXES, WeightsNotCachedError, load_state_dict

HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def _is_file(model_id: ModelId) -> bool:
    return Path(model_id.weights).suffix in LOCAL_SUFFIXES


def variant(model_id: ModelId) -> str:
    """timm's name of the pretrained config that applies: `<model>.<tag>`, or `<model>` (its default tag) for a
    local checkpoint."""
    return model_id.name if _is_file(model_id) else f"{model_id.name}.{model_id.weights}"


def pretrained_cfg(model_id: ModelId) -> dict[str, Any] | None:
    import timm

    cfg = timm.models.get_pretrained_cfg(variant(model_id))
    return cfg.to_dict() if cfg is not None else None


def preprocess_of(cfg: dict[str, Any], name: str) -> dict[str, Any]:
    """The harness preprocessing of timm pretrained config `cfg` (of variant `name`), as recorded in provenance;
    ValueError when the harness's resize-then-center-crop protocol cannot express timm's eval transform."""
    from timm.data import resolve_data_config

    data = resolve_data_config(pretrained_cfg=cfg)
    _, height, width = data["input_size"]
    if data["crop_mode"] != "center" or height != width or data["interpolation"] not in RESAMPLE:
        raise ValueError(
            f"timm's eval transform of {name} (crop_mode {data['crop_mode']!r}, input {height}x{width}, "
            f"interpolation {data['interpolation']!r}) is not the harness's protocol: resize the shorter side and "
            f"center-crop a square, interpolated with one of {', '.join(RESAMPLE)}")
    return {"size": height, "resize": math.floor(height / data["crop_pct"]), "crop_pct": data["crop_pct"],
            "crop_mode": data["crop_mode"], "interpolation": data["interpolation"], "mean": list(data["mean"]),
            "std": list(data["std"]), "source": f"timm pretrained_cfg of {name}"}


def _fetch_command(name: str) -> str:
    return f"python -c \"import timm; timm.create_model('{name}', pretrained=True)\""


def resolve_weights(model_id: ModelId, cfg: dict[str, Any]) -> tuple[Path, str]:
    """(checkpoint file, description) of `model_id`; WeightsNotCachedError at once when the HF cache lacks it."""
    if _is_file(model_id):
        path = Path(model_id.weights).expanduser().resolve()
        return path, f"file {path}"
    path, searched = hf_cached(cfg["hf_hub_id"], HF_WEIGHT_FILES)
    if path is None:
        raise WeightsNotCachedError(
            f"{model_id}: weights not in the local Hugging Face hub cache (nothing is downloaded); searched "
            f"{', '.join(searched)}. On a connected machine run `{_fetch_command(variant(model_id))}` and copy the "
            f"cache folder to this machine (or point HF_HUB_CACHE at it)")
    return path, f"{variant(model_id)} (hf-hub:{cfg['hf_hub_id']}, {path.name})"


def create_network(model_id: ModelId, path: Path) -> torch.nn.Module:
    """timm's model of `model_id` with the tensors of `path` (loaded without executing code) put through timm's
    pretrained loading; in eval mode, on the CPU."""
    import timm

    network = timm.create_model(variant(model_id), pretrained=True,
                                pretrained_cfg_overlay={"state_dict": load_state_dict(path)})
    network.pretrained_cfg.pop("state_dict")
    return network.eval()


@register_family("timm")
class TimmFamily:
    def names(self) -> list[str]:
        """`<model>@<tag>` of every timm pretrained tag whose weights are in the local HF hub cache (one stat per
        tag for the ~1,800 tags without a cache folder: this runs whenever a model id is resolved)."""
        import timm

        cached = []
        for name in timm.list_pretrained():
            hub_id = timm.models.get_pretrained_cfg(name).hf_hub_id
            if hub_id and hf_repo_folder(hub_id).is_dir() and hf_cached(hub_id, HF_WEIGHT_FILES)[0] is not None:
                cached.append(name.replace(".", "@", 1))
        return cached

    def validate(self, model_id: ModelId) -> None:
        import timm

        if model_id.name not in timm.list_models():
            raise UnknownModelError(f"{model_id}: {model_id.name!r} is not a timm architecture "
                                    f"(see timm.list_models())")
        tags = [name.split(".", 1)[1] for name in timm.list_pretrained(f"{model_id.name}.*")]
        if model_id.weights is None:
            raise UnknownModelError(f"{model_id}: name the weights after '@': a pretrained tag "
                                    f"({', '.join(tags) or 'none'}) or a checkpoint file")
        if _is_file(model_id):
            if not Path(model_id.weights).expanduser().is_file():
                raise UnknownModelError(f"{model_id}: checkpoint {model_id.weights} does not exist")
        elif model_id.weights not in tags:
            raise UnknownModelError(f"{model_id}: unknown pretrained tag {model_id.weights!r}; known: "
                                    f"{', '.join(tags) or 'none'}")
        cfg = pretrained_cfg(model_id)
        if cfg is None:
            raise UnknownModelError(f"{model_id}: timm has no pretrained config for {model_id.name}, so no "
                                    f"preprocessing to evaluate it with")
        if cfg.get("num_classes") != 1000 or cfg.get("label_offset"):
            raise UnknownModelError(f"{model_id}: {variant(model_id)} classifies {cfg.get('num_classes')} classes "
                                    f"(label offset {cfg.get('label_offset') or 0}), not the 1000 ImageNet classes")
        if not _is_file(model_id) and not cfg.get("hf_hub_id"):
            raise UnknownModelError(f"{model_id}: timm publishes {variant(model_id)} only at {cfg.get('url')}, not "
                                    f"on the Hugging Face hub; fetch that file and name it: "
                                    f"timm:{model_id.name}@/path/to/file")
        try:
            preprocess_of(cfg, variant(model_id))
        except ValueError as error:
            raise UnknownModelError(f"{model_id}: {error}") from None

    def benchmark(self, model_id: ModelId) -> str:
        return "imagenet"

    def load(self, model_id: ModelId, device: torch.device, cache: ArrayCache | None = None) -> LoadedModel:
        from open_clip import IMAGENET_CLASSNAMES

        cfg = pretrained_cfg(model_id)
        path, description = resolve_weights(model_id, cfg)
        network = create_network(model_id, path)
        recorded = preprocess_of(cfg, variant(model_id))
        classifier = PixelClassifier(network, recorded["mean"], recorded["std"]).to(device)
        return LoadedModel(model_id, classifier, tuple(IMAGENET_CLASSNAMES),
                           Preprocess(recorded["size"], recorded["resize"], recorded["interpolation"]), {
                               "architecture": f"timm:{model_id.name}",
                               "pretrained": model_id.weights,
                               "weights": description,
                               "weights_sha256": sha256_file(path),
                               "preprocess": recorded,
                               "n_classes": len(IMAGENET_CLASSNAMES),
                           })
