"""Library corruptions on one process against all of the machine's cores, at 224 px, in one run: seconds per
image for each, the ratio, and whether the bytes are the same (they must be: each image is seeded on its own).

    python benchmarks/bench_corruptions.py [--images 32] [--corruptions glass_blur,motion_blur,...] [--workers N]

Each side corrupts a few images first, untimed: the pool's processes start and import imagecorruptions, and
numba compiles glass_blur's kernel (seconds, once per process), as a run's later cases find them. On 2 cores the
ideal ratio is 0.5.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from harness.shifts.corruptions import corrupt_images, corruption_pool


def seconds(function) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--corruptions", default="glass_blur,motion_blur,frost,gaussian_noise")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    images = np.random.default_rng(0).integers(0, 256, size=(args.images, 224, 224, 3), dtype=np.uint8)
    corruption_pool(args.workers)
    print(f"{args.images} images at 224 px, 1 process against {args.workers}")
    print(f"{'corruption':18} {'1 proc s/img':>13} {f'{args.workers} procs s/img':>15} {'ratio':>7}  same bytes")
    for name in args.corruptions.split(","):
        corrupt_images(images[:1], name, 3, seed=0)
        corrupt_images(images[:args.workers * 2], name, 3, seed=0, workers=args.workers)
        one, serial = seconds(lambda: corrupt_images(images, name, 3, seed=0))
        many, parallel = seconds(lambda: corrupt_images(images, name, 3, seed=0, workers=args.workers))
        print(f"{name:18} {one / args.images:13.3f} {many / args.images:15.3f} {many / one:7.2f}  "
              f"{'yes' if np.array_equal(serial, parallel) else 'NO'}")
        if not np.array_equal(serial, parallel):
            raise SystemExit(f"{name}: the processes gave other bytes than one process")


if __name__ == "__main__":
    main()
