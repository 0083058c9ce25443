"""harness.stream: a case streamed in chunks measures what it would holding its whole split; chunks are re-cut
on batch boundaries, prefetched on a thread, hashed as a list, their provenance merged."""
import threading
import time

import numpy as np
import pytest

from harness.cache import ArrayCache


def test_rechunked_cuts_on_unit_boundaries_and_loses_nothing():
    from harness.stream import rechunked

    pieces = list(rechunked([np.arange(0, 7), np.arange(7, 9), np.arange(9, 30)], len,
                            lambda chunk, a, b: chunk[a:b], np.concatenate, lambda chunk: 4))
    assert [len(piece) for piece in pieces] == [4, 4, 20, 2]
    assert np.array_equal(np.concatenate(pieces), np.arange(30))
    starts = np.cumsum([0] + [len(piece) for piece in pieces[:-1]])
    assert all(start % 4 == 0 for start in starts)


def test_scoring_unit_fills_whole_batches_of_frames():
    from harness.stream import scoring_unit

    assert scoring_unit(250, 1) == 250 and scoring_unit(250, 10) == 25 and scoring_unit(250, 21) == 250
    assert all(scoring_unit(b, f) * f % b == 0 for b in (1, 7, 64, 250) for f in (1, 2, 9, 10, 21))
    assert all(250 <= scoring_unit(b, f) * f < 250 + b * f for b in (1, 7, 16, 64) for f in (1, 2, 9))
    assert scoring_unit(16, 1) == 256 and scoring_unit(1, 1) == 250 and scoring_unit(512, 1) == 512


def test_prefetched_runs_ahead_on_another_thread_and_raises_where_the_producer_failed():
    from harness.stream import prefetched

    made = []

    def produce():
        for i in range(3):
            made.append((i, threading.current_thread().name))
            yield i
        raise RuntimeError("decoding failed at chunk 3")

    stream = prefetched(produce())
    assert next(stream) == 0
    time.sleep(0.2)
    assert len(made) >= 2 and all(name == "robustness-gate-prefetch" for _, name in made)  # one ahead
    assert list(zip(range(2), stream)) == [(0, 1), (1, 2)]
    with pytest.raises(RuntimeError, match="decoding failed at chunk 3"):
        next(stream)


def test_a_consumer_that_stops_early_stops_the_producer():
    from harness.stream import prefetched

    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    stream = prefetched(endless())
    assert next(stream) == 0
    stream.close()
    count = len(produced)
    time.sleep(0.3)
    assert len(produced) == count <= 3


@pytest.mark.timeout(60)  # the consumer waited forever when iter(items) raised
def test_a_producer_that_cannot_start_raises_in_the_consumer():
    from harness.stream import prefetched

    class Unreadable:
        def __iter__(self):
            raise OSError("split folder vanished")

    with pytest.raises(OSError, match="split folder vanished"):
        next(prefetched(Unreadable()))


def test_no_producer_outlives_its_stream():
    from harness.stream import prefetched

    def threads() -> int:
        return sum(thread.name == "robustness-gate-prefetch" for thread in threading.enumerate())

    before = threads()
    for stop_early in (False, True):
        stream = prefetched(iter(range(3)))
        if stop_early:
            next(stream)
            stream.close()
        else:
            assert list(stream) == [0, 1, 2]
        assert threads() == before


def _frozen(*arrays: np.ndarray) -> list[np.ndarray]:
    for array in arrays:
        array.flags.writeable = False
    return list(arrays)


def test_joined_rows_is_a_view_only_where_the_parts_are_frozen_consecutive_rows_of_one_array():
    from harness.stream import joined_rows

    base = np.arange(10 * 3 * 2, dtype=np.uint8).reshape(10, 3, 2).copy()  # owns its buffer, as a chunk's does
    consecutive = _frozen(base[2:5], base[5:6], base[6:9])
    joined = joined_rows(consecutive)
    assert np.array_equal(joined, np.concatenate(consecutive)) and np.shares_memory(joined, base)
    assert not joined.flags.writeable and base.flags.writeable
    for parts in ([base[2:5], base[5:6]],  # written to still: a view could change under a memoized hash
                  [base[2:5], _frozen(base[5:6])[0]],  # one part written to still
                  _frozen(base[2:5], base[6:9]),  # a gap
                  _frozen(base[5:6], base[2:5]),  # out of order
                  _frozen(base[2:5], base[5:7].copy()),  # another buffer
                  _frozen(base[2:5, :2], base[5:7, :2]),  # not whole rows
                  _frozen(base[::2][1:3], base[::2][3:4]),  # a strided base
                  _frozen(base.reshape(30, 2)[1:4], base.reshape(30, 2)[4:6]),  # another shape
                  _frozen(base.reshape(-1)[3:21].reshape(3, 3, 2), base.reshape(-1)[21:27].reshape(1, 3, 2))):
        joined = joined_rows(parts)
        assert np.array_equal(joined, np.concatenate(parts)) and not np.shares_memory(joined, base)
    assert np.array_equal(joined_rows(_frozen(base[4:4], base[4:6])), base[4:6])
    for parts in (_frozen(base[2:4], base.reshape(-1)[24:30]),  # the next bytes, but flat
                  _frozen(base[2:4], base[4:6].reshape(2, 6)),  # the next rows, reshaped
                  _frozen(base[2:4], base.view(np.int16)[4:6])):  # the next rows, as another dtype
        with pytest.raises(ValueError):  # as np.concatenate raises: never a view of the wrong shape
            joined_rows(parts)


def test_hash_list_is_the_chunks_own_hash_for_one_chunk_and_depends_on_every_chunk():
    from harness.stream import HASH_LIST, hash_list

    assert hash_list(["a" * 64]) == "a" * 64
    assert hash_list(["a", "b"]).startswith(HASH_LIST)
    assert hash_list(["a", "b"]) != hash_list(["b", "a"]) != hash_list(["a", "c"])


def test_merged_digests_equal_whole_digests_up_to_the_block_limit_and_fold_past_it():
    from harness.pixels import MAX_DIGESTS, image_digests, merged_digests

    images = np.random.default_rng(0).integers(0, 256, size=(900, 2, 2, 3), dtype=np.uint8)
    parts = [image_digests(images[i:i + 300]) for i in range(0, 900, 300)]
    assert merged_digests(parts) == image_digests(images)
    big = np.random.default_rng(1).integers(0, 256, size=(MAX_DIGESTS + 500, 1, 1, 3), dtype=np.uint8)
    folded = merged_digests([image_digests(big[i:i + 500]) for i in range(0, len(big), 500)])
    assert folded["block"] == 2 and folded["images"] == len(big)
    changed = big.copy()
    changed[-1] ^= 1
    assert merged_digests([image_digests(changed[i:i + 500]) for i in range(0, len(big), 500)]) != folded


@pytest.fixture(scope="module")
def cnn():
    import torch

    from harness.models import load_model

    return load_model("embedded:synth-cnn", torch.device("cpu"))


def _settings():
    from harness.attacks import ATTACKS, Attack, parse_attack, register_worst_case
    from harness.cases import Setting
    from harness.minimal import MinimalPerturbation
    from harness.shifts.corruptions import Corruption
    from harness.shifts.perturbations import FrameSequence, Transform
    from harness.shifts.typographic import Typographic, TypographicSpec

    if "stream-worst" not in ATTACKS:
        register_worst_case("stream-worst", norms=("linf",), components=("fgsm", "pgd"))
    return {
        "clean": Setting("clean", "test", "test", 230),
        "corruption": Setting("synthetic", "gaussian_noise-3", "test", 230, perturbation=Corruption("gaussian_noise", 3)),
        "stylized": Setting("synthetic", "stylized", "test", 230, perturbation=Transform("stylized")),
        "sequence": Setting("synthetic", "p-gaussian_noise", "test", 230, perturbation=FrameSequence("gaussian_noise")),
        "typographic": Setting("adversarial", "typo", "test", 230,
                               perturbation=Typographic(TypographicSpec.parse("1x14px-random-random"))),
        "attack": Setting("adversarial", "pgd", "test", 130, perturbation=Attack(parse_attack("pgd-linf-2/255"))),
        "worst-case": Setting("adversarial", "worst", "test", 130,
                              perturbation=Attack(parse_attack("stream-worst-linf-2/255"))),
        "minimal": Setting("adversarial", "minimal", "test", 70,
                           perturbation=MinimalPerturbation(parse_attack("fgsm-linf-8/255"), 3)),
        "frames": Setting("natural", "vid-pm4", "vid", 230, k=4),
    }


def assert_same_outcome(result, expected):
    """The same per-sample bits, values and metrics."""
    assert np.array_equal(result.per_sample, expected.per_sample)
    assert (result.values is None) == (expected.values is None)
    if expected.values is not None:
        assert np.array_equal(result.values, expected.values)
    assert result.extra == expected.extra


class _Pieced:
    """The synth benchmark streamed in pieces of 7 samples within its data chunks, as a decoding benchmark would."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def stream(self, split, n, cache, preprocess):
        import dataclasses

        from harness.stream import data_chunks, sliced

        for chunk in data_chunks(self.inner, split, n, cache, preprocess):
            for start in range(0, len(chunk.labels), 7):
                piece = sliced(chunk, start, start + 7)
                last = start + 7 >= len(chunk.labels)
                yield dataclasses.replace(piece, provenance={
                    key: value for key, value in chunk.provenance.items() if last or key != "sha256"})


@pytest.mark.parametrize("kind", list(_settings()))
def test_a_streamed_case_measures_what_the_whole_split_measures(tmp_path, monkeypatch, cnn, kind):
    """Chunks of 60 samples (not a multiple of the batch of 16) against one chunk holding the whole split: the
    same bits, values and metrics; the same hashes only where the split was one chunk both times. The same
    chunks in pieces of 7 (decoded ahead, joined into data chunks for a perturbation that makes pixels): the
    same outcome and the same data record as the chunks handed on whole, hashes included."""
    import torch

    import harness.evaluate
    import harness.stream
    from harness.cases import Case
    from harness.data import get_benchmark
    from harness.evaluate import RunContext, evaluate
    from harness.stream import HASH_LIST

    case = Case("embedded:synth-cnn", "synth-cnn", "synth", _settings()[kind])
    run = RunContext(torch.device("cpu"), ArrayCache(tmp_path / "whole"), seed=3, batch_size=16)
    whole = evaluate(case, cnn, run)
    monkeypatch.setattr(harness.stream, "DATA_CHUNK_SAMPLES", 60)
    monkeypatch.setattr(harness.stream, "SCORING_MIN_IMAGES", 1)  # scoring chunks of whole batches, cut across chunks
    streamed = evaluate(case, cnn, RunContext(torch.device("cpu"), ArrayCache(tmp_path / "streamed"), seed=3,
                                              batch_size=16))
    assert_same_outcome(streamed, whole)
    assert streamed.n == whole.n == case.setting.samples and streamed.batch_size == 16
    assert streamed.data["sha256"].startswith(HASH_LIST) and not whole.data["sha256"].startswith(HASH_LIST)
    assert streamed.data["n"] == whole.data["n"]
    if "image_digests" in whole.data:
        assert streamed.data["image_digests"] == whole.data["image_digests"]
        assert streamed.data["pixel_recipe"]["clean_sha256"] == streamed.data["sha256"]
    assert ("perturbed_sha256" in streamed.data) == ("perturbed_sha256" in whole.data)
    monkeypatch.setattr(harness.evaluate, "get_benchmark", lambda name, root: _Pieced(get_benchmark(name, root)))
    pieced = evaluate(case, cnn, RunContext(torch.device("cpu"), ArrayCache(tmp_path / "pieced"), seed=3,
                                            batch_size=16))
    assert_same_outcome(pieced, whole)
    assert pieced.data == streamed.data


def test_a_streamed_case_is_hashed_the_same_whatever_the_batch_size(tmp_path, monkeypatch, cnn):
    import torch

    import harness.stream
    from harness.cases import Case, Setting
    from harness.evaluate import RunContext, evaluate
    from harness.shifts.corruptions import Corruption

    monkeypatch.setattr(harness.stream, "DATA_CHUNK_SAMPLES", 50)
    monkeypatch.setattr(harness.stream, "SCORING_MIN_IMAGES", 1)
    case = Case("embedded:synth-cnn", "synth-cnn", "synth",
                Setting("synthetic", "fog-2", "test", 120, perturbation=Corruption("fog", 2)))
    records = [evaluate(case, cnn, RunContext(torch.device("cpu"), ArrayCache(tmp_path), batch_size=b)).data
               for b in (16, 50)]
    assert records[0]["sha256"] == records[1]["sha256"]
    assert records[0]["perturbed_sha256"] == records[1]["perturbed_sha256"]


def test_a_chunk_entry_of_a_streamed_split_is_not_kept_in_memory(tmp_path):
    cache = ArrayCache(tmp_path)
    cache.get_or_compute({"k": 1}, lambda: {"a": np.zeros(10)}, remember=False)
    cache.get_or_compute({"k": 2}, lambda: {"a": np.zeros(10)})
    assert len(cache._memory) == 1


def _piece(start, stop, last):
    from harness.data.base import EvalData

    provenance = {"n": stop - start, **({"sha256": f"chunk-{start}"} if last else {})}
    return EvalData(np.zeros((stop - start, 2, 2, 3), np.uint8), np.arange(start, stop), provenance, offset=start)


def test_data_blocks_join_pieces_up_to_each_chunk_end_and_refuse_a_stream_ending_inside_one():
    from harness.stream import data_blocks

    chunks = list(data_blocks([_piece(0, 2, False), _piece(2, 3, True), _piece(3, 5, True)]))
    assert [(chunk.offset, list(chunk.labels), chunk.provenance) for chunk in chunks] == [
        (0, [0, 1, 2], {"n": 3, "sha256": "chunk-2"}), (3, [3, 4], {"n": 2, "sha256": "chunk-3"})]
    with pytest.raises(ValueError, match="ended inside a data chunk"):
        list(data_blocks([_piece(0, 2, True), _piece(2, 4, False)]))


def test_only_a_perturbation_that_makes_pixels_is_handed_whole_data_chunks():
    settings = _settings()
    assert {kind for kind, setting in settings.items() if setting.perturbation is not None
            and setting.perturbation.per_chunk} == {"corruption", "stylized", "sequence", "typographic"}


def test_a_stream_ending_inside_a_data_chunk_is_refused(tmp_path, monkeypatch, cnn):
    """A benchmark whose last piece carries no hash: its last samples would go unhashed, so the case fails."""
    import dataclasses

    import torch

    import harness.evaluate
    from harness.cases import Case
    from harness.data import get_benchmark
    from harness.evaluate import RunContext, evaluate

    class Unhashed(_Pieced):
        def stream(self, split, n, cache, preprocess):
            pieces = list(super().stream(split, n, cache, preprocess))
            yield from pieces[:-1]
            yield dataclasses.replace(pieces[-1], provenance={k: v for k, v in pieces[-1].provenance.items()
                                                              if k != "sha256"})

    monkeypatch.setattr(harness.evaluate, "get_benchmark", lambda name, root: Unhashed(get_benchmark(name, root)))
    case = Case("embedded:synth-cnn", "synth-cnn", "synth", _settings()["clean"])
    with pytest.raises(ValueError, match="ended inside a data chunk"):
        evaluate(case, cnn, RunContext(torch.device("cpu"), ArrayCache(tmp_path), batch_size=16))
