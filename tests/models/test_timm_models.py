"""The `timm` family on timm's tiny real architecture `test_vit` (tag r160_in1k), whose random weights the tests put
in a Hugging Face hub cache laid out as huggingface_hub writes it. Uncached weights, unsafe pickles and
inexpressible preprocessing are covered in test_weights.py and test_model_registry.py."""
import huggingface_hub
import numpy as np
import open_clip
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file

from harness.data import Preprocess
from harness.data.folders import resize_crop
from harness.models import load_model
from harness.files import sha256_file
from harness.models.timm_models import preprocess_of
from model_caches import hf_cache_file

CPU = torch.device("cpu")
VARIANT = "test_vit.r160_in1k"


@pytest.fixture(scope="module")
def random_state():
    torch.manual_seed(0)
    return timm.create_model(VARIANT).state_dict()


@pytest.fixture
def hf_cache(tmp_path, monkeypatch, random_state):
    """`test_vit.r160_in1k` cached as timm's download leaves it; HF_HUB_CACHE (ours) and huggingface_hub's own
    cache setting both point there, huggingface_hub offline."""
    cache = tmp_path / "hf"
    save_file(random_state, str(tmp_path / "model.safetensors"))
    snapshot = hf_cache_file(cache, f"timm/{VARIANT}", "model.safetensors", tmp_path / "model.safetensors")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return snapshot


def test_tag_loads_from_the_hf_cache_as_timm_itself_loads_it(hf_cache, random_state):
    model = load_model("timm:test_vit@r160_in1k", CPU)
    network = model.classifier.features
    timm_own = timm.create_model(VARIANT, pretrained=True)  # timm's loader, offline, from the same cache
    assert network.state_dict().keys() == timm_own.state_dict().keys()
    assert all(torch.equal(value, timm_own.state_dict()[key]) for key, value in network.state_dict().items())
    assert torch.equal(network.state_dict()["head.weight"], random_state["head.weight"])
    provenance = model.provenance
    assert provenance["weights_sha256"] == sha256_file(hf_cache)
    assert str(hf_cache.name) in provenance["weights"] and "hf-hub:timm/test_vit.r160_in1k" in provenance["weights"]
    assert provenance["preprocess"] == {"size": 160, "resize": 168, "crop_pct": 0.95, "crop_mode": "center",
                                        "interpolation": "bicubic", "mean": [0.5] * 3, "std": [0.5] * 3,
                                        "source": "timm pretrained_cfg of test_vit.r160_in1k"}
    assert model.preprocess == Preprocess(160, 168, "bicubic")
    assert model.classnames == tuple(open_clip.IMAGENET_CLASSNAMES) and provenance["n_classes"] == 1000


def test_classifier_takes_pixels_and_normalizes_inside_in_eval_mode(hf_cache):
    model = load_model("timm:test_vit@r160_in1k", CPU)
    classifier = model.classifier
    assert not any(module.training for module in classifier.modules())
    assert not any(parameter.requires_grad for parameter in classifier.parameters())
    pixels = torch.rand(2, 3, 160, 160, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = classifier(pixels)
        assert logits.shape == (2, 1000)
        assert torch.allclose(logits, classifier.features((pixels - 0.5) / 0.5))
        assert not torch.allclose(logits, classifier.features(pixels))


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_local_checkpoint_takes_the_default_tags_preprocessing(tmp_path, random_state, suffix):
    path = tmp_path / f"candidate{suffix}"
    if suffix == ".safetensors":
        save_file(random_state, str(path))
    else:
        torch.save(random_state, path)
    model = load_model(f"timm:test_vit@{path}", CPU)
    assert model.provenance["weights_sha256"] == sha256_file(path)
    assert model.provenance["weights"] == f"file {path.resolve()}"
    assert model.provenance["preprocess"]["source"] == "timm pretrained_cfg of test_vit"
    assert torch.equal(model.classifier.features.state_dict()["head.weight"], random_state["head.weight"])


@pytest.mark.parametrize("variant", [VARIANT, "resnet18.a1_in1k", "convnext_tiny.fb_in1k",
                                     "vit_tiny_patch16_224.augreg_in21k_ft_in1k", "resnet50.tv_in1k"])
def test_resize_and_crop_reproduce_timms_eval_transform(variant):
    from timm.data import create_transform, resolve_data_config

    cfg = timm.models.get_pretrained_cfg(variant).to_dict()
    recorded = preprocess_of(cfg, variant)
    resize, crop = create_transform(**resolve_data_config(pretrained_cfg=cfg)).transforms[:2]
    assert (recorded["resize"], recorded["size"]) == (resize.size, crop.size[0])
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 420, 3), dtype=np.uint8))
    ours = resize_crop(image, Preprocess(recorded["size"], recorded["resize"], recorded["interpolation"]))
    assert np.array_equal(ours, np.asarray(crop(resize(image))))
