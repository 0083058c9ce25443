"""`torchvision:<arch>@<WEIGHTS>`: supervised ImageNet baselines from torchvision, evaluated on `imagenet`.

`<WEIGHTS>` is a member of the architecture's weights enum (`torchvision:resnet50@IMAGENET1K_V1`), read from the
torch hub cache only (`$TORCH_HOME/hub/checkpoints/<file name of the enum's url>`; nothing is downloaded), or a
local state dict: `@/path/to/weights.safetensors`, or `.pth`/`.pt` loaded with `torch.load(weights_only=True)`.
Preprocessing (resize, crop, interpolation, mean, std) comes from the enum's transforms; a local file takes that
of the architecture's DEFAULT weights.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..cache import ArrayCache
from ..data.base import Preprocess
from ..files import sha256_file
from .base import LoadedModel, ModelId, PixelClassifier
from .registry import UnknownModelError, register_family
from .weights import LOCAL_SUFFIXES, WeightsNotCachedError, load_state_dict

def _weights_enum(arch: str):
    from torchvision.models import get_model_weights
    return get_model_weights(arch)


def hub_checkpoint(weights: Any) -> Path:
    """Where torch.hub caches the file of a torchvision weights enum member (its url's file name)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def _resolve(model_id: ModelId) -> tuple[Path, Any, str]:
    """(file to load, weights enum member whose transforms and categories apply, description)."""
    enum = _weights_enum(model_id.name)
    if Path(model_id.weights).suffix in LOCAL_SUFFIXES:
        return Path(model_id.weights).expanduser().resolve(), enum.DEFAULT, f"file {model_id.weights}"
    weights = enum[model_id.weights]
    path = hub_checkpoint(weights)
    if not path.is_file():
        raise WeightsNotCachedError(
            f"{model_id}: weights not in the torch hub cache, expected at {path} (nothing is downloaded). On a "
            f"connected machine run `python -c \"import torchvision; torchvision.models.get_model("
            f"'{model_id.name}', weights='{model_id.weights}')\"` and copy the file there (or set TORCH_HOME)")
    return path, weights, f"{model_id.weights} ({weights.url})"


def preprocess_of(weights: Any) -> dict[str, Any]:
    """The evaluation preprocessing of a torchvision weights enum member, from its transforms."""
    transforms = weights.transforms()
    return {"size": int(transforms.crop_size[0]), "resize": int(transforms.resize_size[0]),
            "interpolation": transforms.interpolation.value, "mean": list(transforms.mean),
            "std": list(transforms.std), "source": f"{type(weights).__name__}.{weights.name}.transforms()"}


@register_family("torchvision")
class TorchvisionFamily:
    def names(self) -> list[str]:
        """Architectures with an IMAGENET1K_V1 checkpoint already in the torch hub cache."""
        from torchvision.models import list_models
        import torchvision.models as classification

        names = []
        for arch in list_models(module=classification):
            weights = getattr(_weights_enum(arch), "IMAGENET1K_V1", None)
            if weights is not None and hub_checkpoint(weights).is_file():
                names.append(f"{arch}@IMAGENET1K_V1")
        return names

    def validate(self, model_id: ModelId) -> None:
        from torchvision.models import list_models
        import torchvision.models as classification

        if model_id.name not in list_models(module=classification):
            raise UnknownModelError(f"{model_id}: {model_id.name!r} is not a torchvision classification "
                                    f"architecture (see torchvision.models.list_models())")
        if model_id.weights is None:
            raise UnknownModelError(f"{model_id}: name the weights, e.g. torchvision:{model_id.name}@IMAGENET1K_V1")
        if Path(model_id.weights).suffix in LOCAL_SUFFIXES:
            if not Path(model_id.weights).expanduser().is_file():
                raise UnknownModelError(f"{model_id}: weights file {model_id.weights} does not exist")
        elif model_id.weights not in _weights_enum(model_id.name).__members__:
            known = ", ".join(_weights_enum(model_id.name).__members__)
            raise UnknownModelError(f"{model_id}: unknown weights {model_id.weights!r}; known: {known}")

    def benchmark(self, model_id: ModelId) -> str:
        return "imagenet"

    def load(self, model_id: ModelId, device: torch.device, cache: ArrayCache | None = None) -> LoadedModel:
        from torchvision.models import get_model

        path, weights, description = _resolve(model_id)
        network = get_model(model_id.name, weights=None)
        network.load_state_dict(load_state_dict(path))
        preprocess = preprocess_of(weights)
        classnames = tuple(weights.meta["categories"])
        classifier = PixelClassifier(network, preprocess["mean"], preprocess["std"]).to(device)
        return LoadedModel(model_id, classifier, classnames,
                           Preprocess(preprocess["size"], preprocess["resize"], preprocess["interpolation"]), {
                               "architecture": f"torchvision.models.{model_id.name}",
                               "weights": description,
                               "weights_sha256": sha256_file(path),
                               "preprocess": preprocess,
                               "n_classes": len(classnames),
                           })
