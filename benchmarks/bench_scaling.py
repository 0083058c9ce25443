"""Scaling and overlap of a clean ImageNet case: peak memory and throughput as the split grows, and whether slow
data loading hides behind compute.

    python benchmarks/bench_scaling.py [--root DIR] [--sizes 500,5000,20000] [--skip-overlap | --overlap-only]
                                       [--arch shufflenet_v2_x0_5] [--system-allocator]

Writes (once; reused when `--root` already holds a complete one) an ImageNet-layout val tree of 1000 wnid folders
`n00000000`..`n00000999` with 20 JPEGs each (20,000 images of 320x240, smooth deterministic noise, quality 85)
and a `manifest.json` stating the count, and random weights of `--arch` (`torchvision:<arch>@<file>`).

Scaling: for each n, a fresh subprocess loads the model, warms it on one batch, runs one first case of one batch
(what a process pays once, such as lazy imports and thread pools, is not then charged to the smallest n; a suite
worker pays it at its first case, not at each), and times `harness.evaluate` of the imagenet `val` clean case at
224 px, each time with a cold cache of its own (ArrayCache in a new temporary folder): listing, decode, cache
write and classification of n images; a small n is timed several times (`repeats`) and the median kept. It reports
wall time, images/s and its peak RSS (`ru_maxrss`, the whole process: interpreter, torch and model included). The
table gives both against the smallest n; a streamed split keeps peak RSS flat and throughput constant, so each
should stay within 10% across n. A least-squares line wall = a + n / r through the rows then separates what every
case pays whatever its n (a: listing the tree, the first scoring chunk decoded before the model starts) from the
rate r past it; a small n's throughput is n / (a + n / r).

Overlap ("a case whose data loading is slowed costs max(load, compute), not their sum"), in another subprocess at
`--overlap-n` images: C is a bare loop of the model over the decoded images (no harness), D the unslowed load
(`Benchmark.load`, cold cache). `harness.data.folders.decode` (and every harness module's reference to it) is then
wrapped to sleep per image, the delay chosen (once, from D and a first C) so that the slowed load L is about C; W is
the slowed case through `evaluate` with a cold cache. C, L and W are measured in OVERLAP_REPEATS rounds,
interleaved, and the median round (by W) and the medians of the rounds' ratios are printed: on a shared VM the bare
loop alone varied from 5.7 to 11.8 s between consecutive runs, so one C, L and W taken a minute apart gave W /
max(L, C) anywhere from 1.1 to 2.3. Each W is also split, from when the scorer asked for each scoring chunk and when
it got it, into its fill (listing and the first chunk's load), its stalls (the scorer waiting for data later, the
stream's end included: near 0 when loading keeps ahead) and its scoring (the rest: forward passes, slower than C
where decoding shares the model's cores, and the case's bookkeeping after its stream ended). Loading then computing
gives W / max(L, C) near 2; decoding in pieces (harness.stream.PIECE_SAMPLES) a scoring chunk ahead of the one being
scored leaves only the first batch's load unhidden, at best max(L, C) + L * batch / n (1.125 at 2000 images in
batches of 250), and a bit more, since decoding and the model share the CPU cores. The same first batch, with the
listing of the tree, is what a small n cannot overlap: it is what the throughput at n = 500 pays against larger n.
Where decoding and the model share the CPU, the case also cannot take less wall time than their CPU work (the
unslowed load's and the bare loop's, user and system, measured with getrusage) divided by the cores; the sleep adds
none. The last line sets W against max(L, C, that floor): near 1 means whatever the machine could overlap was
overlapped.

Every child starts with the allocator tuning the suite gives its workers (harness.allocator: glibc's
transparent huge pages for large blocks), unless --system-allocator starts them with glibc.malloc.hugetlb=0,
under which each batch's activations are page-faulted in afresh, 4 KiB at a time.

Speed is printed, never asserted; the script exits 1 only when a child fails. The default model is
shufflenet_v2_x0_5, the cheapest torchvision classifier at 224 px (41 MFLOPs; mobilenet_v3_small and squeezenet1_1
ran 1.5-3x slower here), since compute dominates the run: on 2 CPU cores (100 to 240 images/s through the harness,
by CPU) the whole run at the default sizes, tree and overlap section included, took 4 to 6 minutes; on a slower or
busier machine pass smaller --sizes. It is also the model against which a case's fixed cost weighs most: `--arch
resnet18` (1.8 GFLOPs, the model of the issue's first measurement) ran at 52.6 and 51.4 images/s at n = 500 and
5,000 here (2026-12-04), within 2%, and would take about 15 minutes at the default sizes.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import resource
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path
from statistics import median
from tempfile import TemporaryDirectory
from typing import Any, Callable, Iterator

import numpy as np
from PIL import Image

CLASSES, PER_CLASS = 1000, 20
IMAGE_SIZE = (320, 240)  # the short side is resized up to 256, then the 224 center crop taken: both steps run
DEFAULT_ARCH = "shufflenet_v2_x0_5"  # the cheapest torchvision classifier at 224 px (see the docstring)
TOLERANCE = 0.10
REPEAT_IMAGES = 2500  # a small n is timed repeatedly, up to this many images in all (`repeats`)
OVERLAP_REPEATS = 3  # rounds of C, L and W in the overlap check (`overlap_child`)


# --------------------------------------------------------------------------------------------------- the tree

def image_path(val: Path, index: int) -> Path:
    """Where image `index` (class index // PER_CLASS) of the tree lies."""
    return val / f"n{index // PER_CLASS:08d}" / f"ILSVRC2012_val_{index:08d}.JPEG"


def write_image(job: tuple[Path, int]) -> None:
    """Write image `index` under `val`: smooth noise seeded by the index, tinted by its class."""
    val, index = job
    rng = np.random.default_rng(index)
    tint = np.random.default_rng(CLASSES + index // PER_CLASS).integers(0, 128, 3)
    coarse = (rng.integers(0, 128, (6, 8, 3)) + tint).astype(np.uint8)
    picture = Image.fromarray(coarse).resize(IMAGE_SIZE, Image.Resampling.BICUBIC)
    picture.save(image_path(val, index), quality=85)


def tree_complete(root: Path) -> bool:
    """Whether `root` holds the tree `write_tree` writes: its manifest (written last) and every image file."""
    manifest = root / "imagenet" / "manifest.json"
    if not manifest.is_file() or json.loads(manifest.read_text()) != {"expected_images": CLASSES * PER_CLASS}:
        return False
    val = root / "imagenet" / "val"
    return all(image_path(val, i).is_file() for i in range(CLASSES * PER_CLASS))


def write_tree(root: Path) -> float | None:
    """Write `<root>/imagenet/val/<wnid>/*.JPEG` (CLASSES folders of PER_CLASS images) and its manifest.json on
    every core, unless already complete; the seconds it took, or None when it was reused."""
    if tree_complete(root):
        return None
    started = time.perf_counter()
    val = root / "imagenet" / "val"
    for label in range(CLASSES):
        (val / f"n{label:08d}").mkdir(parents=True, exist_ok=True)
    with Pool(os.cpu_count()) as pool:
        for _ in pool.imap_unordered(write_image, [(val, i) for i in range(CLASSES * PER_CLASS)], chunksize=250):
            pass
    (root / "imagenet" / "manifest.json").write_text(json.dumps({"expected_images": CLASSES * PER_CLASS}))
    os.sync()  # else the kernel writes the new files back during the first measurement, the smallest n's
    return time.perf_counter() - started


def write_weights(path: Path, arch: str) -> None:
    """Random (seed 0) weights of torchvision's `arch` as a safetensors file, loadable as
    `torchvision:<arch>@<path>`."""
    import torch
    from safetensors.torch import save_file
    from torchvision.models import get_model

    torch.manual_seed(0)
    save_file({k: v.contiguous() for k, v in get_model(arch, weights=None).state_dict().items()}, str(path))


# ------------------------------------------------------------------------------------------ child processes

def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def loaded(model_id: str, batch_size: int) -> Any:
    """The random-weight model on CPU, warmed by one forward pass of a batch, so one-time costs (thread pools,
    first allocations) are not timed as part of the smallest n."""
    import torch

    from harness.models import load_model

    model = load_model(model_id, torch.device("cpu"))
    size = model.preprocess.size
    with torch.no_grad():
        model.classifier(torch.zeros(batch_size, 3, size, size))
    return model


def clean_case(model: Any, n: int) -> Any:
    """The imagenet clean case on `val` at n samples."""
    from harness.cases import Case, Setting
    from harness.records import CLEAN_NAME

    return Case(str(model.model_id), model.model_id.line, "imagenet", Setting("clean", CLEAN_NAME, "val", n))


def evaluate_span(model: Any, n: int, root: Path, batch_size: int) -> tuple[float, float]:
    """perf_counter seconds when `evaluate` of the clean case at n images, with a cold cache, started and ended
    (the cache's folder is made before and removed after); raises unless it scored n."""
    import torch

    from harness.cache import ArrayCache
    from harness.evaluate import RunContext, evaluate

    with TemporaryDirectory(prefix="bench-scaling-cache-") as cache:
        run = RunContext(torch.device("cpu"), ArrayCache(Path(cache)), 0, batch_size, data_root=root)
        started = time.perf_counter()
        result = evaluate(clean_case(model, n), model, run)
        ended = time.perf_counter()
    if result.n != n:
        raise RuntimeError(f"evaluate scored {result.n} images, asked for {n}")
    return started, ended


def timed_evaluate(model: Any, n: int, root: Path, batch_size: int) -> float:
    """Wall seconds of `evaluate` of the clean case at n images with a cold cache (`evaluate_span`)."""
    started, ended = evaluate_span(model, n, root, batch_size)
    return ended - started


def module_constant(module: str, name: str) -> Any:
    """`module.name`, or None when the module or the name does not exist."""
    try:
        return getattr(importlib.import_module(module), name, None)
    except ModuleNotFoundError:
        return None


def chunk_constant() -> Any:
    """The data-chunk size of harness.stream (DATA_CHUNK_SAMPLES, earlier DATA_CHUNK_IMAGES); None without one."""
    for name in ("DATA_CHUNK_SAMPLES", "DATA_CHUNK_IMAGES"):
        value = module_constant("harness.stream", name)
        if value is not None:
            return value
    return None


def child_environment(system_allocator: bool) -> dict[str, str]:
    """The children's environment: this one's, with the suite's huge-page tuning for its workers
    (`huge_pages = true`), or with it off; a harness without harness.allocator leaves it as it is."""
    environ = dict(os.environ)
    tune = module_constant("harness.allocator", "huge_pages_for_children")
    if system_allocator:  # other tunables of yours kept; the huge-page one replaced
        kept = [entry for entry in environ.get("GLIBC_TUNABLES", "").split(":")
                if entry and not entry.startswith("glibc.malloc.hugetlb=")]
        environ["GLIBC_TUNABLES"] = ":".join(kept + ["glibc.malloc.hugetlb=0"])
    elif tune is not None:
        tune(environ)
    return environ


def run_settings(batch_size: int) -> dict[str, Any]:
    """Batch size, decode threads, data-chunk size and allocator in force: RunContext's fields where it has
    them, else the module constants (harness.data.folders.DECODE_THREADS, `chunk_constant`); None when unknown."""
    import torch

    from harness.evaluate import RunContext

    run = RunContext(torch.device("cpu"), batch_size=batch_size)
    return {"batch_size": run.batch_size,
            "decode_threads": getattr(run, "decode_threads",
                                      module_constant("harness.data.folders", "DECODE_THREADS")),
            "chunk_samples": getattr(run, "chunk_samples", chunk_constant()),
            "torch_threads": torch.get_num_threads(),
            "allocator": f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '(unset)')}"}


def scaling_child(n: int, root: Path, model_id: str, batch_size: int) -> dict[str, Any]:
    """One scaling measurement, run in a fresh process: n, wall seconds, images/s, peak RSS (MiB) before the
    case (after model load and warm-up) and at its end. The warm-up is a first case of one batch (its own cold
    cache, `first_case_s`), as a suite worker has run one before its next: what a process pays once (lazy
    imports, the decode threads, PIL's codecs, torch's first allocations) is then not charged to the smallest n,
    while each case's own start (listing the tree, the first batch decoded before the model starts) is."""
    model = loaded(model_id, batch_size)
    first = timed_evaluate(model, batch_size, root, batch_size)
    before = peak_rss_mib()
    walls = sorted(timed_evaluate(model, n, root, batch_size) for _ in range(repeats(n)))
    wall = walls[len(walls) // 2]
    return {"n": n, "wall_s": wall, "images_per_s": n / wall, "runs": len(walls), "wall_range_s": [walls[0], walls[-1]],
            "first_case_s": first, "peak_rss_before_mib": before, "peak_rss_mib": peak_rss_mib(),
            "settings": run_settings(batch_size)}


def repeats(n: int) -> int:
    """How many times n is timed (the median kept): a few seconds' case varies by 10% or more from run to run on
    a shared 2-core machine, so small n are timed until REPEAT_IMAGES images have passed, an odd count."""
    runs = max(1, -(-REPEAT_IMAGES // n))
    return runs + 1 - runs % 2


@contextlib.contextmanager
def slowed_decode(delay_s: float) -> Iterator[list[int]]:
    """`harness.data.folders.decode`, and every loaded harness module's reference to that function, wrapped to
    sleep `delay_s` before each image; yields a one-element list counting the calls. Restored on exit."""
    folders = importlib.import_module("harness.data.folders")
    original: Callable[..., Any] = folders.decode
    calls = [0]

    def decode(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        time.sleep(delay_s)
        return original(*args, **kwargs)

    holders = [module for name, module in list(sys.modules.items())
               if name.startswith("harness") and getattr(module, "decode", None) is original]
    for module in holders:
        module.decode = decode
    try:
        yield calls
    finally:
        for module in holders:
            module.decode = original


def timed_load(model: Any, n: int, root: Path) -> tuple[float, Any]:
    """(wall seconds, EvalData) of loading n `val` images for `model` with a cold cache (`Benchmark.load`)."""
    from harness.cache import ArrayCache
    from harness.data import get_benchmark

    with TemporaryDirectory(prefix="bench-scaling-cache-") as cache:
        started = time.perf_counter()
        data = get_benchmark("imagenet", root).load("val", n, ArrayCache(Path(cache)), model.preprocess)
        return time.perf_counter() - started, data


def bare_compute_s(model: Any, images: np.ndarray, batch_size: int) -> float:
    """Wall seconds of a bare loop of the model over uint8 (N, H, W, 3) images: to float, forward, argmax."""
    import torch

    started = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            pixels = torch.from_numpy(images[start:start + batch_size].copy())  # cached arrays are read-only
            model.classifier(pixels.permute(0, 3, 1, 2).float().div(255).contiguous()).argmax(1)
    return time.perf_counter() - started


@contextlib.contextmanager
def traced_scoring() -> Iterator[list[tuple[float, float]]]:
    """`harness.evaluate.prefetched` wrapped to record, for each scoring chunk and for the end of the stream, when
    the scorer asked for it and when it got it (perf_counter seconds); yields that list, empty where the harness
    has no such function."""
    evaluate_module = importlib.import_module("harness.evaluate")
    original = getattr(evaluate_module, "prefetched", None)
    events: list[tuple[float, float]] = []

    def traced(items: Any) -> Iterator[Any]:
        chunks = original(items)
        try:
            while True:
                asked = time.perf_counter()
                try:
                    chunk = next(chunks)
                except StopIteration:
                    events.append((asked, time.perf_counter()))
                    return
                events.append((asked, time.perf_counter()))
                yield chunk
        finally:  # a scorer that stops early stops the prefetch thread now, not when the generator is collected
            chunks.close()

    if original is not None:
        evaluate_module.prefetched = traced
    try:
        yield events
    finally:
        if original is not None:
            evaluate_module.prefetched = original


def overlap_child(n: int, root: Path, model_id: str, batch_size: int) -> dict[str, Any]:
    """The overlap measurement, run in a fresh process: D (unslowed load) and a first C (bare compute) fix the
    per-image delay that makes the slowed load about C; then OVERLAP_REPEATS rounds of C, L (slowed load) and W
    (slowed case through evaluate), interleaved so that a machine's slow minute falls on all three of a round, in
    seconds. Each W is split into `fill_s` (from evaluate's start until the scorer got its first chunk),
    `stall_s` (its later waits for data, the end of the stream included) and `scoring_s` (the rest: forward
    passes, and the case's own bookkeeping after its stream ended)."""
    model = loaded(model_id, batch_size)
    settings = run_settings(batch_size)
    before = cpu_s()
    unslowed_s, data = timed_load(model, n, root)
    between = cpu_s()
    calibration_s = bare_compute_s(model, data.images, batch_size)
    load_cpu_s, compute_cpu_s = between - before, cpu_s() - between
    threads = settings["decode_threads"] or 1
    delay_s = max(0.0, calibration_s - unslowed_s) * threads / n
    rounds = []
    for _ in range(OVERLAP_REPEATS):
        compute_s = bare_compute_s(model, data.images, batch_size)
        with slowed_decode(delay_s) as calls:
            load_s, _ = timed_load(model, n, root)
            if calls[0] < n:
                raise RuntimeError(f"the slowed decode ran {calls[0]} times for {n} images: the loader no longer "
                                   f"calls harness.data.folders.decode per image; update bench_scaling.slowed_decode")
            with traced_scoring() as events:
                started, ended = evaluate_span(model, n, root, batch_size)
        case_s = ended - started
        row = {"compute_s": compute_s, "load_s": load_s, "case_s": case_s}
        if events:
            row["fill_s"] = events[0][1] - started
            row["stall_s"] = sum(got - asked for asked, got in events[1:])
            row["scoring_s"] = case_s - row["fill_s"] - row["stall_s"]
        rounds.append(row)
    return {"n": n, "unslowed_load_s": unslowed_s, "delay_ms": delay_s * 1e3, "rounds": rounds,
            "load_cpu_s": load_cpu_s, "compute_cpu_s": compute_cpu_s,
            "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1,
            "settings": settings}


def cpu_s() -> float:
    """CPU seconds (user and system, every thread) this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


CHILDREN: dict[str, Callable[[int, Path, str, int], dict[str, Any]]] = {"scaling": scaling_child,
                                                                          "overlap": overlap_child}


def run_child(kind: str, n: int, root: Path, model_id: str, batch_size: int,
              environ: dict[str, str]) -> dict[str, Any] | None:
    """Run CHILDREN[kind] in a fresh interpreter and return the JSON it prints last; None (after printing its
    stderr's tail) when it fails."""
    command = [sys.executable, __file__, "--child", kind, "--n", str(n), "--root", str(root), "--model-id",
               model_id, "--batch-size", str(batch_size)]
    done = subprocess.run(command, capture_output=True, text=True, env=environ)
    if done.returncode != 0:
        print(f"{kind} child at n={n} FAILED (exit {done.returncode}):\n{done.stderr[-3000:]}", flush=True)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------- reporting

def print_settings(settings: dict[str, Any]) -> None:
    print(f"batch size {settings['batch_size']}, decode threads {settings['decode_threads']}, data chunk "
          f"{settings['chunk_samples']} samples, torch threads {settings['torch_threads']}")
    print(f"allocator: {settings.get('allocator', 'not recorded')}")


def print_scaling(rows: list[dict[str, Any]]) -> None:
    """The scaling table against the first row, and a verdict per metric (every ratio within TOLERANCE of 1)."""
    first = rows[0]
    print(f"{'n':>6} {'wall s':>8} {'runs (range s)':>17} {'RSS before MiB':>15} {'peak RSS MiB':>13} {'img/s':>8} "
          f"{'RSS ratio':>10} {'img/s ratio':>12} {'first case s':>13}")
    for row in rows:
        low, high = row["wall_range_s"]
        runs = f"{row['runs']} ({low:.1f}-{high:.1f})"
        print(f"{row['n']:>6} {row['wall_s']:>8.1f} {runs:>17} "
              f"{row['peak_rss_before_mib']:>15.0f} {row['peak_rss_mib']:>13.0f} {row['images_per_s']:>8.1f} "
              f"{row['peak_rss_mib'] / first['peak_rss_mib']:>10.2f} {row['images_per_s'] / first['images_per_s']:>12.2f} "
              f"{row['first_case_s']:>13.1f}")
    print("(wall s: the median of the runs; first case s: each process's warm-up case of one batch, not timed)")
    if len(rows) > 1:
        slope, fixed_s = np.polyfit([row["n"] for row in rows], [row["wall_s"] for row in rows], 1)
        rate = f"r = {1 / slope:.1f} img/s (the rate past that)" if slope > 0 else "no rate (the walls fall with n)"
        print(f"least squares, wall = a + n / r: a = {fixed_s:.2f} s per case (what every case pays whatever its n), "
              f"{rate}")
    for label, field in (("peak RSS", "peak_rss_mib"), ("throughput", "images_per_s")):
        within = all(abs(row[field] / first[field] - 1) <= TOLERANCE for row in rows)
        print(f"{label} within {TOLERANCE:.0%} across n (against n={first['n']}): {'yes' if within else 'no'}")


def print_overlap(row: dict[str, Any]) -> None:
    """Each round's L, C, W, W / max(L, C) and W split into fill, stalls and scoring; the median round (by W)
    and the medians of the rounds' ratios, against max(L, C) and against max(L, C, the CPU work's floor)."""
    rounds = row["rounds"]
    floor_s = (row["load_cpu_s"] + row["compute_cpu_s"]) / row["cores"]
    print(f"overlap at n={row['n']}: unslowed load D {row['unslowed_load_s']:.1f} s, delay {row['delay_ms']:.2f} ms "
          f"per image, {len(rounds)} rounds")
    traced = all("fill_s" in one for one in rounds)
    print(f"{'round':>6} {'L s':>6} {'C s':>6} {'L + C s':>8} {'W s':>6} {'W/max(L,C)':>11}"
          + (f" {'fill s':>7} {'stalls s':>9} {'scoring s':>10}" if traced else ""))
    for index, one in enumerate(rounds, 1):
        print(f"{index:>6} {one['load_s']:>6.1f} {one['compute_s']:>6.1f} {one['load_s'] + one['compute_s']:>8.1f} "
              f"{one['case_s']:>6.1f} {one['case_s'] / max(one['load_s'], one['compute_s']):>11.2f}"
              + (f" {one['fill_s']:>7.2f} {one['stall_s']:>9.2f} {one['scoring_s']:>10.1f}" if traced else ""))
    middle = sorted(rounds, key=lambda one: one["case_s"])[(len(rounds) - 1) // 2]
    print(f"median round (by W): L (slowed load) {middle['load_s']:.1f} s, C (bare compute) {middle['compute_s']:.1f} s, "
          f"W (slowed case) {middle['case_s']:.1f} s"
          + (f" = fill {middle['fill_s']:.2f} (listing and the first scoring chunk's load) + stalls "
             f"{middle['stall_s']:.2f} (the scorer waiting for data later) + scoring {middle['scoring_s']:.1f}"
             if traced else ""))
    print(f"median of the rounds' W / max(L, C): "
          f"{median([one['case_s'] / max(one['load_s'], one['compute_s']) for one in rounds]):.2f}  "
          f"(1: overlapped, 2: serial)")
    print(f"CPU work: load {row['load_cpu_s']:.1f} s, compute {row['compute_cpu_s']:.1f} s, on {row['cores']} cores "
          f"at least {floor_s:.1f} s of wall together; median of the rounds' W / max(L, C, that) "
          f"{median([one['case_s'] / max(one['load_s'], one['compute_s'], floor_s) for one in rounds]):.2f}")


# ------------------------------------------------------------------------------------------------------ main

def sizes(text: str) -> list[int]:
    values = sorted({int(part) for part in text.split(",") if part.strip()})
    if not values or not all(1 <= value <= CLASSES * PER_CLASS for value in values):
        raise argparse.ArgumentTypeError(f"sizes must be in 1..{CLASSES * PER_CLASS}")
    return values


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def measure(args: argparse.Namespace, root: Path) -> bool:
    """Write the tree and weights, run the sections asked for, print them; whether every child succeeded."""
    written_s = write_tree(root)
    print(f"tree {root}: {'reused' if written_s is None else f'written in {written_s:.1f} s'}", flush=True)
    ok = True
    environ = child_environment(args.system_allocator)
    with TemporaryDirectory(prefix="bench-scaling-weights-") as folder:
        weights = Path(folder) / f"{args.arch}-random.safetensors"
        write_weights(weights, args.arch)
        model_id = f"torchvision:{args.arch}@{weights}"
        if not args.overlap_only:
            rows = [run_child("scaling", n, root, model_id, args.batch_size, environ) for n in args.sizes]
            done = [row for row in rows if row is not None]
            ok = len(done) == len(rows)
            if done:
                print(f"\nscaling: {args.arch} (random weights), 224 px, clean imagenet val, cold cache, CPU")
                print_settings(done[0]["settings"])
                print_scaling(done)
        if not args.skip_overlap:
            row = run_child("overlap", args.overlap_n, root, model_id, args.batch_size, environ)
            ok = ok and row is not None
            if row is not None:
                print()
                print_settings(row["settings"])
                print_overlap(row)
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, help="where the tree is written or reused (default: a temporary "
                                                  "folder, deleted afterwards)")
    parser.add_argument("--sizes", type=sizes, default=[500, 5000, 20000], help="comma-separated n")
    parser.add_argument("--overlap-n", type=positive, default=2000)
    parser.add_argument("--batch-size", type=positive, default=250)
    parser.add_argument("--arch", default=DEFAULT_ARCH,
                        help="the torchvision classifier, with random weights (default: %(default)s; resnet18 "
                             "hides the fixed cost per case better and runs about 4.5 times slower)")
    sections = parser.add_mutually_exclusive_group()
    sections.add_argument("--skip-overlap", action="store_true")
    sections.add_argument("--overlap-only", action="store_true")
    parser.add_argument("--system-allocator", action="store_true",
                        help="start the children with glibc's small pages (glibc.malloc.hugetlb=0) instead of "
                             "the huge pages the suite gives its workers (huge_pages = true)")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model-id", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(CHILDREN[args.child](args.n, args.root, args.model_id, args.batch_size)))
        return
    started = time.perf_counter()
    if args.root is not None:
        ok = measure(args, args.root)
    else:
        with TemporaryDirectory(prefix="bench-scaling-tree-") as tmp:
            ok = measure(args, Path(tmp))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
