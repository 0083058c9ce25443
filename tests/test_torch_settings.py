"""tests/torch_settings.py: every setting it reads is one a test can change, and restore puts each one back."""
import torch

from torch_settings import TorchSettings


def test_restore_puts_back_every_setting_a_test_changed():
    kept = TorchSettings.now()
    changed = TorchSettings(kept.threads + 1, not kept.deterministic, not kept.deterministic_warn_only,
                            not kept.grad_enabled, torch.float64 if kept.default_dtype != torch.float64 else torch.float32)
    try:
        changed.restore()
        assert TorchSettings.now() == changed
    finally:
        kept.restore()
    assert TorchSettings.now() == kept
