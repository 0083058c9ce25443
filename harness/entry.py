"""The pytest11 entry point (`robustness_gate`): pytest imports it into every run of an environment the harness
is installed in. It registers the plugin (harness.plugin, and with it torch) only where the run's root declares
the suite, a `[tool.robustness]` table in pyproject.toml; any other project's runs import nothing more than this."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from .config import declares_suite

PLUGIN = "harness.plugin"


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    config = pluginmanager.get_plugin("pytestconfig")
    root = getattr(config, "rootpath", None)
    if (root is None or declares_suite(Path(root) / "pyproject.toml")) and not pluginmanager.has_plugin(PLUGIN):
        pluginmanager.register(importlib.import_module(PLUGIN), PLUGIN)
