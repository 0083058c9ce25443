"""sha256 of every pixel the project computes itself, on fixed inputs: rendering, greyscale, stylized, the
perturbation sequences, typographic overlays and resizing. These bytes are promised to be the same on any CPU.

`python tests/portable_pixels.py` prints them as JSON (tests/test_cpu_dispatch.py runs it under other
CPU-dispatch settings); `--regenerate` rewrites tests/golden/portable_pixels.json after a reviewed change.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).with_name("golden") / "portable_pixels.json"
RENDERED = 40  # images per split: every scene kind and style of the renderer appears in 40


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()


def portable_digests() -> dict[str, str]:
    from PIL import Image

    from harness.data.base import Preprocess
    from harness.data.folders import RESAMPLE, resize_crop
    from harness.embedded import renderer
    from harness.shifts.perturbations import SEQUENCES, greyscale, sequences, stylized
    from harness.shifts.typographic import TypographicSpec, overlay

    digests = {f"render/{split}": _digest(renderer.render_split(split, RENDERED, seed=0).images)
               for split in ("test", "v2", "sketch", "rendition", "pose", "vid", "ytbb", "hard")}
    images = renderer.render_split("test", RENDERED, seed=0).images
    digests["greyscale"] = _digest(greyscale(images))
    digests["stylized"] = _digest(stylized(images, seed=0))
    digests |= {f"sequence/{kind}": _digest(sequences(images[:8], kind, seed=0)) for kind in SEQUENCES}
    labels = np.arange(RENDERED) % len(renderer.CLASSNAMES)
    for spec in ("1x14px-white-random", "3x10px-random-random", "2x20px-black-center"):
        digests[f"typographic/{spec}"] = _digest(
            overlay(images, labels, renderer.CLASSNAMES, TypographicSpec.parse(spec), seed=0)[0])
    photo = Image.fromarray(np.concatenate([images[0], images[1][:40]], axis=0))  # 104 x 64, not square
    for interpolation in RESAMPLE:
        digests[f"resize/{interpolation}"] = _digest(
            resize_crop(photo, Preprocess(size=48, resize=56, interpolation=interpolation)))
    return digests


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    found = portable_digests()
    if "--regenerate" in sys.argv:
        GOLDEN.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
        print(f"wrote {GOLDEN}")
    else:
        print(json.dumps(found, sort_keys=True))
