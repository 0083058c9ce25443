from pathlib import Path

import pytest

from harness.config import ConfigError, build_config, default_protocol, read_pyproject_table


def test_pyproject_defaults_and_overrides(root):
    table = read_pyproject_table(root / "pyproject.toml")
    config = build_config(root, table, {"samples": 40, "seed": 3, "models": None})
    assert config.models == ("embedded:synth-clip", "embedded:synth-cnn")
    assert config.samples == 40 and config.seed == 3
    assert config.samples_for("synthetic") == 40  # the global cap bounds every category
    assert config.baselines_dir == root / "baselines"


@pytest.mark.parametrize("overrides, message", [
    ({"samples": 0}, "'samples' must be >= 1"),
    ({"samples": "many"}, "'samples' must be int"),
    ({"batch_size": -2}, "'batch_size' must be >= 1"),
    ({"cache_images_gb": 0}, "'cache_images_gb' must be a number > 0"),
    ({"cache_images_gb": "lots"}, "'cache_images_gb' must be a number > 0"),
    ({"huge_pages": "yes"}, "'huge_pages' must be bool"),
])
def test_bad_values_name_the_setting(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_config(tmp_path, {}, overrides)


def test_bad_pyproject_names_the_file(tmp_path: Path):
    (tmp_path / "pyproject.toml").write_text("[tool.robustness\nsamples = 3")
    with pytest.raises(ConfigError, match="pyproject.toml: not valid TOML"):
        read_pyproject_table(tmp_path / "pyproject.toml")


def test_bad_severity(tmp_path):
    with pytest.raises(ConfigError, match="synthetic.severities"):
        build_config(tmp_path, {"synthetic": {"severities": [0, 6]}}, {})


def test_gate_policy_per_category_and_per_model(tmp_path):
    config = build_config(tmp_path, {"gate": {"margin": 0.02, "adversarial": {"margin": 0.05}}}, {})
    assert config.policy_for("clean").margin == 0.02
    assert config.policy_for("adversarial").margin == 0.05
    assert config.policy_for("adversarial").confidence == 0.99
    assert config.policy_for("clean", {"clean": {"confidence": 0.95}}).confidence == 0.95
    with pytest.raises(ConfigError, match="gate.natural"):
        build_config(tmp_path, {"gate": {"natural": {"confidence": 1.5}}}, {})


def test_amp_must_be_a_known_mode(tmp_path):
    assert build_config(tmp_path, {}, {}).amp == "off"
    assert build_config(tmp_path, {"amp": "bf16"}, {}).amp == "bf16"
    with pytest.raises(ConfigError, match="'amp' must be one of off, bf16, fp16"):
        build_config(tmp_path, {"amp": "int8"}, {})


def test_a_project_sets_only_what_it_changes_over_the_default_protocol(tmp_path):
    protocol = default_protocol()
    config = build_config(tmp_path, {"models": ["embedded:synth-cnn"], "adversarial": {
        "attacks": ["pgd-linf-1/255"], "options": {"pgd": {"steps": 20}}}}, {})
    assert config.models == ("embedded:synth-cnn",)
    assert config.attacks == ("pgd-linf-1/255",)  # a list replaces
    assert config.attack_options == {"pgd": {"steps": 20}}  # a name table replaces the protocol's
    assert config.attack_sample_caps == protocol["adversarial"]["sample_caps"]  # the rest of the table merges
    assert config.corruptions == tuple(protocol["synthetic"]["corruptions"]) and len(config.corruptions) == 19
    assert config.smoke == tuple(protocol["smoke"]) and config.adversarial_samples == 200


def test_prompt_options_take_keywords_or_files_relative_to_the_project(tmp_path):
    (tmp_path / "templates.txt").write_text("a {} photo.\n")
    config = build_config(tmp_path, {"prompts": {"templates": "templates.txt"}}, {"classnames": None})
    assert config.templates == str(tmp_path / "templates.txt") and config.classnames == ""
    assert build_config(tmp_path, {}, {"templates": "openai"}).templates == "openai"
    with pytest.raises(ConfigError, match="'prompts.classnames' = 'names.txt' names no file"):
        build_config(tmp_path, {}, {"classnames": "names.txt"})
    with pytest.raises(ConfigError, match="has no key 'template'; did you mean 'templates'"):
        build_config(tmp_path, {"prompts": {"template": "single"}}, {})


@pytest.mark.parametrize("table, message", [
    ({"model": ["embedded:synth-cnn"]}, r"\[tool.robustness\] has no key 'model'; did you mean 'models'\?"),
    ({"gate": {"adverserial": {"margin": 0.0}}}, r"\[tool.robustness.gate\] has no key 'adverserial'; did you mean "
                                                 r"'adversarial'\?"),
    ({"synthetic": {"corruption": ["fog"]}}, "did you mean 'corruptions'"),
    ({"prompts": "openai"}, "'prompts' must be a table"),
    ({"gate": 0.99}, "'gate' must be a table"),
    ({"models": {"a": 1}}, "'models' must be a value, not a table"),
    ({"update_baselines": True}, "has no key 'update_baselines'"),
])
def test_a_misspelt_or_mistyped_key_is_refused_not_left_to_its_default(tmp_path, table, message):
    with pytest.raises(ConfigError, match=message):
        build_config(tmp_path, table, {})


def test_a_name_table_a_project_sets_replaces_the_protocols(tmp_path):
    config = build_config(tmp_path, {"adversarial": {"sample_caps": {"cw": 10}, "options": {}}}, {})
    assert config.attack_sample_caps == {"cw": 10} and config.attack_options == {}
