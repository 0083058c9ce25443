"""Loads the robustness-gate pytest plugin for every test run from this repository."""
pytest_plugins = ["harness.plugin"]
