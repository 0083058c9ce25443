"""Baseline files: `baselines/<model line>.json`, one per model line, reviewed and committed like code.

Layout (schema_version 1):
    {"schema_version": 1, "line": str, "model": str, "provenance": {...},
     "gate": {"<category>" or "default": {"confidence": float, "margin": float}}  (optional, per-model policy),
     "cases": {"<category>/<setting>": {"setting": {...}, "data_sha256": str, "seed": int, "n": int,
                                         "correct": int, "accuracy": float, "interval95": [lo, hi],
                                         "threshold": float, "policy": {"confidence": float, "margin": float},
                                         "per_sample": str (base64 of packed bits),
                                         "pixel_recipe": {...}, "image_digests": {...}  (library corruptions)}}}

A library corruption's entry also keeps its pixel recipe and per-image digests (harness.shifts.corruptions,
harness.pixels): its protocol is the recipe, and the digests say which images drifted when the bytes did.
"""
from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
from filelock import FileLock, Timeout

from .config import ConfigError, GatePolicy, policy_from_table
from .files import json_bytes, write_json_atomic, write_staged
from .metrics import attacked_pairs, wilson_lower_one_sided
from .records import CLEAN_NAME, CaseRecord, decode_bits, decode_values

SCHEMA_VERSION = 1
MAX_BYTES = 64 << 20  # far above any real baseline (the embedded ones are 0.3 MB); a larger file is refused

# Published figures a baseline may be seeded from (harness.seeding), and the model family each one covers.
OPENCLIP_SOURCE = "OpenCLIP zero-shot results (mlfoundations/open_clip docs/openclip_results.csv @ 89fb801f)"
TESTBED_SOURCE = "ImageNet testbed (modestyachts/imagenet-testbed robustness_top1s.csv @ 0170eec6)"
PUBLISHED_SOURCES = {OPENCLIP_SOURCE: "openclip", TESTBED_SOURCE: "torchvision"}
_MEASURED_ONLY = ("per_sample", "data_sha256", "n", "correct", "interval95", "pixel_recipe", "image_digests")


class BaselineError(ValueError):
    """A baseline file is unreadable or malformed; the message names the file and the key."""


def threshold_for(correct: int, n: int, policy: GatePolicy) -> float:
    """The lowest accuracy that still passes: the one-sided Wilson lower bound at `policy.confidence` of the
    baseline's accuracy, minus `policy.margin`, floored at 0."""
    return max(0.0, wilson_lower_one_sided(correct, n, policy.confidence) - policy.margin)


def baseline_path(directory: Path, line: str) -> Path:
    return Path(directory) / f"{line}.json"


_CASE_FIELDS: dict[str, tuple[type, ...]] = {
    "setting": (dict,), "data_sha256": (str,), "seed": (int,), "n": (int,), "correct": (int,),
    "accuracy": (int, float), "interval95": (list,), "threshold": (int, float), "policy": (dict,),
    "per_sample": (str,),
}


_SEEDED_FIELDS: dict[str, tuple[type, ...]] = {
    "seeded_from": (str,), "setting": (dict,), "accuracy": (int, float), "threshold": (int, float), "policy": (dict,),
}


def is_seeded(entry: Mapping[str, Any]) -> bool:
    """A case entry seeded from a published figure (see harness.seeding) rather than measured here."""
    return "seeded_from" in entry


def _check_fields(where: str, entry: Mapping[str, Any], fields: Mapping[str, tuple[type, ...]]) -> None:
    for field, types in fields.items():
        if field not in entry:
            raise BaselineError(f"{where} is missing key '{field}'")
        value = entry[field]
        if isinstance(value, bool) or not isinstance(value, types):
            raise BaselineError(f"{where}['{field}'] must be {' or '.join(t.__name__ for t in types)}, "
                                f"got {value!r:.60}")


_RERECORD = "restore the file from git, or re-record the case with --update-baselines"


def _policy(where: str, entry: Mapping[str, Any]) -> GatePolicy:
    try:
        return policy_from_table(f"{where}['policy']", entry["policy"], GatePolicy())
    except ConfigError as error:
        raise BaselineError(f"{error}; {_RERECORD}") from None


def _check_seeded(where: str, entry: Mapping[str, Any], document: Mapping[str, Any]) -> None:
    """A seeded entry is a published figure: seeded from a source this harness knows, in a file whose provenance
    names that source, for that source's model family, with no measured fields and its threshold recomputed."""
    _check_fields(where, entry, _SEEDED_FIELDS)
    family = PUBLISHED_SOURCES.get(entry["seeded_from"])
    if family is None:
        raise BaselineError(f"{where}['seeded_from'] names no published source this harness seeds from "
                            f"({sorted(PUBLISHED_SOURCES)}); a measured case cannot be marked seeded by hand: "
                            f"{_RERECORD}")
    if document["provenance"].get("seeded_from") != entry["seeded_from"]:
        raise BaselineError(f"{where} is seeded, but the file's provenance names no such source "
                            f"('seeded_from', written with the seeded baseline): {_RERECORD}")
    if not document["model"].startswith(f"{family}:"):
        raise BaselineError(f"{where} is seeded from {entry['seeded_from']}, which has figures only for "
                            f"{family}: models, not {document['model']}: {_RERECORD}")
    present = [field for field in _MEASURED_ONLY if field in entry]
    if present:
        raise BaselineError(f"{where} is seeded but holds measured fields {present}: {_RERECORD}")
    policy = _policy(where, entry)
    if not 0 <= entry["accuracy"] <= 1:
        raise BaselineError(f"{where}['accuracy'] must be in [0, 1], got {entry['accuracy']}")
    expected = round(max(0.0, entry["accuracy"] - policy.margin), 6)
    if abs(entry["threshold"] - expected) > 1e-6:
        raise BaselineError(f"{where}['threshold'] is {entry['threshold']}, but its policy gives {expected} "
                            f"(published accuracy minus margin): {_RERECORD}")


def _check_case(path: Path, key: str, entry: Any, document: Mapping[str, Any]) -> None:
    where = f"{path}: cases[{key!r}]"
    if not isinstance(entry, dict):
        raise BaselineError(f"{where} must be an object, got {type(entry).__name__}")
    if is_seeded(entry):
        _check_seeded(where, entry, document)
        return
    _check_fields(where, entry, _CASE_FIELDS)
    if not 0 <= entry["correct"] <= entry["n"] or entry["n"] < 1:
        raise BaselineError(f"{where}: needs 0 <= correct <= n and n >= 1, got correct={entry['correct']}, "
                            f"n={entry['n']}")
    if abs(entry["accuracy"] - entry["correct"] / entry["n"]) > 1e-9:
        raise BaselineError(f"{where}['accuracy'] is {entry['accuracy']}, but correct / n is "
                            f"{entry['correct']}/{entry['n']} = {entry['correct'] / entry['n']:.6f}: {_RERECORD}")
    expected = round(threshold_for(entry["correct"], entry["n"], _policy(where, entry)), 6)
    if abs(entry["threshold"] - expected) > 1e-6:
        raise BaselineError(f"{where}['threshold'] is {entry['threshold']}, but its recorded policy "
                            f"{entry['policy']} gives {expected} for {entry['correct']}/{entry['n']}: {_RERECORD}")
    try:
        bits = decode_bits(entry["per_sample"], entry["n"])
    except ValueError as error:
        raise BaselineError(f"{where}['per_sample'] is not a valid encoding: {error}") from None
    if int(bits.sum()) != entry["correct"]:
        raise BaselineError(f"{where}['per_sample'] holds {int(bits.sum())} correct samples, "
                            f"but 'correct' says {entry['correct']}")
    search = entry["setting"].get("minimal") if isinstance(entry["setting"], dict) else None
    if search is not None and "per_sample_values" not in entry:
        raise BaselineError(f"{where} is a minimal-perturbation case without 'per_sample_values', which its gate "
                            f"compares: {_RERECORD}")
    if "per_sample_values" in entry:
        try:
            values = decode_values(entry["per_sample_values"], entry["n"])
        except ValueError as error:
            raise BaselineError(f"{where}['per_sample_values'] is not valid: {error}: {_RERECORD}") from None
        if not np.array_equal(np.isinf(values), bits):
            raise BaselineError(f"{where}['per_sample_values'] disagree with 'per_sample' (a sample is robust at "
                                f"the maximum exactly when its value is null): {_RERECORD}")
        if search is not None and np.any(values[np.isfinite(values)] > search["eps"] + 1e-9):
            raise BaselineError(f"{where}['per_sample_values'] exceed the search's maximum {search['eps']}: "
                                f"{_RERECORD}")
    _check_pixel_fields(where, entry)


_RECIPE_FIELDS: dict[str, tuple[type, ...]] = {
    "clean_sha256": (str,), "corruption": (str,), "severity": (int,), "seed": (int,), "libraries": (dict,)}
_DIGEST_FIELDS: dict[str, tuple[type, ...]] = {"block": (int,), "images": (int,), "digests": (str,)}


def _check_pixel_fields(where: str, entry: Mapping[str, Any]) -> None:
    """A recipe comes with its digests, or neither is there (pixels the project computes are compared by hash)."""
    present = [key for key in ("pixel_recipe", "image_digests") if key in entry]
    if len(present) == 1:
        raise BaselineError(f"{where} has '{present[0]}' without its partner; re-record the case with "
                            f"--update-baselines")
    if not present:
        return
    for key, fields in (("pixel_recipe", _RECIPE_FIELDS), ("image_digests", _DIGEST_FIELDS)):
        if not isinstance(entry[key], dict):
            raise BaselineError(f"{where}['{key}'] must be an object")
        _check_fields(f"{where}['{key}']", entry[key], fields)
    try:
        base64.b64decode(entry["image_digests"]["digests"].encode("ascii"), validate=True)
    except ValueError as error:
        raise BaselineError(f"{where}['image_digests']['digests'] is not valid base64: {error}") from None


def _clean_renamed(path: Path, cases: dict[str, Any]) -> dict[str, Any]:
    """`cases` with a clean entry of the old form (keyed by its split, `clean/val` or `clean/test`) under the clean
    case's key `clean/clean`, its setting renamed to match: files recorded before the rename keep gating, and the
    next --update-baselines writes the new key."""
    old = [key for key in cases if key.startswith("clean/") and key != f"clean/{CLEAN_NAME}"]
    if not old:
        return cases
    if len(old) > 1 or f"clean/{CLEAN_NAME}" in cases:
        raise BaselineError(f"{path}: more than one clean entry ({', '.join(sorted(old))}); a line has one clean "
                            f"case, 'clean/{CLEAN_NAME}': keep that one and delete the others")
    entry = cases[old[0]]
    if isinstance(entry, dict) and isinstance(entry.get("setting"), dict):
        entry = {**entry, "setting": {**entry["setting"], "name": CLEAN_NAME}}
    return {(f"clean/{CLEAN_NAME}" if key == old[0] else key): (entry if key == old[0] else value)
            for key, value in cases.items()}


def read_baseline(path: Path) -> dict[str, Any] | None:
    """The parsed, validated baseline at `path`, or None when there is no such file."""
    path = Path(path)
    if not path.is_file():
        return None
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise BaselineError(f"{path}: {size} bytes, more than any baseline holds ({MAX_BYTES}); restore it from "
                            f"git, or delete it and record the line again with --update-baselines")
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        detail = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise BaselineError(f"{path}: not valid JSON ({detail}); restore it from git, or delete it and "
                            f"record the line again with --update-baselines") from None
    if not isinstance(document, dict):
        raise BaselineError(f"{path}: the top level must be an object")
    for key, kind in (("schema_version", int), ("line", str), ("model", str), ("provenance", dict),
                      ("cases", dict)):
        if key not in document:
            raise BaselineError(f"{path}: missing key '{key}'")
        if not isinstance(document[key], kind):
            raise BaselineError(f"{path}: '{key}' must be {kind.__name__}, got {document[key]!r:.60}")
    if document["schema_version"] != SCHEMA_VERSION:
        raise BaselineError(f"{path}: schema_version {document['schema_version']} is not supported "
                            f"(this harness reads {SCHEMA_VERSION})")
    if document["line"] != path.stem:
        raise BaselineError(f"{path}: 'line' is {document['line']!r}, but the file is the baseline of line "
                            f"{path.stem!r} (a baseline copied from another line?); restore it from git")
    document["cases"] = _clean_renamed(path, document["cases"])
    for key, entry in document["cases"].items():
        _check_case(path, key, entry, document)
    overrides = document.get("gate", {})
    if not isinstance(overrides, dict):
        raise BaselineError(f"{path}: 'gate' must be an object of per-category policies")
    for category, table in overrides.items():
        if not isinstance(table, dict):
            raise BaselineError(f"{path}: gate[{category!r}] must be an object with 'confidence' and/or 'margin'")
        try:
            policy_from_table(f"{path}: gate[{category!r}]", table, GatePolicy())
        except ConfigError as error:
            raise BaselineError(str(error)) from None
    return document


def check_model(document: Mapping[str, Any], path: Path, model: str, provenance: Mapping[str, Any]) -> None:
    """A measured baseline gates only the architecture it was recorded for (a candidate's weights may differ);
    BaselineError when the file was recorded for another one."""
    then = document.get("provenance", {}).get("model", {}).get("architecture")
    now = provenance.get("architecture")
    if then is not None and now is not None and then != now:
        raise BaselineError(f"{path}: recorded for {document.get('model')} ({then}), but {model} is {now}; a "
                            f"baseline copied from another line? Restore it from git, or gate {model} against its "
                            f"own line (`--model <line>={model}`)")


def check_policy(entry: Mapping[str, Any], path: Path, key: str, configured: GatePolicy) -> None:
    """A measured entry is gated under the policy it was recorded with, which must be the one configured now
    (pyproject's, then the file's `gate` block): a policy edited into one entry by hand is refused."""
    if is_seeded(entry):
        return
    recorded = GatePolicy(float(entry["policy"]["confidence"]), float(entry["policy"]["margin"]))
    if recorded != configured:
        raise BaselineError(f"{path}: cases[{key!r}] was recorded under policy {entry['policy']}, but this run's "
                            f"policy is {{'confidence': {configured.confidence}, 'margin': {configured.margin}}} "
                            f"([tool.robustness.gate] and the file's 'gate' block); restore the file from git, or "
                            f"re-record the case with --update-baselines after changing the policy on purpose")


JOURNAL = ".commit.json"
LOCK = ".baselines.lock"
LOCK_TIMEOUT_S = 900.0
_STAGED = ".staged"


@contextlib.contextmanager
def baselines_lock(directory: Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the baselines folder's lock: one --update-baselines at a time reads, merges and commits there. A run
    that cannot get it within `timeout` seconds raises BaselineError naming the lock file, and writes nothing."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(directory / LOCK))
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise BaselineError(f"{directory / LOCK}: another --update-baselines has held the baselines folder for "
                            f"{timeout:.0f} s; wait for it and rerun (nothing was written)") from None
    try:
        roll_forward(directory)
        yield
    finally:
        lock.release()


def roll_forward(directory: Path) -> None:
    """Finish a commit that was interrupted after its journal was written, or drop the files of one interrupted
    before: a folder shows all of a commit's files or none of them. Call it holding the lock."""
    directory = Path(directory)
    journal = directory / JOURNAL
    if journal.is_file():
        for staged, target in json.loads(journal.read_text())["renames"]:
            if (directory / staged).exists():
                os.replace(directory / staged, directory / target)
        _fsync_directory(directory)
        journal.unlink()
    for orphan in directory.glob(f".*{_STAGED}"):
        orphan.unlink()


def _fsync_directory(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def commit_documents(directory: Path, documents: Mapping[Path, Mapping[str, Any]]) -> None:
    """Write every document or none, whatever moment the process is killed at: each is staged beside its target
    (fsynced, with the target's permissions), then a journal naming them is written atomically, then they are
    renamed into place and the journal removed; `roll_forward` finishes or drops an interrupted commit. Call it
    holding `baselines_lock(directory)`. A target that is a symbolic link is refused: replacing it would cut the
    link."""
    directory = Path(directory)
    for path in documents:
        if Path(path).parent.resolve() != directory.resolve():
            raise ValueError(f"{path} is not in {directory}")
        if Path(path).is_symlink():
            raise BaselineError(f"{path} is a symbolic link; --update-baselines replaces files atomically and will "
                                f"not cut the link: point --baselines-dir at the folder the link leads to, or "
                                f"replace the link with its file")
    renames = []
    for path, document in documents.items():
        staged = Path(path).with_name(f".{Path(path).name}.{os.getpid()}{_STAGED}")
        data = json_bytes(document)
        write_staged(staged, lambda handle: handle.write(data), Path(path))
        renames.append([staged.name, Path(path).name])
    write_json_atomic(directory / JOURNAL, {"renames": renames})
    roll_forward(directory)


def baseline_entry(record: CaseRecord, policy: GatePolicy) -> dict[str, Any]:
    """The baseline entry of one measured case record."""
    return {
        "setting": dict(record.setting), "data_sha256": record.data_sha256, "seed": record.seed,
        "n": record.n, "correct": record.correct, "accuracy": record.accuracy,
        "interval95": list(record.interval95), "per_sample": record.per_sample,
        "threshold": round(threshold_for(record.correct, record.n, policy), 6),
        "policy": {"confidence": policy.confidence, "margin": policy.margin},
    } | {key: record.data[key] for key in ("pixel_recipe", "image_digests") if key in (record.data or {})} | (
        {} if record.per_sample_values is None else {"per_sample_values": list(record.per_sample_values)})


@dataclasses.dataclass(frozen=True)
class BaselineUpdate:
    """What recording a run changes: the documents to commit (all or none), a line per changed entry, and the
    entries whose threshold would drop below the recorded one (committed only with --allow-loosen)."""

    documents: dict[Path, dict[str, Any]]
    changes: list[str]
    loosened: list[str]


def _change(case: CaseRecord, entry: Mapping[str, Any], previous: Mapping[str, Any] | None) -> str | None:
    lo, hi = case.interval95
    where = f"{case.line} {case.key}"
    if previous is None:
        return f"{where}: new, accuracy {case.accuracy:.4f} [{lo:.4f}, {hi:.4f}], threshold {entry['threshold']:.4f}"
    if is_seeded(previous):
        return (f"{where}: seeded {previous['accuracy']:.4f} -> measured {entry['accuracy']:.4f}, threshold "
                f"{entry['threshold']:.4f}")
    if previous["accuracy"] == entry["accuracy"] and previous["n"] == entry["n"]:
        return None
    return (f"{where}: {previous['accuracy']:.4f} (n={previous['n']}) -> {entry['accuracy']:.4f} [{lo:.4f}, "
            f"{hi:.4f}] (n={entry['n']}, {entry['accuracy'] - previous['accuracy']:+.4f}), threshold "
            f"{previous['threshold']:.4f} -> {entry['threshold']:.4f}")


def _median_fall(entry: Mapping[str, Any], previous: Mapping[str, Any] | None, precision: float) -> str | None:
    """How a re-recorded minimal perturbation's median fell against the recorded one (over the samples with one
    in both), when it fell by more than half the precision; None otherwise."""
    if previous is None or "per_sample_values" not in previous or "per_sample_values" not in entry or (
            previous["n"] != entry["n"]):
        return None
    now = decode_values(entry["per_sample_values"], entry["n"])
    before = decode_values(previous["per_sample_values"], previous["n"])
    pairs = attacked_pairs(now, before)
    if not pairs.any():
        return None
    median_now, median_before = float(np.median(now[pairs])), float(np.median(before[pairs]))
    if median_now < median_before - precision / 2:
        return f"median minimal perturbation {median_before:.6g} -> {median_now:.6g}"
    return None


def updated_documents(cases: Sequence[CaseRecord], old: Mapping[str, Mapping[str, Any] | None], directory: Path,
                      policy_for: Callable[[str, Mapping[str, Any] | None], GatePolicy],
                      run_provenance: Mapping[str, Any]) -> BaselineUpdate:
    """The baseline files of `directory` after recording the measured `cases` into them: `old` holds each
    line's document as it is now (None when absent), `policy_for(category, the file's gate overrides)` the policy
    an entry is recorded under, `run_provenance` what the run adds to each file's provenance (git, versions,
    CPU, seed, time). Pure: reads and writes nothing."""
    documents, changes, loosened = {}, [], []
    for line in sorted({case.line for case in cases}):
        previous_document = old.get(line) or {"cases": {}}
        overrides = previous_document.get("gate")
        line_cases = [case for case in cases if case.line == line]
        entries = dict(previous_document["cases"])
        for case in line_cases:
            entry = baseline_entry(case, policy_for(case.category, overrides))
            previous = previous_document["cases"].get(case.key)
            change = _change(case, entry, previous)
            if change is not None:
                changes.append(change)
            if previous is not None and not is_seeded(previous) and entry["threshold"] < previous["threshold"] - 1e-9:
                loosened.append(f"{line} {case.key}: threshold {previous['threshold']:.4f} -> "
                                f"{entry['threshold']:.4f}")
            fell = _median_fall(entry, previous, (case.metrics or {}).get("precision", 0.0))
            if fell is not None:
                loosened.append(f"{line} {case.key}: {fell}")
            entries[case.key] = entry
        provenance = {"model": dict(line_cases[0].model_provenance), **run_provenance}
        if any(is_seeded(entry) for entry in entries.values()):  # published figures not measured yet
            provenance["seeded_from"] = previous_document["provenance"]["seeded_from"]
        document = {"schema_version": SCHEMA_VERSION, "line": line, "model": line_cases[0].model,
                    "provenance": provenance, "cases": dict(sorted(entries.items()))}
        if overrides is not None:
            document["gate"] = overrides
        documents[baseline_path(directory, line)] = document
    return BaselineUpdate(documents, changes, loosened)
