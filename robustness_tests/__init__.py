"""The robustness suite: one parametrized test per category, each case gated by the robustness_gate plugin.

Installed with the harness, it runs from any project with `pytest --pyargs robustness_tests`, against that
project's own `[tool.robustness]` and `baselines/`.
"""
