"""Loads the robustness-gate plugin into pytest runs rooted in this checkout when it is not installed; installed
(`make install`, `pip install -e .`) it loads through its pytest11 entry point `robustness_gate` instead."""
from importlib.metadata import entry_points

if not any(point.name == "robustness_gate" for point in entry_points(group="pytest11")):
    pytest_plugins = ["harness.plugin"]
