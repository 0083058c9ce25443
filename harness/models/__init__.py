"""Model registry. Importing this package registers the built-in families."""
from . import embedded  # noqa: F401  (registers the `embedded` family)
from . import hf_transformers, openclip, timm_models, torchvision_models  # noqa: F401  (register their families)
from .base import LoadedModel, ModelId, PixelClassifier
from .registry import UnknownModelError, known_model_ids, load_model, register_family, resolve

__all__ = ["LoadedModel", "ModelId", "PixelClassifier", "UnknownModelError", "known_model_ids", "load_model",
           "register_family", "resolve"]
