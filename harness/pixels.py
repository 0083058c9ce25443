"""Per-image fingerprints of perturbed pixels, and how two runs' pixels differ under one recipe.

A library corruption is compared by its recipe, not its bytes (harness.shifts.corruptions explains why). When
the recipe matches but the bytes do not, the case still runs and is gated by its paired test; what drifted is
recorded: how many images differ, read off per-image digests that the baseline keeps. A digest covers one image,
or a block of consecutive images when a case has more than MAX_DIGESTS of them, so a baseline stays small.
"""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import math
from typing import Any, Mapping, Sequence

import numpy as np

MAX_DIGESTS = 1024
DIGEST_BYTES = 4


def image_digests(images: np.ndarray) -> dict[str, Any]:
    """{"block": images per digest, "images": N, "digests": base64 of DIGEST_BYTES per block} of uint8 (N, ...)."""
    block = max(1, math.ceil(len(images) / MAX_DIGESTS))
    digests = b"".join(hashlib.sha256(np.ascontiguousarray(images[start:start + block]).data).digest()[:DIGEST_BYTES]
                       for start in range(0, len(images), block))
    return {"block": block, "images": int(len(images)), "digests": base64.b64encode(digests).decode("ascii")}


def merged_digests(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The digests of consecutive chunks' images (each fingerprinted image by image) as one fingerprint: the
    per-image digests joined, then, past MAX_DIGESTS, folded into blocks whose digest is the sha256 of their
    images' digests. A split of at most MAX_DIGESTS images gets the digests `image_digests` gives it whole."""
    if any(part["block"] != 1 for part in parts):
        raise ValueError("only per-image digests (block 1) of chunks can be merged")
    raw = b"".join(base64.b64decode(part["digests"].encode("ascii"), validate=True) for part in parts)
    images = sum(int(part["images"]) for part in parts)
    block = max(1, math.ceil(images / MAX_DIGESTS))
    if block > 1:
        span = block * DIGEST_BYTES
        raw = b"".join(hashlib.sha256(raw[i:i + span]).digest()[:DIGEST_BYTES] for i in range(0, len(raw), span))
    return {"block": block, "images": images, "digests": base64.b64encode(raw).decode("ascii")}


def _blocks(fingerprint: Mapping[str, Any]) -> list[bytes]:
    raw = base64.b64decode(fingerprint["digests"].encode("ascii"), validate=True)
    return [raw[i:i + DIGEST_BYTES] for i in range(0, len(raw), DIGEST_BYTES)]


@dataclasses.dataclass(frozen=True)
class PixelDrift:
    """Bytes that moved under an unchanged recipe: `blocks_differing` of `blocks` digests differ, each covering
    `block` consecutive images, so at most `images_differing` images carry other bytes."""

    blocks_differing: int
    blocks: int
    block: int
    images: int

    @property
    def images_differing(self) -> int:
        return min(self.images, self.blocks_differing * self.block)

    def describe(self) -> str:
        unit = "images" if self.block == 1 else f"blocks of {self.block} images"
        return f"{self.blocks_differing} of {self.blocks} {unit} differ in bytes"

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self) | {"images_differing": self.images_differing}


def pixel_drift(now: Mapping[str, Any], baseline: Mapping[str, Any]) -> PixelDrift:
    """How the pixels fingerprinted by `now` differ from `baseline`'s, block by block."""
    if (now["block"], now["images"]) != (baseline["block"], baseline["images"]):
        raise ValueError(f"digests of {now['images']} images in blocks of {now['block']} cannot be compared with "
                         f"digests of {baseline['images']} images in blocks of {baseline['block']}")
    ours, theirs = _blocks(now), _blocks(baseline)
    return PixelDrift(sum(a != b for a, b in zip(ours, theirs)), len(ours), int(now["block"]), int(now["images"]))


def drift_note(recorded: Mapping[str, Any]) -> str:
    """One line for a case record's `pixel_drift` (PixelDrift.as_dict), as the summary and the HTML report show it."""
    return (f"pixel drift under the same recipe: at most {recorded['images_differing']} of {recorded['images']} "
            f"images differ in bytes; gated by the paired test")
