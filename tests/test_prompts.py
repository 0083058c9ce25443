"""Prompts of zero-shot heads: a benchmark's own, or templates and class names the project names."""
import pytest

from harness.data import get_benchmark
from harness.prompts import SINGLE_TEMPLATE, Prompts, PromptsError, configured_prompts

SYNTH = get_benchmark("synth").prompts()


def test_a_benchmark_brings_its_own_prompts():
    imagenet = get_benchmark("imagenet").prompts()
    assert len(imagenet.classnames) == 1000 and len(imagenet.templates) == 80
    assert imagenet.templates[0] == "a bad photo of a {}."
    assert len(SYNTH.classnames) == 10 and SYNTH.provenance()["templates"] == "synth"
    assert SYNTH.texts()[:2] == [template.format(SYNTH.classnames[0]) for template in SYNTH.templates[:2]]


def test_keywords_and_files_replace_templates_and_class_names(tmp_path):
    assert configured_prompts(SYNTH, "", "", tmp_path) == SYNTH
    assert configured_prompts(SYNTH, "single", "", tmp_path).templates == (SINGLE_TEMPLATE,)
    openai = configured_prompts(SYNTH, "openai", "", tmp_path)
    assert len(openai.templates) == 80 and openai.classnames == SYNTH.classnames
    (tmp_path / "t.txt").write_text("art of a {}.\n\n  a {} seen from far.  \n")
    (tmp_path / "c.txt").write_text("\n".join(f"thing {i}" for i in range(10)))
    mine = configured_prompts(SYNTH, "t.txt", "c.txt", tmp_path)
    assert mine.templates == ("art of a {}.", "a {} seen from far.") and mine.classnames[3] == "thing 3"
    assert mine.provenance()["templates"].startswith("file t.txt sha256 ")
    assert mine.sha256 != SYNTH.sha256 and mine.provenance()["n_templates"] == 2


@pytest.mark.parametrize("templates, classnames, message", [
    ("missing.txt", "", "missing.txt': cannot read it"),
    ("latin1.txt", "", "latin1.txt': cannot read it"),
    ("", "few.txt", "classnames = 'few.txt': 2 names, but the benchmark has 10 classes"),
    ("bad.txt", "", "must hold exactly one '{}'"),
    ("empty.txt", "", "the file has no entries"),
])
def test_bad_prompt_files_are_refused_naming_the_file(tmp_path, templates, classnames, message):
    (tmp_path / "few.txt").write_text("a\nb\n")
    (tmp_path / "bad.txt").write_text("a photo.\n")
    (tmp_path / "empty.txt").write_text("\n")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 {}".encode("latin-1"))
    with pytest.raises(PromptsError, match=message.replace("(", r"\(").replace("{", r"\{").replace("}", r"\}")):
        configured_prompts(SYNTH, templates, classnames, tmp_path)


def test_prompts_need_a_class_and_a_template():
    with pytest.raises(PromptsError):
        Prompts((), ("a {}.",), "x", "x")
