from pathlib import Path

import pytest

from harness.config import ConfigError, build_config, read_pyproject_table


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
