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
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .config import ConfigError, GatePolicy, policy_from_table
from .metrics import wilson_lower_one_sided

SCHEMA_VERSION = 1


class BaselineError(ValueError):
    """A baseline file is unreadable or malformed; the message names the file and the key."""


def encode_bits(values: np.ndarray) -> str:
    return base64.b64encode(np.packbits(values.astype(bool)).tobytes()).decode("ascii")


def decode_bits(text: str, n: int) -> np.ndarray:
    packed = np.frombuffer(base64.b64decode(text.encode("ascii"), validate=True), dtype=np.uint8)
    if packed.size != (n + 7) // 8:
        raise ValueError(f"{packed.size} bytes encode {packed.size * 8} samples, expected n={n}")
    return np.unpackbits(packed)[:n].astype(bool)


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


def _check_case(path: Path, key: str, entry: Any) -> None:
    where = f"{path}: cases[{key!r}]"
    if not isinstance(entry, dict):
        raise BaselineError(f"{where} must be an object, got {type(entry).__name__}")
    if is_seeded(entry):
        _check_fields(where, entry, _SEEDED_FIELDS)
        if not 0 <= entry["accuracy"] <= 1 or not 0 <= entry["threshold"] <= 1:
            raise BaselineError(f"{where}: 'accuracy' and 'threshold' must be in [0, 1]")
        return
    _check_fields(where, entry, _CASE_FIELDS)
    if not 0 <= entry["correct"] <= entry["n"] or entry["n"] < 1:
        raise BaselineError(f"{where}: needs 0 <= correct <= n and n >= 1, got correct={entry['correct']}, "
                            f"n={entry['n']}")
    if not 0 <= entry["threshold"] <= 1:
        raise BaselineError(f"{where}['threshold'] must be in [0, 1], got {entry['threshold']}")
    try:
        policy_from_table(f"{where}['policy']", entry["policy"], GatePolicy())
    except ConfigError as error:
        raise BaselineError(str(error)) from None
    try:
        bits = decode_bits(entry["per_sample"], entry["n"])
    except ValueError as error:
        raise BaselineError(f"{where}['per_sample'] is not a valid encoding: {error}") from None
    if int(bits.sum()) != entry["correct"]:
        raise BaselineError(f"{where}['per_sample'] holds {int(bits.sum())} correct samples, "
                            f"but 'correct' says {entry['correct']}")
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


def read_baseline(path: Path) -> dict[str, Any] | None:
    """The parsed, validated baseline at `path`, or None when there is no such file."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BaselineError(f"{path}: not valid JSON ({error}); restore it from git or re-record it with "
                            f"--update-baselines") from None
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
    for key, entry in document["cases"].items():
        _check_case(path, key, entry)
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


def write_atomic(path: Path, document: Mapping[str, Any]) -> None:
    """Write JSON to `path` so that readers see the old file or the new one, never a partial one. The file keeps
    its permissions; a new one gets the usual ones (0666 less the umask), not mkstemp's 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        mode = path.stat().st_mode & 0o7777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, indent=1, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def baseline_entry(record: Mapping[str, Any], policy: GatePolicy) -> dict[str, Any]:
    """The baseline entry of one measured case record (see harness.report.case_record)."""
    return {
        "setting": record["setting"], "data_sha256": record["data_sha256"], "seed": record["seed"],
        "n": record["n"], "correct": record["correct"], "accuracy": record["accuracy"],
        "interval95": record["interval95"], "per_sample": record["per_sample"],
        "threshold": round(threshold_for(record["correct"], record["n"], policy), 6),
        "policy": {"confidence": policy.confidence, "margin": policy.margin},
    } | {key: record["data"][key] for key in ("pixel_recipe", "image_digests") if key in record.get("data", {})}
