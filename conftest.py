"""Loads the robustness-gate plugin into pytest runs rooted in this checkout when pytest has not: installed
(`make install`, `pip install -e .`), its pytest11 entry point `robustness_gate` (harness.entry) registers it,
unless PYTEST_DISABLE_PLUGIN_AUTOLOAD is set."""
import os
from importlib.metadata import entry_points

if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") or not any(
        point.name == "robustness_gate" for point in entry_points(group="pytest11")):
    pytest_plugins = ["harness.plugin"]
