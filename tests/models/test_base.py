"""The model loading path: registry -> family -> committed checkpoint -> pixel-space classifier."""
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from harness.models import ModelId, UnknownModelError, known_model_ids, load_model, resolve
from harness.files import sha256_file
from harness.models.embedded import CHECKPOINTS


@pytest.mark.parametrize("text, message", [
    ("embedded:nope", "unknown embedded model"),
    ("nope:model", "unknown model family 'nope'"),
    ("synth-clip", r"not of the form \[line=\]family:name"),
])
def test_unknown_ids_list_the_known_ones(text, message):
    with pytest.raises(UnknownModelError, match=message) as error:
        resolve(text)
    assert "embedded:synth-clip" in str(error.value) and "embedded:synth-cnn" in str(error.value)


def test_known_ids():
    assert {"embedded:synth-clip", "embedded:synth-cnn"} <= set(known_model_ids())


@pytest.fixture(scope="module", params=["embedded:synth-clip", "embedded:synth-cnn"])
def model(request):
    return load_model(request.param, torch.device("cpu"))


def test_classifier_is_frozen_in_eval_mode(model):
    assert not model.classifier.training
    assert not any(p.requires_grad for p in model.classifier.parameters())


def test_pixels_in_unit_range_map_to_class_logits(model):
    pixels = torch.rand(4, 3, model.input_size, model.input_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model.classifier(pixels)
        normalized = model.classifier.features((pixels - model.classifier.mean) / model.classifier.std)
    assert logits.shape == (4, len(model.classnames))
    assert torch.equal(logits, model.classifier(pixels))
    # normalization happens inside the classifier, with the recorded mean/std
    assert model.classifier.mean.flatten().tolist() == pytest.approx(model.provenance["preprocess"]["mean"])
    if model.classifier.head.numel():
        expected = model.classifier.logit_scale * torch.nn.functional.normalize(normalized, dim=-1) @ model.classifier.head.T
        assert torch.allclose(logits, expected)
        assert torch.allclose(model.classifier.head.norm(dim=-1), torch.ones(len(model.classnames)))
    else:
        assert torch.equal(logits, normalized)


def test_weights_come_from_the_committed_checkpoint(model):
    name = model.model_id.name
    path = CHECKPOINTS / f"{name}.safetensors"
    assert model.provenance["weights_sha256"] == sha256_file(path)
    stored = load_file(str(path))
    state = model.classifier.features.state_dict()
    prefix = "visual." if name == "synth-clip" else ""
    matched = [key for key in state if prefix + key in stored]
    assert matched, "no classifier tensor matches the checkpoint"
    for key in matched:
        assert torch.equal(state[key].float(), stored[prefix + key].float()), key


@pytest.mark.parametrize("model_id, floor", [("embedded:synth-clip", 0.85), ("embedded:synth-cnn", 0.95)])
def test_committed_models_meet_their_clean_accuracy(model_id, floor):
    from harness.embedded.renderer import render_split

    data = render_split("test", 300, seed=0)
    model = load_model(model_id, torch.device("cpu"))
    pixels = torch.from_numpy(data.images).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        accuracy = (model.classifier(pixels).argmax(1).numpy() == data.labels).mean()
    assert accuracy >= floor, f"{model_id}: clean accuracy {accuracy:.3f} < {floor}"
    assert np.bincount(data.labels).min() == np.bincount(data.labels).max()


@pytest.mark.parametrize("text, line", [
    ("openclip:ViT-B-32@openai", "ViT-B-32-openai"),
    ("openclip:ViT-B-32@/ckpt/rc2.safetensors", "ViT-B-32"),
    ("openclip:hf-hub:org/repo", "hf-hub-org-repo"),
    ("openclip:local-dir:/ckpt/team-clip", "team-clip"),
    ("transformers:./models/team-clip/", "team-clip"),
    ("transformers:~/models/team-clip", "team-clip"),
    ("transformers:openai/clip-vit-base-patch32", "openai-clip-vit-base-patch32"),
    ("rc=transformers:/tmp/x/team-clip", "rc"),
    ("openclip:local-dir:models/team-clip", "team-clip"),
    ("transformers:./models/team-clip/..", "models"),
])
def test_the_model_line_of_each_id_form(text, line):
    """A folder's model line is its name, so the baseline file does not change when the folder moves."""
    assert ModelId.parse(text).line == line
