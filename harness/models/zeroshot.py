"""Zero-shot heads: one unit vector per class, the mean of its normalized prompt embeddings."""
from __future__ import annotations

import hashlib
import json
from typing import Callable, Sequence

import torch
from torch import nn


def prompts_sha256(classnames: Sequence[str], templates: Sequence[str]) -> str:
    payload = json.dumps({"classnames": list(classnames), "templates": list(templates)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


@torch.no_grad()
def zero_shot_head(encode_text: Callable[[torch.Tensor], torch.Tensor], tokenizer: Callable[[list[str]], torch.Tensor],
                   classnames: Sequence[str], templates: Sequence[str], device: torch.device,
                   chunk: int = 2048) -> torch.Tensor:
    """(n_classes, D) float32 unit rows: normalized text embeddings averaged over `templates`, re-normalized.

    Every (class, template) prompt is tokenized and encoded in batches of `chunk`, not one class at a time.
    """
    texts = [template.format(name) for name in classnames for template in templates]
    tokens = tokenizer(texts)
    embeddings = torch.cat([encode_text(tokens[i:i + chunk].to(device)).float()
                            for i in range(0, len(texts), chunk)])
    embeddings = nn.functional.normalize(embeddings, dim=-1).view(len(classnames), len(templates), -1)
    return nn.functional.normalize(embeddings.mean(dim=1), dim=-1)
