"""What a zero-shot head is built from: the class names of a benchmark and the prompt templates that wrap them.

A benchmark supplies its default `Prompts` (`Benchmark.prompts()`); `[tool.robustness.prompts]` replaces the
templates (`templates = "openai"`, `"single"` or a file, one template per line) or the class names (`classnames`:
a file, one name per line, as many as the benchmark has classes, in its label order). Zero-shot model families
build their head from the `Prompts` they are given and record `provenance()`, so a baseline says what prompts
its numbers were measured with.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

SINGLE_TEMPLATE = "a photo of a {}."


class PromptsError(ValueError):
    """A prompts option or file is malformed; the message names the option or file and the fix."""


@dataclasses.dataclass(frozen=True)
class Prompts:
    """`classnames` in the benchmark's label order; `templates` are format strings with exactly one `{}`.
    `source` says where each came from ("synth", "openai", "single", "file <path> sha256 <hex>")."""

    classnames: tuple[str, ...]
    templates: tuple[str, ...]
    classnames_source: str
    templates_source: str

    def __post_init__(self) -> None:
        if not self.classnames or not self.templates:
            raise PromptsError("prompts need at least one class name and one template")
        bad = [t for t in self.templates if t.count("{}") != 1]
        if bad:
            raise PromptsError(f"template {bad[0]!r} ({self.templates_source}) must hold exactly one '{{}}', "
                               f"where the class name goes")

    def texts(self) -> list[str]:
        """Every prompt, class-major: class 0 under each template, then class 1, ..."""
        return [template.format(name) for name in self.classnames for template in self.templates]

    @property
    def sha256(self) -> str:
        payload = json.dumps({"classnames": list(self.classnames), "templates": list(self.templates)},
                             sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def provenance(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "n_templates": len(self.templates), "n_classes": len(self.classnames),
                "templates": self.templates_source, "classnames": self.classnames_source}


def openai_imagenet_templates() -> tuple[str, ...]:
    """OpenAI's 80 ImageNet prompt templates, as open_clip ships them (`open_clip.zero_shot_metadata`)."""
    from open_clip import OPENAI_IMAGENET_TEMPLATES
    return tuple(template("{}") for template in OPENAI_IMAGENET_TEMPLATES)


def _lines(path: Path, option: str) -> tuple[tuple[str, ...], str]:
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PromptsError(f"[tool.robustness.prompts] {option} = {str(path)!r}: cannot read it ({error}); "
                           f"name a UTF-8 text file, one entry per line") from None
    lines = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not lines:
        raise PromptsError(f"[tool.robustness.prompts] {option} = {str(path)!r}: the file has no entries")
    return lines, f"file {path.name} sha256 {hashlib.sha256(data).hexdigest()[:16]}"


def configured_prompts(default: Prompts, templates: str, classnames: str, root: Path) -> Prompts:
    """`default` (a benchmark's) with the options of `[tool.robustness.prompts]` applied; paths are relative to
    `root`. `templates`: "" keeps the benchmark's, "openai" OpenAI's 80, "single" one template, else a file.
    `classnames`: "" keeps the benchmark's, else a file holding exactly as many names."""
    prompts = default
    if templates == "openai":
        prompts = dataclasses.replace(prompts, templates=openai_imagenet_templates(), templates_source="openai")
    elif templates == "single":
        prompts = dataclasses.replace(prompts, templates=(SINGLE_TEMPLATE,), templates_source="single")
    elif templates:
        lines, source = _lines(root / templates, "templates")
        prompts = dataclasses.replace(prompts, templates=lines, templates_source=source)
    if classnames:
        lines, source = _lines(root / classnames, "classnames")
        if len(lines) != len(default.classnames):
            raise PromptsError(
                f"[tool.robustness.prompts] classnames = {classnames!r}: {len(lines)} names, but the benchmark "
                f"has {len(default.classnames)} classes; list one name per class, in its label order")
        prompts = dataclasses.replace(prompts, classnames=lines, classnames_source=source)
    return prompts
