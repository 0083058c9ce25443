"""Zero-shot heads: one unit vector per class, the mean of its normalized prompt embeddings, optionally kept in
the run's content-addressed cache (an ImageNet head is 80,000 prompts through the text tower)."""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..cache import ArrayCache, cache_key
from ..prompts import Prompts

HEAD_FORMAT = 2  # 2: tokens cut after the longest prompt where that is exact. Bump when zero_shot_head computes differently, so heads cached by an older harness are not reused


@torch.no_grad()
def zero_shot_head(encode_text: Callable[[torch.Tensor], torch.Tensor], tokenizer: Callable[[list[str]], torch.Tensor],
                   prompts: Prompts, device: torch.device, chunk: int = 2048,
                   context: Callable[[torch.Tensor], int] | None = None) -> torch.Tensor:
    """(n_classes, D) float32 unit rows: normalized text embeddings of each class's prompts averaged over the
    templates, re-normalized.

    Every (class, template) prompt is tokenized and encoded in batches of `chunk`, not one class at a time.
    `context(tokens)`, when given, is how many leading positions of the (N, L) tokens decide every embedding; the
    tokens are cut there before encoding, so `encode_text` must take the shorter sequence. That is exact for a
    causal text tower pooled at end-of-text (no position attends to a later one), and cheap: ImageNet's prompts
    end by position 30 or so of CLIP's 77.
    """
    texts = prompts.texts()
    tokens = tokenizer(texts)
    if context is not None:
        tokens = tokens[:, :context(tokens)]
    embeddings = torch.cat([encode_text(tokens[i:i + chunk].to(device)).float()
                            for i in range(0, len(texts), chunk)])
    embeddings = nn.functional.normalize(embeddings, dim=-1).view(len(prompts.classnames), len(prompts.templates), -1)
    return nn.functional.normalize(embeddings.mean(dim=1), dim=-1)


def cached_head(cache: ArrayCache | None, key: Mapping[str, Any],
                compute: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, dict[str, Any]]:
    """The head stored under `key` in `cache`, or `compute()`d and stored there (once across xdist workers), as a
    float32 CPU tensor of its own; with its provenance `{"from_cache": bool, "key": sha256 of key}`. `key` must name
    everything the head depends on. Without a cache the head is computed and `key` is None."""
    if cache is None:
        return compute().float().cpu(), {"from_cache": False, "key": None}
    computed = []

    def compute_arrays() -> dict[str, Any]:
        computed.append(True)
        return {"head": compute().float().cpu().numpy()}

    head = torch.tensor(cache.get_or_compute(key, compute_arrays)["head"])
    return head, {"from_cache": not computed, "key": cache_key(key)}
