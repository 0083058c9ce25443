"""Slower tests (a few seconds) of the committed embedded models and the hard split."""
from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch
from safetensors.torch import load_file

from harness.embedded import (CLIP_CHECKPOINT, CLIP_CONFIG, CLIP_MEAN, CLIP_MODEL_NAME, CLIP_STD, CNN_CHECKPOINT,
                              REFERENCE_CHECKPOINT)
from harness.embedded import renderer as bm
from harness.embedded.cnn import SynthCNN
from tools.train_embedded import clip_predictor, cnn_predictor


@pytest.fixture(scope="module")
def test_images():
    return bm.render_split("test", 100)


def test_clip_loads_through_open_clip_factory(test_images):
    open_clip.add_model_config(CLIP_CONFIG)
    model, _, preprocess = open_clip.create_model_and_transforms(CLIP_MODEL_NAME, pretrained=str(CLIP_CHECKPOINT))
    model.eval()
    tokenizer = open_clip.get_tokenizer(CLIP_MODEL_NAME)
    assert tuple(model.visual.preprocess_cfg["mean"]) == pytest.approx(CLIP_MEAN)
    assert tuple(model.visual.preprocess_cfg["std"]) == pytest.approx(CLIP_STD)
    assert model.visual.image_size == (bm.IMAGE_SIZE, bm.IMAGE_SIZE)
    assert tokenizer(["a photo of a fish."]).shape == (1, 16)
    with torch.no_grad():
        predictions = clip_predictor(model, tokenizer)(test_images.images)
    assert (predictions == test_images.labels).mean() > 0.5  # chance is 0.1


def test_synth_cnn_checkpoint_matches_default_architecture(test_images):
    model = SynthCNN().eval()  # the project loads the committed state_dict into the default architecture
    model.load_state_dict(load_file(str(CNN_CHECKPOINT)))
    logits = model(torch.zeros(2, 3, bm.IMAGE_SIZE, bm.IMAGE_SIZE))
    assert logits.shape == (2, len(bm.CLASSNAMES))
    assert (cnn_predictor(model)(test_images.images) == test_images.labels).mean() > 0.85


def test_reference_cnn_misclassifies_hard_samples():
    hard = bm.render_split("hard", 50)
    predictions = cnn_predictor(SynthCNN.load(REFERENCE_CHECKPOINT))(hard.images)
    assert not np.any(predictions == hard.labels)


def test_synth_clip_is_built_on_first_use_and_its_provenance_needs_no_open_clip():
    """A case whose predictions are cached never builds the CLIP: its provenance (what the cache keys on) is read
    from the checkpoint alone, and it says what the built classifier does."""
    import subprocess
    import sys

    script = ("import sys, torch; from harness.models import load_model; "
              "m = load_model('embedded:synth-clip', torch.device('cpu')); print('open_clip' in sys.modules); "
              "c = m.classifier; print('open_clip' in sys.modules, c.training, "
              "c.logit_scale == m.provenance['logit_scale'], "
              "torch.allclose(c.mean.flatten(), torch.tensor(m.provenance['preprocess']['mean'])), "
              "all(not p.requires_grad for p in c.parameters()))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "False", "True", "True", "True"]
