"""Stops a run of the suite where it has not been set up, saying how: the plugin (harness.plugin) registers only
in a project whose pyproject.toml has a `[tool.robustness]` table."""
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("harness.plugin"):
        raise pytest.UsageError(
            f"the robustness suite needs a [tool.robustness] table in {Path(config.rootpath) / 'pyproject.toml'} "
            f"naming the models to gate (models = [\"embedded:synth-cnn\"]); README, \"Gate your own model\"")
