"""The `transformers` family on tiny random-weight CLIP and SigLIP folders (tiny_transformers.py): a folder or a
repo of the local HF hub cache gives a zero-shot pixel classifier whose logits are the HF model's own, whose
text is padded as each model was trained, and whose head is keyed on everything it depends on."""
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.cache import ArrayCache, cache_key
from harness.files import sha256_file
from harness.models import UnknownModelError, known_model_ids, load_model, resolve
from harness.models.base import ModelId
from harness.models.hf_transformers import (TransformersFamily, fingerprint, head_cache_key, locate, preprocess_of,
                                            text_encoder)
from harness.prompts import Prompts
from harness.models.weights import WeightsNotCachedError
from model_caches import hf_cache_file
from suite_helpers import record_then_gate
from tiny_transformers import write_tiny_clip, write_tiny_siglip

CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parent.parent
PROMPTS = Prompts(("cat", "dog", "container ship", "golden retriever"), ("a photo of a {}.",), "test", "single")
TWO_TEMPLATES = dataclasses.replace(PROMPTS, templates=("a photo of a {}.", "a drawing of the {}, in pencil."),
                                    templates_source="test")


def load(text: str, cache: ArrayCache | None = None, prompts: Prompts = PROMPTS):
    return load_model(text, CPU, cache, prompts=prompts)


def features(output) -> torch.Tensor:
    """get_text_features' embeddings: a tensor in transformers 4.x, an output's pooler_output in 5.x."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def hf_model(folder: Path):
    from transformers import AutoModel, AutoTokenizer
    return AutoModel.from_pretrained(folder, local_files_only=True).eval(), AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return write_tiny_clip(tmp_path_factory.mktemp("hf") / "tiny-clip")


@pytest.fixture(scope="module")
def tiny_siglip(tmp_path_factory) -> Path:
    return write_tiny_siglip(tmp_path_factory.mktemp("hf") / "tiny-siglip")


@pytest.fixture
def folders(tiny_clip, tiny_siglip) -> dict[str, Path]:
    return {"clip": tiny_clip, "siglip": tiny_siglip}


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_a_folder_gives_a_pixel_classifier_whose_logits_are_the_hf_models_own(folders, kind):
    folder = folders[kind]
    model = load(f"transformers:{folder}")
    classifier = model.classifier
    assert model.classnames == PROMPTS.classnames and not classifier.training
    width = 16 if kind == "clip" else 32
    assert classifier.head.shape == (4, width) and classifier.head.dtype == torch.float32
    assert torch.allclose(classifier.head.norm(dim=-1), torch.ones(4), atol=1e-6)
    reference, tokenizer = hf_model(folder)
    ids = tokenizer([t.format(c) for c in PROMPTS.classnames for t in PROMPTS.templates], padding="max_length",
                    max_length=reference.config.text_config.max_position_embeddings, truncation=True,
                    return_tensors="pt")["input_ids"]
    pixels = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = classifier(pixels)
        hf_logits = reference(input_ids=ids, pixel_values=(pixels - classifier.mean) / classifier.std).logits_per_image
    bias = reference.logit_bias.item() if kind == "siglip" else 0.0
    assert logits.shape == (3, 4)
    assert torch.allclose(logits, hf_logits - bias, atol=1e-5), (logits, hf_logits - bias)
    assert classifier.logit_scale == pytest.approx(reference.logit_scale.exp().item())
    pixels.requires_grad_(True)
    classifier(pixels).sum().backward()  # attacks differentiate through it
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0
    provenance = model.provenance
    assert provenance["architecture"] == (f"transformers:{kind} vision 2x32 patch 8 at 32 px, text 2x32 context "
                                          f"{77 if kind == 'clip' else 64}, embedding {width}")
    assert provenance["head_context"] == ("cut after the longest prompt" if kind == "clip" else "full")
    assert provenance["weights_sha256"] == sha256_file(folder / "model.safetensors")
    assert provenance["prompts"] == PROMPTS.provenance() and provenance["prompts"]["sha256"] == PROMPTS.sha256
    assert provenance["n_classes"] == 4 and provenance["transformers"]
    assert provenance["text_padding"]["padding"] == "max_length" and not provenance["text_padding"]["attention_mask"]
    if kind == "siglip":
        assert provenance["logit_bias"] == pytest.approx(-10.0) and provenance["logit_scale"] == pytest.approx(10.0)
    else:
        assert "logit_bias" not in provenance


def test_preprocessing_follows_each_image_processor(folders, tmp_path):
    clip, siglip = load(f"transformers:{folders['clip']}"), load(f"transformers:{folders['siglip']}")
    assert (clip.preprocess.size, clip.preprocess.resize, clip.preprocess.interpolation) == (32, 36, "bicubic")
    assert clip.provenance["preprocess"]["resize_mode"] == "shortest_edge"
    assert clip.classifier.mean.flatten().tolist() == pytest.approx([0.48145466, 0.4578275, 0.40821073])
    assert (siglip.preprocess.size, siglip.preprocess.resize, siglip.preprocess.interpolation) == (32, 32, "bilinear")
    recorded = siglip.provenance["preprocess"]
    assert recorded["resize_mode"] == "squash" and "the same on square images" in recorded["note"]
    assert siglip.classifier.std.flatten().tolist() == [0.5, 0.5, 0.5]
    model_id = ModelId.parse("transformers:./not-square")
    with pytest.raises(ValueError, match=r"transformers:\./not-square.*not square"):
        preprocess_of({"size": {"height": 32, "width": 48}, "resample": 3}, model_id)
    with pytest.raises(ValueError, match="crops 40 px"):
        preprocess_of({"size": {"shortest_edge": 32}, "do_center_crop": True, "crop_size": 40}, model_id)
    with pytest.raises(ValueError, match="without a center crop"):
        preprocess_of({"size": {"shortest_edge": 32}, "do_center_crop": False}, model_id)
    # the old int form of CLIP repos (openai/clip-vit-base-patch32): size 224 is the shortest edge
    assert preprocess_of({"size": 224, "crop_size": 224, "do_center_crop": True, "resample": 3},
                         model_id)[1]["resize_mode"] == "shortest_edge"
    squashed = write_tiny_siglip(tmp_path / "squashed", size=(32, 48))
    with pytest.raises(UnknownModelError, match="not square"):
        resolve(f"transformers:{squashed}")


def test_clip_text_padding_after_the_end_of_text_token_changes_nothing(tiny_clip):
    reference, tokenizer = hf_model(tiny_clip)
    text = text_encoder(reference, tokenizer)
    texts = ["a photo of a cat.", "a photo of a golden retriever, in pencil.", "ship"]
    with torch.no_grad():
        family = text.encode(text.tokenize(texts))
        shortest = tokenizer(texts, padding=True, return_tensors="pt")
        masked = features(reference.get_text_features(input_ids=shortest["input_ids"],
                                                      attention_mask=shortest["attention_mask"]))
        unmasked = features(reference.get_text_features(input_ids=shortest["input_ids"]))
    assert text.tokenize(texts).shape == (3, 77) and shortest["input_ids"].shape[1] < 77
    assert (shortest["attention_mask"] == 0).any()  # the shorter prompts are padded with <pad>, not end-of-text
    assert torch.allclose(family, masked, atol=1e-5) and torch.allclose(family, unmasked, atol=1e-5)
    ids = text.tokenize(texts)
    cut = text.context(ids)  # the head's tokens end after the longest prompt's end-of-text: the same embeddings
    assert cut == int((ids == 3).int().argmax(dim=-1).max()) + 1 < 77
    with torch.no_grad():
        assert torch.allclose(text.encode(ids[:, :cut]), family, atol=1e-5)


def test_siglip_text_is_padded_to_max_length_without_a_mask_as_it_was_trained(tiny_siglip):
    reference, tokenizer = hf_model(tiny_siglip)
    head = load(f"transformers:{tiny_siglip}").classifier.head
    texts = [PROMPTS.templates[0].format(name) for name in PROMPTS.classnames]
    with torch.no_grad():
        as_trained = tokenizer(texts, padding="max_length", max_length=64, return_tensors="pt")["input_ids"]
        longest = tokenizer(texts, padding=True, return_tensors="pt")
        trained = torch.nn.functional.normalize(features(reference.get_text_features(input_ids=as_trained)), dim=-1)
        shortest = torch.nn.functional.normalize(features(reference.get_text_features(
            input_ids=longest["input_ids"], attention_mask=longest["attention_mask"])), dim=-1)
    assert as_trained.shape == (4, 64) and longest["input_ids"].shape[1] < 64
    assert torch.allclose(head, trained, atol=1e-5)
    assert (head - shortest).abs().max() > 1e-2  # padding=True is not SigLIP's rule: other embeddings
    assert text_encoder(reference, tokenizer).context is None  # nor are its tokens ever cut


def test_the_head_is_read_from_the_run_cache_on_the_second_load(tiny_siglip, tmp_path):
    cache = ArrayCache(tmp_path / "cache")
    text = f"transformers:{tiny_siglip}"
    first = load(text, cache, TWO_TEMPLATES)
    second = load(text, ArrayCache(tmp_path / "cache"), TWO_TEMPLATES)  # a later run over the same cache folder
    assert first.provenance["head_cache"]["from_cache"] is False
    assert second.provenance["head_cache"] == {"from_cache": True, "key": first.provenance["head_cache"]["key"]}
    assert torch.equal(first.classifier.head, second.classifier.head)
    assert torch.equal(first.classifier.head, load(text, None, TWO_TEMPLATES).classifier.head)
    checkpoint = locate(ModelId.parse(text))
    documented = head_cache_key(fingerprint(checkpoint), "siglip", f"folder {tiny_siglip}", TWO_TEMPLATES.sha256,
                                first.provenance["text_padding"], torch.float32)
    assert first.provenance["head_cache"]["key"] == cache_key(documented)
    assert documented["weights_sha256"] == first.provenance["weights_sha256"]


@pytest.mark.parametrize("change", ["weights", "config", "tokenizer", "prompts", "transformers_version"])
def test_changing_any_part_of_the_head_key_recomputes_the_head(tiny_clip, tmp_path, monkeypatch, change):
    import transformers

    folder = Path(shutil.copytree(tiny_clip, tmp_path / "clip"))
    cache, prompts = ArrayCache(tmp_path / "cache"), PROMPTS
    before = load(f"transformers:{folder}", cache).provenance["head_cache"]
    if change == "weights":
        from safetensors.torch import load_file, save_file
        state = load_file(str(folder / "model.safetensors"))
        state["text_projection.weight"] = state["text_projection.weight"] + 1e-3
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    elif change in ("config", "tokenizer"):
        name = "config.json" if change == "config" else "tokenizer_config.json"
        settings = json.loads((folder / name).read_text())
        (folder / name).write_text(json.dumps({**settings, "harness_test_marker": 1}))
    elif change == "prompts":
        prompts = TWO_TEMPLATES
    else:
        monkeypatch.setattr(transformers, "__version__", transformers.__version__ + ".post1")
    after = load(f"transformers:{folder}", cache, prompts).provenance["head_cache"]
    assert after["from_cache"] is False and after["key"] != before["key"], f"changing {change} reused a head"


@pytest.fixture
def hf_cache(tmp_path, monkeypatch, tiny_clip) -> Path:
    """The tiny CLIP as repo test-org/tiny-clip of an HF hub cache laid out as huggingface_hub writes it; returns
    its snapshot folder."""
    cache = tmp_path / "hf"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    copy = Path(shutil.copytree(tiny_clip, tmp_path / "download"))
    for path in sorted(copy.iterdir()):
        snapshot = hf_cache_file(cache, "test-org/tiny-clip", path.name, path).parent
    return snapshot


def test_a_repo_loads_from_the_hf_hub_cache_and_is_listed(hf_cache):
    assert TransformersFamily().names() == ["test-org/tiny-clip"]
    assert "transformers:test-org/tiny-clip" in known_model_ids()
    commit = hf_cache.name
    for text in ("transformers:test-org/tiny-clip", "transformers:test-org/tiny-clip@main",
                 f"transformers:test-org/tiny-clip@{commit}"):
        model = load(text)
        assert model.provenance["weights"] == f"test-org/tiny-clip@{commit} (model.safetensors)"
        assert model.provenance["weights_sha256"] == sha256_file(hf_cache / "model.safetensors")
    assert ModelId.parse("transformers:test-org/tiny-clip").line == "test-org-tiny-clip"


def test_an_uncached_repo_fails_at_load_naming_the_paths_searched_and_the_fetch_command(hf_cache):
    model_id, family = resolve("transformers:test-org/absent-clip@v2")  # valid: it is the cache that lacks it
    with pytest.raises(WeightsNotCachedError) as error:
        family.load(model_id, CPU, None, PROMPTS)
    message = str(error.value)
    assert str(hf_cache.parents[2] / "models--test-org--absent-clip" / "refs" / "v2") in message
    assert "AutoModel.from_pretrained('test-org/absent-clip', revision='v2')" in message
    assert "AutoTokenizer.from_pretrained('test-org/absent-clip', revision='v2')" in message
    (hf_cache / "model.safetensors").unlink()  # a snapshot without its weights is not cached either
    with pytest.raises(WeightsNotCachedError, match=r"no complete weights in .*model\.safetensors"):
        load("transformers:test-org/tiny-clip")
    assert TransformersFamily().names() == []


def test_ids_that_name_no_loadable_model_are_refused_with_the_fix(tmp_path):
    with pytest.raises(UnknownModelError, match=f"folder {tmp_path / 'absent'} does not exist"):
        resolve(f"transformers:{tmp_path / 'absent'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnknownModelError, match="holds no config.json"):
        resolve(f"transformers:{tmp_path / 'empty'}")
    for model_type, expected in (("bert", "not a CLIP or SigLIP model"), ("siglip2", "SigLIP 2")):
        (tmp_path / model_type).mkdir()
        (tmp_path / model_type / "config.json").write_text(json.dumps({"model_type": model_type}))
        with pytest.raises(UnknownModelError, match=expected):
            resolve(f"transformers:{tmp_path / model_type}")
    with pytest.raises(UnknownModelError, match="a folder takes no '@<revision>'"):
        resolve(f"transformers:{tmp_path / 'bert'}@main")
    with pytest.raises(UnknownModelError, match=r"transformers:<org>/<repo>\[@<revision>\]"):
        resolve("transformers:clip-vit-base-patch32")


def test_importing_the_model_registry_does_not_import_transformers():
    script = "import sys, harness.models; print('transformers' in sys.modules, 'tokenizers' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False False"


def test_a_tiny_transformers_clip_records_and_is_gated_on_the_embedded_benchmark(tmp_path):
    """The acceptance run of a Hugging Face CLIP folder on synth, on the CPU: its smoke slice recorded into a
    baselines folder of its own, then gated against it. The canary is left out: random weights get about one
    sample in ten right, near the 20 clean-correct samples below which it fails as unable to judge."""
    folder = write_tiny_clip(tmp_path / "team-clip")
    report, timings = record_then_gate(tmp_path, "--model", f"transformers:{folder}", "--benchmark", "synth",
                                       "-m", "smoke", "-k", "not canary", "-n", "0")
    assert (tmp_path / "baselines" / "team-clip.json").is_file()
    assert {case["status"] for case in report["cases"]} == {"passed"} and len(report["cases"]) == 13
    provenance = report["models"][f"transformers:{folder}"]
    assert provenance["prompts"]["templates"] == "synth" and provenance["n_classes"] == 10
    print("transformers CLIP folder on synth, smoke slice:", timings)


def test_weights_that_leave_a_parameter_unloaded_are_refused(tmp_path):
    """transformers initializes a parameter missing from the weights at random, with only a log line: a model
    recorded that way would be unseeded noise."""
    from safetensors.torch import load_file, save_file

    folder = write_tiny_clip(tmp_path / "partial")
    state = load_file(str(folder / "model.safetensors"))
    del state["text_projection.weight"]
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match="leave 1 parameter.*text_projection.weight.*at random"):
        load_model(f"transformers:{folder}", CPU, None, PROMPTS)
