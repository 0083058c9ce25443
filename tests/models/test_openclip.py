"""The `openclip` family on a tiny real architecture: a checkpoint, a tag or a hub id from the local caches
gives a zero-shot pixel classifier; its head is computed once and keyed on everything it depends on."""
import dataclasses
import json

import open_clip
import pytest
import torch
from safetensors.torch import load_file, save_file

from harness.cache import ArrayCache, cache_key
from harness.models import ModelId, load_model, openclip, resolve
from harness.files import sha256_file
from harness.data import get_benchmark
from harness.models.openclip import create_clip, head_cache_key, uses_quick_gelu
from harness.prompts import Prompts
from tiny_models import CPU, TINY, TINY_CFG, hf_snapshot


@pytest.fixture(scope="module")
def tiny_loaded(tiny_checkpoint):
    """The full load path once (1000 classes x 80 templates through the tiny text tower)."""
    return load_model(f"openclip:{TINY}@{tiny_checkpoint}", CPU)


def test_openclip_checkpoint_file_gives_a_zero_shot_pixel_classifier(tiny_loaded, tiny_checkpoint):
    model = tiny_loaded
    prompts = get_benchmark("imagenet").prompts()
    classnames, templates = prompts.classnames, prompts.templates
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


# Three classes and two templates in place of ImageNet's 1000 x 80, so that each head takes milliseconds.
SMALL_PROMPTS = Prompts(("cat", "dog", "ship"), ("a photo of a {}.", "a drawing of a {}."), "test", "test")


@pytest.fixture
def text_tower_calls(monkeypatch) -> list:
    """One entry per head built through the text tower from now on."""
    calls = []
    build = openclip.open_clip_head

    def counting(*args, **kwargs):
        calls.append(1)
        return build(*args, **kwargs)

    monkeypatch.setattr(openclip, "open_clip_head", counting)
    return calls


def test_zero_shot_head_is_computed_once_then_read_from_the_run_cache(tmp_path, tiny_checkpoint, text_tower_calls):
    text = f"openclip:{TINY}@{tiny_checkpoint}"
    uncached = load_model(text, CPU, None, SMALL_PROMPTS)
    assert uncached.provenance["head_cache"] == {"from_cache": False, "key": None} and text_tower_calls
    text_tower_calls.clear()
    first = load_model(text, CPU, ArrayCache(tmp_path / "cache"), SMALL_PROMPTS)
    assert text_tower_calls and first.provenance["head_cache"]["from_cache"] is False
    text_tower_calls.clear()
    second = load_model(text, CPU, ArrayCache(tmp_path / "cache"), SMALL_PROMPTS)  # a later run over the same cache folder
    assert text_tower_calls == []
    assert second.provenance["head_cache"] == {"from_cache": True, "key": first.provenance["head_cache"]["key"]}
    assert torch.equal(second.classifier.head, first.classifier.head)
    assert torch.equal(first.classifier.head, uncached.classifier.head)
    documented = head_cache_key(sha256_file(tiny_checkpoint), TINY, False, SMALL_PROMPTS.sha256,
                                torch.float32)
    assert first.provenance["head_cache"]["key"] == cache_key(documented)


@pytest.mark.usefixtures("fake_tags")
@pytest.mark.parametrize("change", ["weights", "config", "quick_gelu", "prompts", "open_clip_version", "dtype"])
def test_changing_any_part_of_the_head_key_recomputes_the_head(caches, tiny_checkpoint, text_tower_calls, monkeypatch,
                                                               change):
    cache = ArrayCache(caches / "cache")
    text = f"openclip:{TINY}@{tiny_checkpoint}"
    prompts = SMALL_PROMPTS
    before = load_model(text, CPU, cache, prompts).provenance["head_cache"]["key"]
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
        prompts = dataclasses.replace(SMALL_PROMPTS, templates=("art of a {}.",))
    elif change == "open_clip_version":
        monkeypatch.setattr(open_clip, "__version__", open_clip.__version__ + ".post1")
    else:
        create_clip = openclip.create_clip
        monkeypatch.setattr(openclip, "create_clip",
                            lambda *args: (lambda model, weights: (model.to(torch.bfloat16), weights))(
                                *create_clip(*args)))
    after = load_model(text, CPU, cache, prompts).provenance["head_cache"]
    assert text_tower_calls, f"changing {change} reused a cached head"
    assert after["from_cache"] is False and after["key"] != before


def _tower(custom_text: bool, **text_cfg) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = {**TINY_CFG, "text_cfg": {**TINY_CFG["text_cfg"], "context_length": 77, **text_cfg}}
    kind = open_clip.model.CustomTextCLIP if custom_text else open_clip.model.CLIP
    return kind(**cfg).eval()


@pytest.mark.parametrize("custom_text", [False, True], ids=["clip", "custom-text-clip"])
@pytest.mark.parametrize("pool_type", ["argmax", "eos"])
def test_a_head_cut_after_the_longest_prompt_equals_open_clips_own_builder(custom_text, pool_type):
    """The acceptance check of the cut head: open_clip's build_zero_shot_classifier over the full 77 tokens."""
    model = _tower(custom_text, pool_type=pool_type, **({"eos_id": 49407} if pool_type == "eos" else {}))
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=77)
    imagenet = get_benchmark("imagenet").prompts()
    prompts = dataclasses.replace(imagenet, classnames=imagenet.classnames[:12])
    encode, context = openclip.prefix_text_encoder(model)
    assert 10 < context(tokenizer(prompts.texts())) < 40
    with torch.no_grad():
        ours = openclip.open_clip_head(model, tokenizer, prompts, CPU)
        theirs = open_clip.build_zero_shot_classifier(model, tokenizer, prompts.classnames, prompts.templates,
                                                      device=CPU).T
    assert ours.shape == theirs.shape == (12, 16)
    assert (ours - theirs).abs().max().item() <= 1e-5


@pytest.mark.parametrize("custom_text, text_cfg", [
    (False, {"pool_type": "last"}), (False, {"no_causal_mask": True}), (True, {"pool_type": "first"}),
    (True, {"pad_id": 0, "no_causal_mask": True})])
def test_a_tower_that_sees_past_the_end_of_text_is_never_cut(custom_text, text_cfg):
    assert openclip.prefix_text_encoder(_tower(custom_text, **text_cfg)) is None


def test_an_open_clip_folder_is_hashed_as_loaded_and_keys_its_head_on_its_config(tmp_path):
    from harness.models.embedded import export_open_clip_folder

    folder = export_open_clip_folder(tmp_path / "team-clip")
    text = f"openclip:local-dir:{folder}"
    prompts = get_benchmark("synth").prompts()
    first = load_model(text, CPU, ArrayCache(tmp_path / "cache"), prompts)
    assert first.model_id.line == "team-clip" and first.provenance["weights_sha256"] == sha256_file(
        folder / "open_clip_model.safetensors")
    config = json.loads((folder / "open_clip_config.json").read_text())
    (folder / "open_clip_config.json").write_text(json.dumps({**config, "preprocess_cfg": {"interpolation": "bicubic"}}))
    second = load_model(text, CPU, ArrayCache(tmp_path / "cache"), prompts)
    assert second.provenance["head_cache"]["from_cache"] is False  # the folder's config changed under its path
    (folder / "open_clip_pytorch_model.bin").write_bytes(b"another checkpoint")
    with pytest.raises(openclip.WeightsNotCachedError, match="exactly one of .* keep one"):
        load_model(text, CPU, None, prompts)
