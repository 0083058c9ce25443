"""Checkpoints on disk: a code-executing pickle is refused, never run; uncached weights fail fast, naming the
cache path searched and the command that fetches them."""
import time

import pytest

from harness.models import load_model
from harness.models.weights import UnsafeCheckpointError, WeightsNotCachedError
from tiny_models import CPU, TINY, evil_pickle


@pytest.mark.parametrize("text, searched", [
    ("openclip:ViT-B-32@openai", "hf/models--timm--vit_base_patch32_clip_224.openai/snapshots"),
    ("openclip:hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "hf/models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"),
    ("torchvision:resnet18@IMAGENET1K_V1", "torch/hub/checkpoints/resnet18-f37072fd.pth"),
    ("timm:test_vit@r160_in1k", "hf/models--timm--test_vit.r160_in1k/snapshots/*/model.safetensors"),
])
def test_uncached_weights_fail_fast_naming_the_cache_path_and_the_fetch_command(caches, text, searched):
    started = time.perf_counter()
    with pytest.raises(WeightsNotCachedError) as error:
        load_model(text, CPU)
    assert time.perf_counter() - started < 2.0
    message = str(error.value)
    assert str(caches / searched) in message and "python -c" in message and text.split("@")[0] in message


@pytest.mark.parametrize("family, name", [("openclip", TINY), ("torchvision", "resnet18"), ("timm", "test_vit")])
def test_code_executing_pickle_is_refused_not_run(tmp_path, tiny_checkpoint, family, name):
    marker = tmp_path / "executed"
    evil = evil_pickle(tmp_path / "evil.pt", marker)
    with pytest.raises(UnsafeCheckpointError, match=str(evil)):
        load_model(f"{family}:{name}@{evil}", CPU)
    assert not marker.exists()
