"""Maintenance programs of the project, run from a checkout (`python -m tools.<name>`), not shipped in the wheel:
training the embedded models and their trend family, and making the release candidates the gate's tests use."""
