"""Loads the robustness-gate pytest plugin for every pytest run rooted in this repository."""
pytest_plugins = ["harness.plugin"]
