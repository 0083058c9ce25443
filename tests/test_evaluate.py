"""harness.evaluate: predictions cached by what they depend on, batches that fit the device, attacks and
their saved images, a case measured through its perturbation."""
import dataclasses

import numpy as np
import pytest

from harness.cache import ArrayCache


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, size=(3, 64, 64, 3), dtype=np.uint8)


def test_predictions_are_cached_by_model_inputs_and_numerics(tmp_path, images):
    import torch

    from harness.data import Preprocess
    from harness.evaluate import RunContext, predict
    from harness.models.base import LoadedModel, ModelId, PixelClassifier

    calls = []

    class Counting(torch.nn.Module):
        def forward(self, x):
            calls.append(len(x))
            return x.mean(dim=(2, 3))

    model = LoadedModel(ModelId("test", "mean"), PixelClassifier(Counting(), (0.5,) * 3, (0.25,) * 3).eval(),
                        ("r", "g", "b"), Preprocess(images.shape[1], images.shape[1]), {"weights_sha256": "a"})
    run = RunContext(torch.device("cpu"), ArrayCache(tmp_path), batch_size=2)
    first = predict(model, images, run)
    assert np.array_equal(predict(model, images, dataclasses.replace(run, cache=ArrayCache(tmp_path))), first)  # disk
    assert len(calls) == -(-len(images) // 2)
    predict(model, images, dataclasses.replace(run, batch_size=3))  # another batch size: recomputed
    other = dataclasses.replace(model, provenance={"weights_sha256": "b"})
    predict(other, images, run)  # other weights: recomputed
    assert len(calls) == -(-len(images) // 2) + -(-len(images) // 3) + -(-len(images) // 2)


def test_batch_size_is_halved_until_it_fits_in_gpu_memory():
    import torch

    from harness.evaluate import fitted

    tried = []

    def run(batch_size):
        tried.append(batch_size)
        if batch_size > 64:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return f"ran at {batch_size}"

    assert fitted(run, 250) == ("ran at 62", 62) and tried == [250, 125, 62]
    with pytest.raises(torch.cuda.OutOfMemoryError):
        fitted(lambda b: run(10_000), 2)


@pytest.fixture(scope="module")
def cnn():
    import torch

    from harness.models import load_model

    return load_model("embedded:synth-cnn", torch.device("cpu"))


def _case(setting):
    from harness.cases import Case

    return Case("embedded:synth-cnn", "synth-cnn", "synth", setting)


@pytest.mark.parametrize("kind", ["clean", "corruption", "sequence", "typographic", "attack", "frames"])
def test_a_case_is_measured_through_its_settings_perturbation(tmp_path, cnn, kind):
    import torch

    from harness.attacks import Attack, parse_attack
    from harness.cases import Setting
    from harness.evaluate import RunContext, evaluate
    from harness.shifts.corruptions import Corruption
    from harness.shifts.perturbations import FrameSequence
    from harness.shifts.typographic import Typographic, TypographicSpec

    settings = {
        "clean": Setting("clean", "test", "test", 20),
        "corruption": Setting("synthetic", "fog-3", "test", 20, perturbation=Corruption("fog", 3)),
        "sequence": Setting("synthetic", "p-zoom", "test", 20, perturbation=FrameSequence("zoom")),
        "typographic": Setting("adversarial", "typo", "test", 20,
                               perturbation=Typographic(TypographicSpec.parse("1x14px-white-center"))),
        "attack": Setting("adversarial", "pgd", "test", 20, perturbation=Attack(parse_attack("pgd-linf-8/255"))),
        "frames": Setting("natural", "vid-pm4", "vid", 20, k=4),
    }
    run = RunContext(torch.device("cpu"), ArrayCache(tmp_path), seed=0, batch_size=8, amp="off")
    result = evaluate(_case(settings[kind]), cnn, run)
    assert result.n == 20 and result.per_sample.dtype == bool and result.batch_size == 8
    perturbed = "perturbed_sha256" in result.data
    assert perturbed == (kind in ("corruption", "sequence", "typographic"))
    if kind == "corruption":
        assert result.data["pixel_recipe"]["corruption"] == "fog" and "image_digests" in result.data
    expected_metrics = {"sequence": {"flip_probability", "accuracy_first_frame"},
                        "typographic": {"attack_success_rate"},
                        "attack": {"clean_accuracy", "median_perturbation_norm"}}.get(kind, set())
    assert set(result.extra) == expected_metrics
    record = result.record(cnn.provenance)
    assert record.setting == settings[kind].as_dict() and record.status is None


def test_an_attack_case_is_weaker_than_its_clean_case(tmp_path, cnn):
    import torch

    from harness.attacks import Attack, parse_attack
    from harness.cases import Setting
    from harness.evaluate import RunContext, evaluate

    run = RunContext(torch.device("cpu"), ArrayCache(tmp_path), batch_size=50)
    clean = evaluate(_case(Setting("clean", "test", "test", 50)), cnn, run)
    attacked = evaluate(_case(Setting("adversarial", "pgd", "test", 50,
                                      perturbation=Attack(parse_attack("pgd-linf-8/255")))), cnn, run)
    assert attacked.correct < clean.correct and not (attacked.per_sample & ~clean.per_sample).any()


def test_evaluate_reads_through_the_benchmark_it_is_given(tmp_path, cnn, monkeypatch):
    """The plugin checks a case's splits on a benchmark before the model loads and hands it over, so that its
    listings are reused: evaluate then reads from that instance and looks up none of its own."""
    import torch

    import harness.evaluate
    from harness.cases import Setting
    from harness.data import get_benchmark
    from harness.evaluate import RunContext, evaluate

    given, read = get_benchmark("synth"), []
    load = given.load
    monkeypatch.setattr(given, "load", lambda split, *rest: read.append(split) or load(split, *rest))
    monkeypatch.setattr(harness.evaluate, "get_benchmark", lambda *_: pytest.fail("evaluate got a benchmark itself"))
    run = RunContext(torch.device("cpu"), ArrayCache(tmp_path), batch_size=50)
    assert evaluate(_case(Setting("clean", "test", "test", 50)), cnn, run, given).n == 50 and read == ["test"]


@pytest.mark.parametrize("piece", [2, 100])
def test_a_pre_rendered_perturbation_records_the_clean_split_whatever_its_pieces(tmp_path, monkeypatch, piece):
    """ImageNet-C read from disk in pieces: the record's `sha256` and unreadable files are the clean split's
    (once, not per piece), its `perturbed_sha256` the rendered split's hash as a whole."""
    from types import SimpleNamespace

    import torch

    import harness.data.imagenet
    from harness.cases import Case, Setting
    from harness.data import Preprocess, get_benchmark
    from harness.evaluate import RunContext, _recorded, _split_inputs
    from harness.shifts.corruptions import Corruption
    from harness.stream import ProvenanceMerge
    from imagenet_trees import WNIDS, class_tree, manifest

    monkeypatch.setattr(harness.data.imagenet, "PIECE_SAMPLES", piece)
    root, pre = tmp_path / "data", Preprocess(size=8, resize=10, interpolation="bilinear")
    for folder, dataset in ((root / "imagenet" / "val", root / "imagenet"), (root / "imagenet-c" / "fog" / "3",) * 2):
        for wnid in WNIDS:
            (folder / wnid).mkdir(parents=True, exist_ok=True)
        manifest(dataset, class_tree(folder, WNIDS[:3], per_class=2) + (folder.name == "val"))
    (root / "imagenet" / "val" / WNIDS[0] / "empty.JPEG").write_bytes(b"")
    case = Case("m", "m", "imagenet", Setting("synthetic", "fog-3", "val", 6, perturbation=Corruption("fog", 3)))
    run = RunContext(torch.device("cpu"), ArrayCache(tmp_path / "cache"), data_root=root)
    inputs, fixed = _split_inputs(case, SimpleNamespace(preprocess=pre), run, get_benchmark("imagenet", root))
    merge = ProvenanceMerge()
    assert sum(len(chunk.images) for chunk in _recorded(inputs, merge)) == 6
    record = {**merge.result(), **fixed}
    benchmark = get_benchmark("imagenet", root)
    clean = benchmark.load("val", 6, ArrayCache(tmp_path / "clean"), pre)
    rendered = benchmark.load_perturbed({"corruption": {"name": "fog", "severity": 3}}, 6, ArrayCache(tmp_path / "c"),
                                        Preprocess(8, 8, "bilinear"))
    assert record["sha256"] == clean.provenance["sha256"] and record["n"] == 6
    assert record["unreadable_files"] == clean.provenance["unreadable_files"] and len(record["unreadable_files"]) == 1
    assert record["perturbed_sha256"] == rendered.provenance["sha256"]
