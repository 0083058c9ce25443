"""A tiny open_clip architecture and the cache layouts real weights are found in, for the model families' tests."""
import os
from pathlib import Path

import torch


CPU = torch.device("cpu")


TINY = "tiny-rg-clip"


TINY_CFG = {"embed_dim": 16,
            "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
            "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}


FAKE_TAGS = {"openai": {"hf_hub": "test-org/tiny-openai/", "quick_gelu": True, "interpolation": "bicubic",
                        "resize_mode": "shortest", "mean": (0.1, 0.2, 0.3), "std": (0.5, 0.5, 0.5)},
             "laion": {"url": "https://example.invalid/weights/tiny-laion.pt", "resize_mode": "shortest"}}


def hf_snapshot(cache: Path, repo: str) -> Path:
    snapshot = cache / "hf" / f"models--{repo.replace('/', '--')}" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    return snapshot


def evil_pickle(path: Path, marker: Path) -> Path:
    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    torch.save({"weight": Payload()}, path)
    return path

