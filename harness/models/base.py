"""The pixel-space contract every model honours, and what a loaded model carries with it."""
from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ..data.base import Preprocess


class PixelClassifier(nn.Module):
    """pixels (N, 3, H, W) float in [0, 1] -> logits (N, n_classes).

    Normalization happens inside, so an attack budget stated in pixel units means what it says.
    `features` maps normalized pixels to logits directly (a supervised head) or to embeddings that
    `head` (n_classes, D) scores by cosine similarity times `logit_scale` (a zero-shot head).
    """

    def __init__(self, features: nn.Module, mean: Sequence[float], std: Sequence[float],
                 head: torch.Tensor | None = None, logit_scale: float = 1.0):
        super().__init__()
        self.features = features
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("head", head if head is not None else torch.empty(0))
        self.logit_scale = float(logit_scale)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.features((pixels - self.mean) / self.std)
        if self.head.numel() == 0:
            return out
        return self.logit_scale * nn.functional.normalize(out, dim=-1) @ self.head.T


@dataclasses.dataclass(frozen=True)
class ModelId:
    """`[line=]family:name[@weights]`, e.g. `embedded:synth-clip` or `my-clip=openclip:ViT-B-32@rc2.pt`.

    The model line names the baseline file a model is gated against (`baselines/<line>.json`). By default it is
    the model name, with a pretrained tag appended (`openclip:ViT-B-32@openai` -> `ViT-B-32-openai`); weights
    given as a file keep the bare name, so a candidate checkpoint of an architecture is gated against what its
    predecessor recorded. A model named by its folder (`transformers:./models/my-clip`,
    `openclip:local-dir:/ckpt/my-clip`) is the folder's own name (`my-clip`), wherever it lies. `line=` names it
    explicitly.
    """

    family: str
    name: str
    weights: str | None = None
    explicit_line: str | None = None

    @classmethod
    def parse(cls, text: str) -> "ModelId":
        line, sep, rest = text.partition("=")
        if not sep:
            line, rest = "", text
        family, sep, rest = rest.partition(":")
        if not sep or not family or not rest or (line == "" and "=" in text):
            raise ValueError(f"model id {text!r} is not of the form [line=]family:name[@weights]")
        if line and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", line):
            raise ValueError(f"model line {line!r} in {text!r} may hold only letters, digits, '.', '_' and '-'")
        name, _, weights = rest.partition("@")
        return cls(family, name, weights or None, line or None)

    def __str__(self) -> str:
        return f"{self.family}:{self.name}" + (f"@{self.weights}" if self.weights else "")

    @property
    def line(self) -> str:
        """The model line: the name its baselines are kept under (`baselines/<line>.json`)."""
        if self.explicit_line:
            return self.explicit_line
        is_file = self.weights is not None and ("/" in self.weights or "." in self.weights)
        tag = "" if self.weights is None or is_file else f"-{self.weights}"
        folder = self.name.removeprefix("local-dir:")
        is_folder = folder != self.name or folder in (".", "..") or folder.startswith(("/", "./", "../", "~"))
        name = Path(folder).expanduser().resolve().name if is_folder else self.name
        return re.sub(r"[^A-Za-z0-9._-]", "-", name + tag)


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A model ready to evaluate: `classifier` follows the pixel-space contract, over `classnames` in order.

    `network` is the classifier, or a function that builds it: a family whose provenance (everything cached
    predictions are keyed on) is known without building the network defers it, so a case whose predictions are
    cached never pays for it (open_clip's import alone is two seconds)."""

    model_id: ModelId
    network: PixelClassifier | Callable[[], PixelClassifier]
    classnames: tuple[str, ...]
    preprocess: Preprocess
    provenance: dict[str, Any]

    @functools.cached_property
    def classifier(self) -> PixelClassifier:
        """The network, built on first use if deferred, in eval mode with its parameters' gradients off."""
        network = self.network if isinstance(self.network, nn.Module) else self.network()
        return network.eval().requires_grad_(False)

    @property
    def input_size(self) -> int:
        return self.preprocess.size


