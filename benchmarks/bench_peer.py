"""Whole-process time of the suite's clean case against CLIP_benchmark's on the same 500 images, same model, same
prompts, each in its own environment, warm (one warm-up run each, then the median of `--repeats`, alternating).

Ours:  python -m pytest robustness_tests -p no:xdist -m clean --model embedded:synth-clip --samples 500 -q
       --report-dir <tmp>   (default --cache-dir, warm; gates against the committed baselines, read only)
Peer:  clip_benchmark eval --dataset imagenet_sketch --dataset_root <work>/images --model local-dir:<work>/model
       --pretrained '' --custom_classname_file <work>/classnames.json --custom_template_file <work>/templates.json
       --batch_size 250 --num_workers 0 --no_amp --output <work>/peer.json

What the peer is given (written to a temp work dir by this script, from this checkout):
- images: the embedded benchmark's clean `test` split, first 500 samples (harness.embedded.renderer.render_split at
  harness.data.synth.DATA_SEED, exactly what SynthBenchmark.load evaluates; checked against the report's
  data_sha256), one PNG per image (lossless, 64 px) in one folder per class, named `00_house` ... `09_flower` so
  that torchvision's ImageFolder (sorted folder names) gives the renderer's label indices. CLIP_benchmark 1.6.2
  has no generic ImageFolder dataset: `imagenet_sketch` is a bare `ImageFolder(root)` (nothing is downloaded when
  root exists), and the custom classname/template files, keyed by that name, replace its classes and prompts
  with renderer.CLASSNAMES and renderer.TEMPLATES (`{}` written as CLIP_benchmark's `{c}`).
- model: embedded:synth-clip as an open_clip `local-dir:` folder: open_clip_config.json = {"model_cfg":
  harness/embedded/synth-clip.json, "preprocess_cfg": {}} and open_clip_model.safetensors = the committed
  checkpoint. CLIP_benchmark calls open_clip.create_model_and_transforms(model, pretrained) with it; its eval
  transform (Resize 64 bicubic, CenterCrop 64, ToTensor, Normalize with open_clip's default OpenAI mean/std) is
  a no-op resize on 64 px images, so it sees the pixels and normalization the harness uses.
- precision: --no_amp (float32), as the suite runs on a CPU; CLIP_benchmark's default autocast would run the CPU in
  bfloat16. Batch size 250 as pyproject's; --num_workers 0: on the 2-core machine its default, 4 loader processes,
  was no faster (5.71 s against 5.55 s, medians of 3, 2026-12-01); --peer-workers changes it.

Prints both whole-process wall times, accuracies (correct of n) and the ratio ours/peer, with whether the counts
agree and whether the ratio is <= 0.5 (the target).

The peer venv (default /tmp/peer-venv, or $PEER_VENV, or --peer-venv) is outside this project's lock; measured with:
    python3 -m venv /tmp/peer-venv
    /tmp/peer-venv/bin/pip install clip-benchmark==1.6.2 torch==2.14.1 torchvision==0.29.1 open_clip_torch==3.3.0 \
        requests==2.34.2 numpy==2.3.5
torch and torchvision as in requirements.lock, so both sides import the same torch build (about 5.5 GB with torch's
CUDA libraries). requests: clip_benchmark imports it (datasets/imagenetv2.py) without declaring it. numpy < 2.4:
clip_benchmark's accuracy() calls float() on a one-element array, an error since NumPy 2.4 (it would otherwise
install 2.4.6). The rest as pip resolved them then: transformers 5.24.0, timm 1.0.31, scikit-learn 1.9.1,
webdataset 1.0.2, pillow 13.0.0. When the venv is absent the script prints those commands and a SKIPPED line and
exits 0, or exits 2 with REQUIRE_PEER=1 (for a run whose point is this measurement).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's harness renders the images, whatever is installed
SAMPLES = 500
MODEL = "embedded:synth-clip"
TARGET_RATIO = 0.5
DATASET = "imagenet_sketch"  # CLIP_benchmark's name whose builder is a bare ImageFolder(root)
PEER_PINS = ("clip-benchmark==1.6.2", "torch==2.14.1", "torchvision==0.29.1", "open_clip_torch==3.3.0",
             "requests==2.34.2", "numpy==2.3.5")
PEER_DISTS = ("clip-benchmark", "open_clip_torch", "torch", "torchvision", "numpy", "pillow", "requests")


def create_commands(venv: Path) -> str:
    return f"    python3 -m venv {venv}\n    {venv}/bin/pip install {' '.join(PEER_PINS)}"


def peer_versions(python: Path) -> dict[str, str]:
    """Versions of the peer's packages, read from its metadata (no torch import)."""
    code = ("import importlib.metadata as m, json, sys; "
            f"print(json.dumps({{d: m.version(d) for d in {list(PEER_DISTS)!r}}}))")
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=clean_env())
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output")
    return json.loads(done.stdout)


def clean_env() -> dict[str, str]:
    """This environment without pytest's, Python path and virtual-env variables, for either side's process."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k not in drop}


def write_peer_inputs(work: Path) -> str:
    """The images, prompt files and model folder CLIP_benchmark reads; returns the images' content sha256."""
    from harness.data.base import content_sha256
    from harness.data.synth import DATA_SEED
    from harness.embedded import renderer
    from harness.models.embedded import export_open_clip_folder
    from PIL import Image

    rendered = renderer.render_split("test", SAMPLES, seed=DATA_SEED)
    images, labels = rendered.images, rendered.labels.astype("int64")
    folders = [work / "images" / f"{index:02d}_{name}" for index, name in enumerate(renderer.CLASSNAMES)]
    for folder in folders:
        folder.mkdir(parents=True)
    for i, (image, label) in enumerate(zip(images, labels)):
        path = folders[label] / f"{i:04d}.png"
        Image.fromarray(image).save(path)
        with Image.open(path) as back:
            if back.convert("RGB").tobytes() != image.tobytes():
                raise RuntimeError(f"{path} does not read back as the rendered pixels")
    (work / "classnames.json").write_text(json.dumps({DATASET: list(renderer.CLASSNAMES)}))
    (work / "templates.json").write_text(json.dumps({DATASET: [t.replace("{}", "{c}") for t in renderer.TEMPLATES]}))
    export_open_clip_folder(work / "model")
    return content_sha256(images, labels)


PEER_TRANSFORM_CHECK = """
import json, sys, numpy as np, open_clip, torch
from PIL import Image
from torchvision.datasets import ImageFolder
model, _, transform = open_clip.create_model_and_transforms(sys.argv[1])
print("transform:", " | ".join(repr(t).replace(chr(10), " ") for t in transform.transforms))
mean = torch.tensor(model.visual.preprocess_cfg["mean"]).view(3, 1, 1)
std = torch.tensor(model.visual.preprocess_cfg["std"]).view(3, 1, 1)
worst = 0.0
for path, label in ImageFolder(sys.argv[2]).samples:
    raw = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).float() / 255
    worst = max(worst, float((transform(Image.open(path)) - (raw - mean) / std).abs().max()))
print(f"max |peer transform - (pixels/255 - mean)/std| over the images: {worst:.3g}")
print("NORMALIZATION", json.dumps([list(model.visual.preprocess_cfg["mean"]), list(model.visual.preprocess_cfg["std"])]))
"""


def peer_command(venv: Path, work: Path, workers: int) -> list[str]:
    return [str(venv / "bin" / "clip_benchmark"), "eval", "--dataset", DATASET, "--dataset_root", str(work / "images"),
            "--model", f"local-dir:{work / 'model'}", "--pretrained", "",
            "--custom_classname_file", str(work / "classnames.json"),
            "--custom_template_file", str(work / "templates.json"),
            "--batch_size", "250", "--num_workers", str(workers), "--no_amp", "--output", str(work / "peer.json")]


def ours_command(reports: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "robustness_tests", "-p", "no:xdist", "-m", "clean", "--model", MODEL,
            "--samples", str(SAMPLES), "-q", f"--report-dir={reports}"]


def run_ours() -> tuple[float, dict, dict]:
    """Wall seconds of the suite's clean case of synth-clip, its case record and the model's provenance."""
    with tempfile.TemporaryDirectory(prefix="bench-peer-reports-") as reports:
        command = ours_command(reports)
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=clean_env(), capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
        report = json.loads((Path(reports) / "latest.json").read_text())
    cases = report["cases"]
    if len(cases) != 1:
        sys.exit(f"expected the one clean case of {MODEL}, the report has {[c['id'] for c in cases]}")
    return elapsed, cases[0], report["models"].get(MODEL, {})


def run_peer(command: list[str], work: Path) -> tuple[float, dict]:
    """Wall seconds of one CLIP_benchmark run, and its output JSON."""
    output = work / "peer.json"
    output.unlink(missing_ok=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=work, env=clean_env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or not output.is_file():
        sys.exit(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return elapsed, json.loads(output.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-venv", type=Path, default=Path(os.environ.get("PEER_VENV", "/tmp/peer-venv")))
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each side after one warm-up each")
    parser.add_argument("--peer-workers", type=int, default=0, help="CLIP_benchmark's --num_workers")
    args = parser.parse_args()
    venv = args.peer_venv.absolute()
    try:
        if not (venv / "bin" / "clip_benchmark").is_file():
            raise RuntimeError(f"{venv}/bin/clip_benchmark not found")
        versions = peer_versions(venv / "bin" / "python")
    except (RuntimeError, OSError) as error:
        how = (f"bench_peer: peer venv {venv} is missing or broken ({error}); create it with:\n"
               f"{create_commands(venv)}\n(or point PEER_VENV at one)")
        if os.environ.get("REQUIRE_PEER") == "1":
            print(how, file=sys.stderr)
            sys.exit(2)
        print(f"{how}\nbench_peer: SKIPPED -- whole-process time against CLIP_benchmark NOT MEASURED "
              "(REQUIRE_PEER=1 makes a missing peer venv an error)")
        return

    with tempfile.TemporaryDirectory(prefix="bench-peer-work-") as work_dir:
        work = Path(work_dir)
        data_sha256 = write_peer_inputs(work)
        command = peer_command(venv, work, args.peer_workers)
        check = subprocess.run([str(venv / "bin" / "python"), "-c", PEER_TRANSFORM_CHECK,
                                f"local-dir:{work / 'model'}", str(work / "images")],
                               capture_output=True, text=True, env=clean_env(), cwd=work)
        if check.returncode != 0:
            sys.exit(f"the peer cannot load the exported model:\n{check.stderr[-3000:]}")
        run_ours()  # warm-up of each side: caches, page cache, bytecode
        run_peer(command, work)
        ours_times, peer_times = [], []
        for _ in range(args.repeats):  # alternating, so drift of the machine's speed favours neither side
            elapsed, case, provenance = run_ours()
            ours_times.append(elapsed)
            elapsed, peer = run_peer(command, work)
            peer_times.append(elapsed)

    ours_s, peer_s = statistics.median(ours_times), statistics.median(peer_times)
    ours_correct, n = case["correct"], case["n"]
    peer_correct = round(peer["metrics"]["acc1"] * SAMPLES)
    ratio = ours_s / peer_s
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"whole process, warm, {MODEL} clean on the synth test split: ours vs CLIP_benchmark "
          f"(median of {args.repeats} after one warm-up each; {os.cpu_count()} cores, load average {load})")
    print("peer venv: " + ", ".join(f"{name} {version}" for name, version in versions.items()))
    peer_lines = check.stdout.strip().splitlines()
    print("\n".join(line for line in peer_lines if not line.startswith("NORMALIZATION ")))
    peer_norm = json.loads(next(line for line in peer_lines if line.startswith("NORMALIZATION "))[14:])
    ours_pre = provenance.get("preprocess", {})
    same_norm = [list(ours_pre.get("mean", [])), list(ours_pre.get("std", []))] == peer_norm
    print(f"normalization: {'same' if same_norm else 'DIFFERENT'} mean/std (ours {ours_pre.get('mean')}, "
          f"{ours_pre.get('std')}; resize: {ours_pre.get('resize')})")
    print(f"{'':<16} {'whole s':>8}  {'correct':>9}  {'accuracy':>8}  runs")
    print(f"{'ours':<16} {ours_s:>8.2f}  {ours_correct:>4}/{n:<4}  {case['accuracy']:>8.4f}  "
          + " ".join(f"{t:.2f}" for t in ours_times))
    print(f"{'CLIP_benchmark':<16} {peer_s:>8.2f}  {peer_correct:>4}/{SAMPLES:<4}  {peer['metrics']['acc1']:>8.4f}  "
          + " ".join(f"{t:.2f}" for t in peer_times))
    same_data = case["data_sha256"] == data_sha256 and n == SAMPLES
    print(f"same images: {'yes' if same_data else 'NO'} (sha256 {data_sha256[:12]}, report {case['data_sha256'][:12]})"
          f"; accuracies {'agree' if ours_correct == peer_correct and same_data else 'DIFFER'}")
    print(f"ratio ours/peer {ratio:.2f} (target <= {TARGET_RATIO}) {'ok' if ratio <= TARGET_RATIO else 'MISSED'}")


if __name__ == "__main__":
    main()
