"""HopSkipJump (Chen, Jordan and Wainwright 2020): a decision-based black-box attack run by the Adversarial
Robustness Toolbox (ART), which reads only the model's predicted labels.

It is a minimum-norm attack: starting from a misclassified point it walks along the decision boundary towards the
clean image, so the caller scores a sample robust at budget eps when the returned image is still classified
correctly or its perturbation norm exceeds eps. ART is imported on first use, so the rest of the suite does not
pay for it.

What this wrapper does around ART, and why:
- it draws the starting points itself. ART's own initialisation draws its uniform noise from a fresh, unseeded
  `np.random.RandomState()`, which no seed reaches; here the same search (up to INIT_TRIALS uniform noise images,
  the first misclassified one bisected towards the clean image to INIT_TOLERANCE) draws from a seeded
  torch.Generator and is handed to ART as `x_adv_init`;
- it casts ART's inputs to float32 before the model: under NumPy 2's promotion rules ART's interpolations turn
  float32 arrays into float64 ones, which a float32 model refuses;
- it seeds NumPy's global generator, from which ART draws the gradient-estimation noise, and puts it and torch's
  global generators back as the caller left them afterwards;
- it keeps ART's progress bar off and its log records below ERROR out of the caller's logging.
"""
from __future__ import annotations

import contextlib
import logging
import math
from typing import Iterator

import numpy as np
import torch
from torch import nn

INIT_TRIALS = 100
INIT_TOLERANCE = 0.001
NORMS = ("l2", "linf")


class _Float32(nn.Module):
    """`model` on its inputs cast to float32."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.float())


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed NumPy's and torch's global generators with `seed` for the block, then restore the caller's states
    (torch's CUDA generators too, once CUDA is initialized)."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    numpy_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices, device_type="cuda"):
            np.random.seed(seed % 2**32)  # NumPy takes 32-bit seeds; run seeds can be larger
            torch.manual_seed(seed)
            yield
    finally:
        np.random.set_state(numpy_state)


@contextlib.contextmanager
def _art_quiet() -> Iterator[None]:
    """Hold ART's loggers to ERROR and above for the block."""
    art_logger = logging.getLogger("art")
    level = art_logger.level
    art_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        art_logger.setLevel(level)


class HopSkipJump:
    """Untargeted HopSkipJump in `norm` ('l2' or 'linf', pixel units) with ART's parameters: `max_iter` boundary
    iterations, each estimating the boundary's normal from min(`init_eval` * sqrt(iteration), `max_eval`) label
    queries; `seed` fixes every random draw. At most `batch_size` images go through the model per forward (a class
    default; set it on an instance to change it).

    Calling it on images (N, C, H, W) float32 in [0, 1] and labels (N,) int64, with the model in eval mode on the
    images' device, returns (N, C, H, W) float32 on that device in [0, 1]: for each image either a point the model
    misclassifies, or the image unchanged where the model already misclassifies it or the attack found no
    adversarial point. The caller's global RNG states (NumPy's, torch's) are left as they were.
    """

    batch_size = 256

    def __init__(self, model: nn.Module, norm: str, max_iter: int, max_eval: int, init_eval: int, seed: int):
        if norm not in NORMS:
            raise ValueError(f"HopSkipJump norm must be one of {', '.join(NORMS)}, got {norm!r}")
        self.model = model
        self.norm = norm
        self.max_iter = max_iter
        self.max_eval = max_eval
        self.init_eval = init_eval
        self.seed = seed

    @torch.no_grad()
    def _logits(self, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.model(images[start:start + self.batch_size])
                          for start in range(0, len(images), self.batch_size)])

    def _misclassified(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self._logits(images).argmax(dim=1) != labels

    def _starting_points(self, images: torch.Tensor, labels: torch.Tensor,
                         generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(starts, found): per image the first of INIT_TRIALS uniform noise images the model misclassifies,
        moved along the segment towards the image to the boundary (within INIT_TOLERANCE of the segment), and
        whether one was found."""
        starts, found = images.clone(), torch.zeros(len(images), dtype=torch.bool, device=images.device)
        for _ in range(INIT_TRIALS):
            missing = (~found).nonzero().squeeze(1)
            if not missing.numel():
                break
            noise = torch.rand(images[missing].shape, generator=generator, device=images.device, dtype=images.dtype)
            hit = self._misclassified(noise, labels[missing])
            starts[missing[hit]] = noise[hit]
            found[missing[hit]] = True
        low = torch.zeros(len(images), device=images.device)
        high = torch.ones(len(images), device=images.device)
        shape = (-1,) + (1,) * (images.dim() - 1)
        for _ in range(math.ceil(math.log2(1 / INIT_TOLERANCE))):
            middle = (low + high) / 2
            adversarial = self._misclassified(images + middle.view(shape) * (starts - images), labels)
            high = torch.where(adversarial, middle, high)
            low = torch.where(adversarial, low, middle)
        return images + high.view(shape) * (starts - images), found

    def _art_attack(self, images: torch.Tensor, labels: torch.Tensor, starts: torch.Tensor,
                    n_classes: int) -> torch.Tensor:
        from art.attacks.evasion import HopSkipJump as ArtHopSkipJump
        from art.estimators.classification import PyTorchClassifier

        on_cuda = images.device.type == "cuda"
        with torch.cuda.device(images.device) if on_cuda else contextlib.nullcontext():
            classifier = PyTorchClassifier(_Float32(self.model), loss=nn.CrossEntropyLoss(),
                                           input_shape=tuple(images.shape[1:]), nb_classes=n_classes,
                                           clip_values=(0.0, 1.0), preprocessing=None,
                                           device_type="gpu" if on_cuda else "cpu")
        attack = ArtHopSkipJump(classifier, batch_size=self.batch_size, targeted=False,
                                norm=2 if self.norm == "l2" else np.inf, max_iter=self.max_iter,
                                max_eval=self.max_eval, init_eval=self.init_eval, init_size=INIT_TRIALS,
                                verbose=False)
        result = attack.generate(images.cpu().numpy(), labels.cpu().numpy(), x_adv_init=starts.cpu().numpy())
        return torch.from_numpy(result).to(images.device, images.dtype)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        adversarial = images.detach().clone()
        logits = self._logits(adversarial)
        index = (logits.argmax(dim=1) == labels).nonzero().squeeze(1)
        if not index.numel():
            return adversarial
        with _seeded(self.seed), _art_quiet():
            generator = torch.Generator(device=images.device).manual_seed(self.seed)
            starts, found = self._starting_points(adversarial[index], labels[index], generator)
            index, starts = index[found], starts[found]
            if index.numel():
                result = self._art_attack(adversarial[index], labels[index], starts, logits.shape[1])
                broken = self._misclassified(result, labels[index])
                adversarial[index[broken]] = result[broken]
        return adversarial
