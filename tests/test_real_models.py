"""The `openclip`, `torchvision` and `timm` families on small real architectures whose weights the tests create, loaded
through the same cache lookups as downloaded weights; unsafe pickles and uncached weights fail fast and clearly."""
import json
import os
import time
from pathlib import Path

import open_clip
import pytest
import torch
from safetensors.torch import load_file, save_file

from harness.cache import ArrayCache, cache_key
from harness.models import ModelId, UnknownModelError, load_model, openclip, resolve
from harness.files import sha256_file
from harness.models.openclip import create_clip, head_cache_key, imagenet_prompts, uses_quick_gelu
from harness.models.zeroshot import prompts_sha256
from harness.models.weights import UnsafeCheckpointError, WeightsNotCachedError

CPU = torch.device("cpu")
TINY = "tiny-rg-clip"
TINY_CFG = {"embed_dim": 16,
            "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
            "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}
FAKE_TAGS = {"openai": {"hf_hub": "test-org/tiny-openai/", "quick_gelu": True, "interpolation": "bicubic",
                        "resize_mode": "shortest", "mean": (0.1, 0.2, 0.3), "std": (0.5, 0.5, 0.5)},
             "laion": {"url": "https://example.invalid/weights/tiny-laion.pt", "resize_mode": "shortest"}}


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


@pytest.fixture(scope="module")
def tiny_loaded(tiny_checkpoint):
    """The full load path once (1000 classes x 80 templates through the tiny text tower)."""
    return load_model(f"openclip:{TINY}@{tiny_checkpoint}", CPU)


def test_openclip_checkpoint_file_gives_a_zero_shot_pixel_classifier(tiny_loaded, tiny_checkpoint):
    model = tiny_loaded
    classnames, templates = imagenet_prompts()
    assert len(classnames) == 1000 and len(templates) == 80 and templates[0].count("{}") == 1
    assert model.classnames == classnames and model.classnames == tuple(open_clip.IMAGENET_CLASSNAMES)
    provenance = model.provenance
    assert provenance["weights_sha256"] == sha256_file(tiny_checkpoint)
    assert provenance["n_templates"] == 80 and provenance["n_classes"] == 1000
    assert provenance["preprocess"] == {"size": 32, "resize": 32, "interpolation": "bicubic",
                                        "resize_mode": "shortest", "mean": list(open_clip.OPENAI_DATASET_MEAN),
                                        "std": list(open_clip.OPENAI_DATASET_STD)}
    assert (model.preprocess.size, model.preprocess.resize) == (32, 32)
    assert provenance["quick_gelu"] is False
    pixels = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model.classifier(pixels)
        embedded = model.classifier.features((pixels - model.classifier.mean) / model.classifier.std)
    expected = model.classifier.logit_scale * torch.nn.functional.normalize(embedded, dim=-1) @ model.classifier.head.T
    assert logits.shape == (2, 1000) and torch.allclose(logits, expected)
    assert model.classifier.mean.flatten().tolist() == pytest.approx(list(open_clip.OPENAI_DATASET_MEAN))
    assert model.classifier.head.shape == (1000, 16)


def test_openclip_tag_loads_from_the_hf_cache_with_quick_gelu_forced_for_openai(
        caches, fake_tags, tiny_checkpoint):
    snapshot = hf_snapshot(caches, "test-org/tiny-openai")
    (snapshot / "open_clip_model.safetensors").write_bytes(tiny_checkpoint.read_bytes())
    model, weights = create_clip(ModelId.parse(f"openclip:{TINY}@openai"), CPU)
    assert weights.path == snapshot / "open_clip_model.safetensors"
    assert uses_quick_gelu(model)
    assert model.visual.preprocess_cfg["mean"] == (0.1, 0.2, 0.3)
    plain, _ = create_clip(ModelId.parse(f"openclip:{TINY}@{tiny_checkpoint}"), CPU)
    assert not uses_quick_gelu(plain)


def test_openclip_tag_loads_from_the_url_cache(caches, fake_tags, tiny_checkpoint):
    target = caches / "home" / ".cache" / "clip" / "tiny-laion.pt"
    target.parent.mkdir(parents=True)
    torch.save(load_file(str(tiny_checkpoint)), target)  # a .pt state dict, as open_clip's release files
    model, weights = create_clip(ModelId.parse(f"openclip:{TINY}@laion"), CPU)
    assert weights.path == target and not uses_quick_gelu(model)


def test_openclip_hf_hub_id_loads_config_and_weights_from_the_cache(caches, tiny_checkpoint):
    snapshot = hf_snapshot(caches, "test-org/tiny-hub")
    (snapshot / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": TINY_CFG, "preprocess_cfg": {"interpolation": "bilinear", "resize_mode": "shortest"}}))
    (snapshot / "open_clip_model.safetensors").write_bytes(tiny_checkpoint.read_bytes())
    model_id, _ = resolve("openclip:hf-hub:test-org/tiny-hub")
    model, weights = create_clip(model_id, CPU)
    assert weights.path == snapshot / "open_clip_model.safetensors"
    assert model.visual.preprocess_cfg["interpolation"] == "bilinear"


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


@pytest.mark.parametrize("text, message", [
    ("openclip:no-such-arch@openai", "not an open_clip model config"),
    ("openclip:ViT-B-32@no-such-tag", "unknown pretrained tag"),
    ("openclip:ViT-B-32", "name the weights"),
    ("openclip:ViT-B-32@/no/such/file.safetensors", "does not exist"),
    ("torchvision:resnet18@NO_SUCH_WEIGHTS", "IMAGENET1K_V1"),
    ("torchvision:no_such_arch@IMAGENET1K_V1", "not a torchvision classification"),
    ("timm:no_such_arch@in1k", "not a timm architecture"),
    ("timm:resnet18", "name the weights.*a1_in1k"),
    ("timm:resnet18@no_such_tag", "unknown pretrained tag"),
    ("timm:resnet18@/no/such/file.pth", "does not exist"),
    ("timm:vit_tiny_patch16_224@augreg_in21k", "21843 classes"),
    ("timm:coat_lite_medium_384@in1k", "crop_mode 'squash'.*not the harness's protocol"),
    ("timm:gcvit_tiny@in1k", "not on the Hugging Face hub"),
])
def test_invalid_ids_are_usage_errors(text, message):
    with pytest.raises(UnknownModelError, match=message):
        resolve(text)


@pytest.fixture(scope="module")
def resnet18_state():
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).state_dict()


@pytest.mark.parametrize("where", ["hub-cache", "pth", "safetensors"])
def test_torchvision_weights_from_hub_cache_or_file_keep_the_pixel_contract(caches, resnet18_state, where):
    if where == "hub-cache":
        path = caches / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
        path.parent.mkdir(parents=True)
        torch.save(resnet18_state, path)
        text = "torchvision:resnet18@IMAGENET1K_V1"
    elif where == "pth":
        path = caches / "resnet18.pth"
        torch.save(resnet18_state, path)
        text = f"torchvision:resnet18@{path}"
    else:
        path = caches / "resnet18.safetensors"
        save_file(resnet18_state, str(path))
        text = f"torchvision:resnet18@{path}"
    model = load_model(text, CPU)
    assert model.provenance["weights_sha256"] == sha256_file(path)
    assert (model.preprocess.size, model.preprocess.resize, model.preprocess.interpolation) == (224, 256, "bilinear")
    assert model.provenance["preprocess"]["mean"] == [0.485, 0.456, 0.406]
    assert len(model.classnames) == 1000 and model.classnames[0] == "tench"
    assert torch.equal(model.classifier.features.fc.weight, resnet18_state["fc.weight"])
    pixels = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        normalized = (pixels - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / \
            torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        assert torch.allclose(model.classifier(pixels), model.classifier.features(normalized))


SMALL_PROMPTS = (("cat", "dog", "ship"), ("a photo of a {}.", "a drawing of a {}."))


@pytest.fixture
def small_prompts(monkeypatch):
    """Three classes and two templates in place of ImageNet's 1000 x 80, so that each head takes milliseconds."""
    monkeypatch.setattr(openclip, "imagenet_prompts", lambda: SMALL_PROMPTS)


@pytest.fixture
def text_tower_calls(monkeypatch) -> list:
    """One entry per call of any open_clip CLIP's encode_text from now on."""
    calls = []
    encode_text = open_clip.model.CLIP.encode_text

    def counting(self, *args, **kwargs):
        calls.append(1)
        return encode_text(self, *args, **kwargs)

    monkeypatch.setattr(open_clip.model.CLIP, "encode_text", counting)
    return calls


def test_zero_shot_head_is_computed_once_then_read_from_the_run_cache(tmp_path, tiny_checkpoint, small_prompts,
                                                                      text_tower_calls):
    text = f"openclip:{TINY}@{tiny_checkpoint}"
    uncached = load_model(text, CPU)
    assert uncached.provenance["head_cache"] == {"from_cache": False, "key": None} and text_tower_calls
    text_tower_calls.clear()
    first = load_model(text, CPU, ArrayCache(tmp_path / "cache"))
    assert text_tower_calls and first.provenance["head_cache"]["from_cache"] is False
    text_tower_calls.clear()
    second = load_model(text, CPU, ArrayCache(tmp_path / "cache"))  # a later run over the same cache folder
    assert text_tower_calls == []
    assert second.provenance["head_cache"] == {"from_cache": True, "key": first.provenance["head_cache"]["key"]}
    assert torch.equal(second.classifier.head, first.classifier.head)
    assert torch.equal(first.classifier.head, uncached.classifier.head)
    documented = head_cache_key(sha256_file(tiny_checkpoint), TINY, False, prompts_sha256(*SMALL_PROMPTS),
                                torch.float32)
    assert first.provenance["head_cache"]["key"] == cache_key(documented)


@pytest.mark.parametrize("change", ["weights", "config", "quick_gelu", "prompts", "open_clip_version", "dtype"])
def test_changing_any_part_of_the_head_key_recomputes_the_head(caches, fake_tags, tiny_checkpoint, small_prompts,
                                                               text_tower_calls, monkeypatch, change):
    cache = ArrayCache(caches / "cache")
    text = f"openclip:{TINY}@{tiny_checkpoint}"
    before = load_model(text, CPU, cache).provenance["head_cache"]["key"]
    text_tower_calls.clear()
    if change == "weights":
        state = load_file(str(tiny_checkpoint))
        state["text_projection"] = state["text_projection"] + 1e-3
        save_file(state, str(caches / "other.safetensors"))
        text = f"openclip:{TINY}@{caches / 'other.safetensors'}"
    elif change == "config":
        (caches / f"{TINY}-copy.json").write_text(json.dumps(TINY_CFG))
        open_clip.add_model_config(caches / f"{TINY}-copy.json")
        text = f"openclip:{TINY}-copy@{tiny_checkpoint}"
    elif change == "quick_gelu":  # the same bytes, as a tag trained with QuickGELU
        snapshot = hf_snapshot(caches, "test-org/tiny-openai")
        (snapshot / "open_clip_model.safetensors").write_bytes(tiny_checkpoint.read_bytes())
        text = f"openclip:{TINY}@openai"
    elif change == "prompts":
        monkeypatch.setattr(openclip, "imagenet_prompts", lambda: (SMALL_PROMPTS[0], ("art of a {}.",)))
    elif change == "open_clip_version":
        monkeypatch.setattr(open_clip, "__version__", open_clip.__version__ + ".post1")
    else:
        create_clip = openclip.create_clip
        monkeypatch.setattr(openclip, "create_clip",
                            lambda *args: (lambda model, weights: (model.to(torch.bfloat16), weights))(
                                *create_clip(*args)))
    after = load_model(text, CPU, cache).provenance["head_cache"]
    assert text_tower_calls, f"changing {change} reused a cached head"
    assert after["from_cache"] is False and after["key"] != before
