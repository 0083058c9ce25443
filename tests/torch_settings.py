"""torch's process-wide settings, read and put back by the harness's tests."""
from typing import NamedTuple

import torch


class TorchSettings(NamedTuple):
    """torch's process-wide settings that a later test or suite case in the same xdist worker would inherit
    (`make test` runs tests/ and robustness_tests/ in one pool of workers)."""
    threads: int
    deterministic: bool
    deterministic_warn_only: bool
    grad_enabled: bool
    default_dtype: torch.dtype

    @classmethod
    def now(cls) -> "TorchSettings":
        return cls(torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
                   torch.is_deterministic_algorithms_warn_only_enabled(), torch.is_grad_enabled(),
                   torch.get_default_dtype())

    def restore(self) -> None:
        torch.set_num_threads(self.threads)
        torch.use_deterministic_algorithms(self.deterministic, warn_only=self.deterministic_warn_only)
        torch.set_grad_enabled(self.grad_enabled)
        torch.set_default_dtype(self.default_dtype)
