"""Slower tests (a few seconds) of the committed embedded models and the hard split."""
from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch
from safetensors.torch import load_file

from harness.embedded import (CLIP_CHECKPOINT, CLIP_CONFIG, CLIP_MEAN, CLIP_MODEL_NAME, CLIP_STD, CNN_CHECKPOINT,
                              REFERENCE_CHECKPOINT)
from harness.embedded import benchmark as bm
from harness.embedded.cnn import SynthCNN
from harness.embedded.train import (clip_predictor, cnn_predictor, seed_everything, train_clip, train_clip_schedule,
                                    train_cnn)


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


def test_training_is_deterministic():
    train = bm.render_split("train", 64)
    images, labels = torch.from_numpy(train.images), torch.from_numpy(train.labels)
    captions = bm.train_captions(64)
    seed_everything(0)

    def clip_state():
        return train_clip(images, labels, captions, steps=2, batch=32, lr=1e-3, seed=3).state_dict()

    def cnn_state():
        return train_cnn(images, labels, width=4, steps=2, batch=32, lr=1e-3, seed=3, name="cnn").state_dict()

    for first, second in ((clip_state(), clip_state()), (cnn_state(), cnn_state())):
        assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_a_continued_schedule_equals_the_uninterrupted_one():
    train = bm.render_split("train", 64)
    images, labels = torch.from_numpy(train.images), torch.from_numpy(train.labels)
    captions = bm.train_captions(64)
    seed_everything(0)
    recipe = dict(batch=32, lr=1e-3, seed=3, device=torch.device("cpu"))
    whole = train_clip_schedule(images, labels, captions, schedule=[2, 2, 2], **recipe).state_dict()
    first = train_clip_schedule(images, labels, captions, schedule=[2], **recipe).state_dict()
    continued = train_clip_schedule(images, labels, captions, schedule=[2, 2], init=first, first_cycle=1,
                                    **recipe).state_dict()
    assert all(torch.equal(whole[k], continued[k]) for k in whole)
    assert not all(torch.equal(whole[k], first[k]) for k in whole)
    with pytest.raises(ValueError, match="first_cycle"):
        train_clip_schedule(images, labels, captions, schedule=[2], init=first, **recipe)
