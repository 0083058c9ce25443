"""Small supervised CNN classifier for the embedded benchmark."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .renderer import CLASSNAMES

CNN_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
CNN_STD: tuple[float, float, float] = (0.25, 0.25, 0.25)


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class SynthCNN(nn.Module):
    """Four conv blocks (widths w, 2w, 4w, 8w) + global average pool + linear head.

    ``forward`` takes an already-normalized float tensor (N, 3, 64, 64), i.e.
    ``(x - CNN_MEAN) / CNN_STD`` per channel for pixels x in [0, 1], and
    returns logits (N, len(CLASSNAMES)).
    """

    def __init__(self, width: int = 20, num_classes: int = len(CLASSNAMES)):
        super().__init__()
        self.width = width
        self.features = nn.Sequential(
            _block(3, width), _block(width, 2 * width), _block(2 * width, 4 * width), _block(4 * width, 8 * width),
        )
        self.head = nn.Linear(8 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))

    def save(self, path: str | Path) -> None:
        """Save the state_dict as safetensors, with the width in the metadata."""
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}
        save_file(tensors, str(path), metadata={"width": str(self.width)})

    @classmethod
    def load(cls, path: str | Path) -> "SynthCNN":
        """Load a checkpoint written by ``save``; returns the model in eval mode."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            width = int(f.metadata()["width"])
        model = cls(width=width)
        model.load_state_dict(load_file(str(path)))
        return model.eval()
