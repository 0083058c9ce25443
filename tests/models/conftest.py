"""Fixtures of the model families' tests: tiny weights the tests write, empty caches, open_clip's tags."""
import json
from pathlib import Path

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from tiny_models import FAKE_TAGS, TINY, TINY_CFG


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny open_clip config registered with open_clip, and random weights for it as .safetensors."""
    folder = tmp_path_factory.mktemp("tiny-clip")
    (folder / f"{TINY}.json").write_text(json.dumps(TINY_CFG))
    open_clip.add_model_config(folder / f"{TINY}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(TINY)
    path = folder / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Empty HF hub, clip and torch hub caches under tmp_path."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


@pytest.fixture
def fake_tags(monkeypatch, tiny_checkpoint):
    """open_clip's pretrained registry answering two tags for the tiny config, as it does for real models."""
    real = open_clip.get_pretrained_cfg
    monkeypatch.setattr(open_clip, "get_pretrained_cfg",
                        lambda name, tag: dict(FAKE_TAGS.get(tag, {})) if name == TINY else real(name, tag))
