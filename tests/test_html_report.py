"""The HTML report: one self-contained page with tables, curves and the effective-robustness scatter, regressions
first; it renders in headless Chromium without console errors, and `pytest --html` writes it at session end."""
import base64
import io
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from harness.__main__ import main
from harness.records import CaseRecord, Status, encode_bits
from harness.report import build_report, write_report
from suite_helpers import read_json, run_suite

HOSTILE = '<script>alert("x")</script>'


def record(model, category, name, accuracy, status="passed", **setting):
    n = 100
    bits = np.arange(n) < round(accuracy * n)
    line = model.split(":")[1]
    return CaseRecord(id=f"{line}-{name}", key=f"{category}/{name}", model=model, line=line, benchmark="synth",
                      category=category, setting={"category": category, "name": name, **setting}, n=n,
                      correct=int(bits.sum()), accuracy=float(bits.mean()), interval95=(0.0, 1.0),
                      per_sample=encode_bits(bits), data_sha256="d", seed=0, status=Status(status),
                      baseline=min(1.0, accuracy + 0.01), threshold=accuracy - 0.05, delta=-0.01,
                      message=HOSTILE if status == "error" else f"{line}-{name}: {status}",
                      model_provenance={"architecture": "test", "weights_sha256": line})


def attack(eps, norm="linf"):
    return {"attack": {"attack": "pgd", "norm": norm, "eps": eps, "name": f"pgd-{norm}-{eps}"}}


def sample_report():
    cases = []
    for model, clean in (("embedded:synth-clip", 0.85), ("embedded:synth-cnn", 0.97)):
        cases.append(record(model, "clean", "test", clean))
        cases += [record(model, "natural", shift, clean * factor)
                  for shift, factor in (("v2", 0.93), ("sketch", 0.3), ("vid-pm4", 0.7))]
        for corruption in ("gaussian_noise", "fog"):
            cases += [record(model, "synthetic", f"{corruption}-{s}", clean - 0.12 * s,
                             corruption={"name": corruption, "severity": s}) for s in range(1, 6)]
        cases += [record(model, "adversarial", f"pgd-linf-{e}/255", clean * (1 - 0.2 * e), **attack(e / 255))
                  for e in (0.5, 1, 2)]
        cases.append(record(model, "adversarial", "pgd-l2-0.1", clean * 0.6, **attack(0.1, "l2")))
    cases.append(record("embedded:synth-cnn", "natural", "pose", 0.21, status="regressed"))
    cases.append(record("embedded:synth-clip", "adversarial", "fgsm-linf-1/255", 0.5, status="error"))
    run = {"id": "abc12345", "started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:10:00+00:00",
           "complete": True, "argv": ["-n", "2"], "git": {"commit": "f" * 40, "dirty": False}}
    return build_report(run, cases)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    folder = tmp_path_factory.mktemp("html")
    report_path = write_report(sample_report(), folder)
    assert main(["html", str(report_path)]) == 0
    html_path = report_path.with_suffix(".html")
    return html_path, html_path.read_text()


def embedded_images(text):
    return [Image.open(io.BytesIO(base64.b64decode(data)))
            for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)]


def test_the_page_is_self_contained_and_escapes_report_text(page):
    _, text = page
    references = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert references and all(ref.startswith("data:image/png;base64,") for ref in references)
    assert "http://" not in text and "https://" not in text and "<script" not in text and "<link" not in text
    assert html_escaped(HOSTILE) in text


def html_escaped(value):
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def test_regressions_come_first_and_are_highlighted(page):
    _, text = page
    regressions = text.index("Regressions against the baseline")
    row = text.index('<tr class="regressed">')
    assert regressions < row < text.index("Severity curves")
    assert "synth-cnn-pose" in text[row:text.index("</tr>", row)]
    assert text.count('<tr class="regressed">') == 2  # in the regressions table and in the model's natural table
    assert "regressed: 1" in text and "error: 1" in text


def test_the_plots_are_embedded_and_large_enough_to_read(page):
    _, text = page
    images = embedded_images(text)
    assert len(images) == 3  # severity curves, eps curves, effective-robustness scatter (one benchmark)
    for image in images:
        assert image.width >= 1200, image.size
        pixels = np.asarray(image.convert("L"), dtype=float)
        assert pixels.std() > 10  # drawn on, not blank
    for model in ("embedded:synth-clip", "embedded:synth-cnn"):
        for shift in ("v2", "sketch", "vid-pm4"):
            assert f'<td class="text">{model}</td><td class="text">{shift}</td>' in text  # effective robustness


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium is not installed "
                                                            "(Debian: apt-get install -y chromium)")
def test_the_page_renders_in_headless_chromium_without_console_errors(page, tmp_path):
    html_path, _ = page
    shot = tmp_path / "shot.png"
    done = subprocess.run(["chromium", "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
                           "--window-size=1400,4000", f"--screenshot={shot}", "--enable-logging=stderr", "--v=0",
                           html_path.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10


def test_pytest_html_writes_the_page_next_to_the_json_report(tmp_path):
    done = run_suite("-k", "synth-cnn-clean or synth-cnn-v2", "--samples=10", f"--baselines-dir={tmp_path / 'none'}",
                     f"--report-dir={tmp_path / 'r'}", "-n", "0", "--html")
    assert done.returncode == 1, done.stdout[-3000:]  # no baseline: both cases fail, the report is still written
    run_json = next((tmp_path / "r").glob("run-*.json"))
    run_html, latest = run_json.with_suffix(".html"), tmp_path / "r" / "latest.html"
    assert run_html.is_file() and latest.read_text() == run_html.read_text()
    assert f"html: {run_html}" in done.stdout
    text = latest.read_text()
    assert "synth-cnn-v2" in text and "no-baseline" in text
    assert read_json(run_json)["metrics"]["embedded:synth-cnn"]["effective_robustness"]["v2"]["trend"]["x"] == "test"
