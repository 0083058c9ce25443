"""tools/train_embedded.py: the embedded models' training is deterministic, resumable, and scored with the
harness's own classifiers."""
import numpy as np
import pytest
import torch

from harness.embedded import CLIP_CHECKPOINT
from harness.embedded import renderer as bm
from harness.models import load_model
from torch_settings import TorchSettings
from tools.train_embedded import (ClipSchedule, Cycle, TrainingSet, accuracies, clip_predictor, load_clip,
                                  seed_everything, train_clip, train_clip_schedule, train_cnn)


@pytest.fixture(scope="module")
def data():
    train = bm.render_split("train", 64)
    return TrainingSet(torch.from_numpy(train.images), torch.from_numpy(train.labels), bm.train_captions(64))


@pytest.fixture
def seeded():
    """seed_everything(0) for one test: its threads and deterministic algorithms are the training's, not the
    worker's, so they are put back after it."""
    kept = TorchSettings.now()
    seed_everything(0)
    yield
    kept.restore()


def test_training_is_deterministic(data, seeded):
    cycle = Cycle(steps=2, batch=32, lr=1e-3, seed=3)

    def clip_state():
        return train_clip(data, cycle).state_dict()

    def cnn_state():
        return train_cnn(data, cycle, width=4, name="cnn").state_dict()

    for first, second in ((clip_state(), clip_state()), (cnn_state(), cnn_state())):
        assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_a_continued_schedule_equals_the_uninterrupted_one(data, seeded):
    cpu = torch.device("cpu")
    whole = train_clip_schedule(data, ClipSchedule((2, 2, 2), 32, 1e-3, 3), cpu).state_dict()
    first = train_clip_schedule(data, ClipSchedule((2,), 32, 1e-3, 3), cpu).state_dict()
    continued = train_clip_schedule(data, ClipSchedule((2, 2), 32, 1e-3, 3, resume=(first, 1)), cpu).state_dict()
    assert all(torch.equal(whole[k], continued[k]) for k in whole)
    assert not all(torch.equal(whole[k], first[k]) for k in whole)
    with pytest.raises(ValueError, match="cycles it went through"):
        ClipSchedule((2,), 32, 1e-3, 3, resume=(first, 0))


def test_training_scores_with_the_classifier_the_suite_gates():
    """The accuracy a training run records is the suite's: same head, normalization and pm-k scoring."""
    test = bm.render_split("test", 200)
    clip, tokenizer = load_clip(CLIP_CHECKPOINT)
    suite_model = load_model("embedded:synth-clip", torch.device("cpu"))
    with torch.no_grad():
        suite = suite_model.classifier(torch.from_numpy(test.images).permute(0, 3, 1, 2).float() / 255).argmax(1)
    assert np.array_equal(clip_predictor(clip, tokenizer)(test.images), suite.numpy())
    vid = bm.render_split("vid", 20)
    measured = accuracies({"clip": clip_predictor(clip, tokenizer)}, {"vid": (vid.images, vid.labels)})["clip"]
    assert set(measured["vid"]) == {"pm0", "pm4"} and measured["vid"]["pm4"] <= measured["vid"]["pm0"]
