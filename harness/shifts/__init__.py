"""Synthetic shifts applied to evaluation pixels."""
