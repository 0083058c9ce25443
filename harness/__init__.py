"""robustness-gate: measure and gate the zero-shot robustness of CLIP-like models."""
__version__ = "0.1.0"
