"""NES: a score-based black-box L-infinity attack (Ilyas et al. 2018, "Black-box Adversarial Attacks with Limited
Queries and Information"), run as RoZ runs it.

Each step estimates the input gradient of the margin loss (logit of the true class minus the largest other logit)
from `queries` antithetic Gaussian pairs, takes a signed step down it, and projects onto the eps-ball around the
clean image and onto [0, 1]. A sample stops at the first point the model misclassifies. Only logits are read,
never gradients.
"""
from __future__ import annotations

import torch
from torch import nn
from torchattacks.attack import Attack


def margin_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(N,) logit of `labels` minus the largest other logit, from logits (N, C) and labels (N,); negative exactly
    where the model misclassifies (ties aside)."""
    true = logits.gather(1, labels.unsqueeze(1)).squeeze(1)
    others = logits.masked_fill(nn.functional.one_hot(labels, logits.shape[1]).bool(), float("-inf"))
    return true - others.amax(dim=1)


class NES(Attack):
    """Untargeted NES attack with budget `eps` (L-infinity, pixel units), `steps` signed steps of size `alpha`
    (pixel units), each estimating the gradient from `queries` antithetic pairs `x ± sigma * u`, u ~ N(0, I): a step
    costs 2 * `queries` model queries per sample still correctly classified.

    Gaussian draws come from a torch.Generator seeded with `seed` on the images' device, so a call is
    reproducible for the same inputs and `batch_size` and leaves the global RNG state alone. At most `batch_size`
    perturbed images (one antithetic pair at least) go through the model per forward. `sigma`
    (pixel units) and `batch_size` are class defaults; set them on an instance to change them.

    Shape: images (N, C, H, W) float in [0, 1], labels (N,) int64 -> adversarial images (N, C, H, W), within eps
    of the images and in [0, 1].
    """

    sigma = 0.001
    batch_size = 256

    def __init__(self, model: nn.Module, eps: float, alpha: float, steps: int, queries: int, seed: int = 0):
        super().__init__("NES", model)
        if queries < 1:
            raise ValueError(f"NES needs at least one query per step, got {queries}")
        self.eps = eps
        self.alpha = alpha
        self.steps = steps
        self.queries = queries
        self.seed = seed
        self.supported_mode = ["default"]

    @torch.no_grad()
    def margin_gradient(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """NES estimate (N, C, H, W) of the gradient of `margin_loss` at `images` (N, C, H, W):
        g = sum_i (m(x + sigma u_i) - m(x - sigma u_i)) u_i / (2 q sigma) over q = `queries` draws u_i ~ N(0, I)
        from `generator` (on the images' device)."""
        pairs_per_forward = max(1, self.batch_size // 2)
        images_per_chunk = max(1, pairs_per_forward // self.queries)
        queries_per_chunk = min(self.queries, pairs_per_forward)
        gradient = torch.zeros_like(images)
        for start in range(0, len(images), images_per_chunk):
            x, y = images[start:start + images_per_chunk], labels[start:start + images_per_chunk]
            for first in range(0, self.queries, queries_per_chunk):
                k = min(queries_per_chunk, self.queries - first)
                u = torch.randn((len(x), k, *x.shape[1:]), generator=generator, device=x.device, dtype=x.dtype)
                points = x.unsqueeze(1).unsqueeze(1) + self.sigma * torch.stack((u, -u), dim=1)
                margins = margin_loss(self.get_logits(points.flatten(0, 2)), y.repeat_interleave(2 * k))
                margins = margins.view(len(x), 2, k)
                difference = (margins[:, 0] - margins[:, 1]).view(len(x), k, *([1] * (x.dim() - 1)))
                gradient[start:start + len(x)] += (difference * u).sum(dim=1)
        return gradient / (2 * self.queries * self.sigma)

    @torch.no_grad()
    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)
        generator = torch.Generator(device=images.device).manual_seed(self.seed)
        adversarial = images.clone()
        active = self.get_logits(images).argmax(dim=1) == labels
        for _ in range(self.steps):
            index = active.nonzero().squeeze(1)
            if not index.numel():
                break
            clean, x, y = images[index], adversarial[index], labels[index]
            x = x - self.alpha * self.margin_gradient(x, y, generator).sign()
            x = torch.clamp(torch.minimum(torch.maximum(x, clean - self.eps), clean + self.eps), 0, 1)
            adversarial[index] = x
            active[index] = self.get_logits(x).argmax(dim=1) == y
        return adversarial
