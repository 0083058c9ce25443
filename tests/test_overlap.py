"""Data-overlap analysis: planted near-duplicates of the embedded benchmark are found (recall, precision), corpora
are read from folders and webdataset shards, and accuracy on all versus clean comes from a report's bits."""
import dataclasses
import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from harness.__main__ import main
from case_records import IDENTITY, case_record
from harness.records import encode_bits
from harness.cache import ArrayCache
from harness.data.synth import SynthBenchmark
from harness.embedded.renderer import render_split
from harness.overlap import (DEFAULT_PREPROCESS, OverlapError, OverlapRequest, accuracy_rows, analyse,
                             corpus_images)

KINDS = ("exact", "resized", "recompressed", "cropped")
PER_KIND = 50
DISTINCT = 2000


def planted(image: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[Image.Image, str]:
    """A near-duplicate of `image` and the file format to store it in."""
    picture = Image.fromarray(image)
    if kind == "exact":
        return picture, "png"
    if kind == "resized":
        side = int(64 * rng.uniform(0.5, 3.0))
        return picture.resize((side, side), (Image.BICUBIC, Image.BILINEAR, Image.LANCZOS)[rng.integers(3)]), "png"
    if kind == "recompressed":
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=int(rng.integers(25, 81)))
        return Image.open(buffer).convert("RGB"), "jpg"
    width, height = (int(round(64 * rng.uniform(0.7, 0.9))) for _ in range(2))
    left, top = int(rng.integers(0, 64 - width + 1)), int(rng.integers(0, 64 - height + 1))
    return picture.crop((left, top, left + width, top + height)), "png"


@pytest.fixture(scope="module")
def planted_corpus(tmp_path_factory):
    """A folder of DISTINCT rendered train images and PER_KIND planted duplicates of each kind of test images,
    in nested folders; returns (folder, {test index: planted file name})."""
    folder = tmp_path_factory.mktemp("corpus")
    for i, image in enumerate(render_split("train", DISTINCT, seed=0).images):
        sub = folder / "distinct" / f"{i // 500:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(sub / f"{i:05d}.png")
    test = render_split("test", 1000, seed=0).images
    rng = np.random.default_rng(20261130)
    chosen = rng.choice(len(test), PER_KIND * len(KINDS), replace=False)
    truth = {}
    (folder / "planted").mkdir()
    for j, index in enumerate(chosen):
        image, suffix = planted(test[index], KINDS[j // PER_KIND], rng)
        name = folder / "planted" / f"{KINDS[j // PER_KIND]}-{index:04d}.{suffix}"
        image.save(name)
        truth[int(index)] = str(name)
    return folder, truth


def test_planted_duplicates_are_found_with_high_recall_and_few_false_positives(planted_corpus, tmp_path):
    folder, truth = planted_corpus
    result = analyse(OverlapRequest("synth:test", [folder], cache_dir=tmp_path / "cache"))
    assert result["n"] == 1000 and result["corpus"]["images"] == DISTINCT + len(truth)
    found = {entry["index"]: entry["match"] for entry in result["overlap"]}
    true_positives = {i for i in found if i in truth}
    recall = len(true_positives) / len(truth)
    false_positives = len(found) - len(true_positives)
    precision = len(true_positives) / max(1, len(found))
    by_kind = {kind: sum(1 for i in true_positives if truth[i].split("/")[-1].startswith(kind)) / PER_KIND
               for kind in KINDS}
    print(f"recall {recall:.3f} {by_kind}, false positives {false_positives} of {1000 - len(truth)}, "
          f"precision {precision:.3f}")
    assert recall >= 0.95
    assert false_positives <= 0.01 * (1000 - len(truth))
    assert sum(found[i] == truth[i] for i in true_positives) >= 0.95 * len(true_positives)  # the right match
    assert result["n_clean"] == 1000 - len(found)


def shard(path, members):
    with tarfile.open(path, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    return buffer.getvalue()


def test_webdataset_shards_and_unreadable_files(tmp_path):
    test = render_split("test", 40, seed=0).images
    train = render_split("train", 30, seed=0).images
    members = [(f"{i:06d}.png", png(image)) for i, image in enumerate(train)]
    members += [(f"{i:06d}.txt", b"a caption") for i in range(3)]
    members += [("dup-000007.png", png(test[7])), ("dup-000021.jpg", b"not an image")]
    shard(tmp_path / "shard-000.tar", members)
    with tarfile.open(tmp_path / "shard-001.tar.gz", "w:gz") as archive:
        data = png(test[33])
        info = tarfile.TarInfo("x/dup-000033.png")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    names = [name for name, _ in corpus_images([tmp_path / "shard-000.tar", tmp_path / "shard-001.tar.gz"])]
    assert len(names) == 33 and not any(name.endswith(".txt") for name in names)
    assert names[-1] == f"{tmp_path / 'shard-001.tar.gz'}:x/dup-000033.png"
    result = analyse(OverlapRequest("synth:test", [tmp_path / "shard-000.tar", tmp_path / "shard-001.tar.gz"],
                                    samples=40, cache_dir=tmp_path / "cache"))
    assert result["corpus"]["unreadable"] == [f"{tmp_path / 'shard-000.tar'}:dup-000021.jpg"]
    assert [(e["index"], e["match"].split(":")[-1]) for e in result["overlap"]] == [(7, "dup-000007.png"),
                                                                                  (33, "x/dup-000033.png")]
    with pytest.raises(OverlapError, match="neither a folder nor"):
        list(corpus_images([tmp_path / "missing.zip"]))


def test_accuracy_on_all_versus_clean_with_a_one_sided_binomial_test():
    overlap = np.zeros(120, bool)
    overlap[:20] = True
    correct = np.r_[np.ones(20, bool), np.arange(100) % 2 == 0]  # overlap all right, clean half right
    case = case_record(model="m", id="m-test", n=100, per_sample=encode_bits(correct[:100]))
    row = accuracy_rows([case], overlap)[0]
    assert (row["n"], row["n_overlap"]) == (100, 20)
    assert row["accuracy_all"] == pytest.approx(60 / 100)
    assert row["accuracy_clean"] == pytest.approx(40 / 80)
    assert row["all_minus_clean"] == pytest.approx(0.1)
    assert row["p_value"] == pytest.approx(0.5 ** 20)  # P(20 of 20 right | accuracy 0.5)
    worse = dataclasses.replace(case, per_sample=encode_bits(np.r_[np.zeros(20, bool), np.ones(80, bool)]))
    assert accuracy_rows([worse], overlap)[0]["p_value"] == pytest.approx(1.0)


def report_with(cases):
    return {"schema_version": 1, "run": {"id": "r", "started": "2026-01-01T00:00:00+00:00",
                                         "finished": "2026-01-01T00:00:00+00:00", "complete": True},
            "models": {"embedded:synth-cnn": {"preprocess": {"size": 64, "resize": "none (native 64 px)"}}},
            "cases": cases, "summary": {}}


def test_cli_reads_per_sample_results_from_a_report_and_checks_their_data(tmp_path, capsys):
    n = 60
    data = SynthBenchmark().load("test", n, ArrayCache(tmp_path / "cache"), DEFAULT_PREPROCESS["synth"])
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in (3, 11, 42):
        Image.fromarray(data.images[i]).save(corpus / f"copy-{i}.png")
    for i, image in enumerate(render_split("train", 20, seed=0).images):
        Image.fromarray(image).save(corpus / f"train-{i}.png")
    bits = np.arange(n) % 3 == 0
    case = dict(IDENTITY, id="synth-cnn-clean", model="embedded:synth-cnn", status="passed", n=n,
                per_sample=encode_bits(bits), data=dict(data.provenance))
    (tmp_path / "report.json").write_text(json.dumps(report_with([case])))
    args = ["overlap", "--eval", "synth:test", "--corpus", str(corpus), "--report", str(tmp_path / "report.json"),
            f"--cache-dir={tmp_path / 'cache'}", "-o", str(tmp_path / "overlap.json")]
    assert main(args) == 0
    written = json.loads((tmp_path / "overlap.json").read_text())
    assert [e["index"] for e in written["overlap"]] == [3, 11, 42]
    row = written["accuracy"][0]
    assert row["accuracy_all"] == pytest.approx(bits.mean())
    assert row["accuracy_clean"] == pytest.approx(np.delete(bits, [3, 11, 42]).mean())
    assert "3 of 60 samples overlap" in capsys.readouterr().out
    case["data"]["sha256"] = "0" * 64  # measured on other pixels: the bits would not line up
    (tmp_path / "report.json").write_text(json.dumps(report_with([case])))
    assert main(args) == 2
    assert "its data hash differs" in capsys.readouterr().err
