import pytest

from harness.attacks import Attack
from harness.cases import expand_cases
from harness.config import ConfigError, build_config, read_pyproject_table


@pytest.fixture
def config(root):
    return build_config(root, read_pyproject_table(root / "pyproject.toml"), {})


def test_default_cases_cover_every_category_for_both_models(config):
    cases = expand_cases(config)
    ids = {case.id for case in cases}
    assert len(ids) == len(cases)
    for line in ("synth-clip", "synth-cnn"):
        assert f"{line}-clean" in ids and f"{line}-vid-pm4" in ids
        assert sum(1 for i in ids if i.startswith(line) and i.split("-")[-1] in "12345" and "linf" not in i) >= 75
        assert f"{line}-p-translate" in ids and f"{line}-greyscale" in ids and f"{line}-stylized" in ids
        assert f"{line}-typographic-1x14px-white-random" in ids
    assert "synth-clip-transfer-pgd-linf-4/255-from-synth-cnn" in ids
    assert "synth-cnn-transfer-pgd-linf-4/255-from-synth-clip" in ids
    attack_types = {c.setting.perturbation.spec.attack for c in cases if isinstance(c.setting.perturbation, Attack)}
    assert len(attack_types) >= 11
    assert not any("adversarial" in c.setting.name for c in cases if c.setting.category != "adversarial")


def test_clean_case_ids_say_clean_and_no_id_names_the_clean_split(config):
    """`-k test` matches every test_* function anyway, so no case id may lean on the clean split's name."""
    cases = expand_cases(config)
    clean = [case for case in cases if case.setting.category == "clean"]
    assert [case.id for case in clean] == ["synth-clip-clean", "synth-cnn-clean"]
    assert {case.setting.split for case in clean} == {"test"}
    assert not any(part == "test" for case in cases for part in case.id.split("-"))


def test_per_attack_sample_caps(config):
    by_id = {case.id: case for case in expand_cases(config)}
    assert by_id["synth-clip-deepfool-l2-0.1"].setting.samples == 50
    assert by_id["synth-clip-pgd-linf-1/255"].setting.samples == 200


@pytest.mark.parametrize("table, message", [
    ({"synthetic": {"corruptions": ["rain"]}}, "unknown corruption 'rain'"),
    ({"synthetic": {"sequences": ["wobble"]}}, "unknown perturbation sequence 'wobble'"),
    ({"synthetic": {"transforms": ["sepia"]}}, "unknown transform 'sepia'"),
    ({"adversarial": {"attacks": ["pgd-l1-1"]}}, "unknown attack pgd-l1"),
    ({"adversarial": {"typographic": ["huge"]}}, "typographic attack 'huge'"),
])
def test_bad_settings_name_the_table(tmp_path, table, message):
    with pytest.raises(ConfigError, match=message):
        expand_cases(build_config(tmp_path, table, {}))


def test_a_model_line_can_be_named(tmp_path):
    cases = expand_cases(build_config(tmp_path, {}, {"models": ["candidate=embedded:synth-cnn"]}))
    assert {case.line for case in cases} == {"candidate"}
    assert cases[0].id == "candidate-clean"


def test_device_resolution(monkeypatch):
    from harness.plugin import ConfigError as PluginConfigError, resolve_device
    import torch

    assert resolve_device("cpu", 3) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto", None) == torch.device("cuda", 0)
    assert resolve_device("cuda", 3) == torch.device("cuda", 1)  # worker gw3 of 2 GPUs
    assert resolve_device("cuda:0", 3) == torch.device("cuda", 0)  # pinned
    with pytest.raises(PluginConfigError, match="only 2 CUDA device"):
        resolve_device("cuda:5", 0)


def test_only_a_zero_shot_model_moves_to_another_benchmark(tmp_path):
    def cases(model, benchmark):
        return expand_cases(build_config(tmp_path, {"models": [model], "benchmark": benchmark}, {}))

    assert {case.benchmark for case in cases("embedded:synth-cnn", "synth")} == {"synth"}
    with pytest.raises(ConfigError, match="is evaluated on its own benchmark .synth. only"):
        cases("embedded:synth-cnn", "imagenet")
    with pytest.raises(ConfigError, match="is evaluated on its own benchmark 'imagenet' only"):
        cases("torchvision:resnet18@IMAGENET1K_V1", "synth")
    with pytest.raises(ConfigError, match="benchmark 'synthh' .* is not registered; known: imagenet, synth"):
        cases("embedded:synth-cnn", "synthh")
