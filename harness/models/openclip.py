"""`openclip:<NAME>@<PRETRAINED>` and `openclip:hf-hub:<org>/<repo>`: open_clip models used zero-shot on `imagenet`.

`<PRETRAINED>` is a tag of `open_clip.list_pretrained()` for `<NAME>`, or a local checkpoint: `.safetensors`, or
`.pt`/`.pth`/`.bin` loaded with `torch.load(weights_only=True)` (a pickle that would execute code is refused with
UnsafeCheckpointError). Weights come from the local caches only, where open_clip itself puts them: the Hugging
Face hub cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`) for tags with an `hf_hub`
entry and for `hf-hub:` ids, else `~/.cache/clip/<file name of the tag's url>`. Nothing is downloaded: an
uncached model fails at once with WeightsNotCachedError naming the paths searched and the command that fetches
the weights on a connected machine.

Tags trained with QuickGELU (every `openai` tag among them) are built with `force_quick_gelu=True`, whatever the
config name says (open_clip issue 771: OpenAI weights under plain GELU lose accuracy silently); a local file is
built as its config name says (use a `-quickgelu` config for such weights).

The zero-shot head averages open_clip's own 80 OpenAI ImageNet templates over its IMAGENET_CLASSNAMES
(`open_clip.zero_shot_metadata`). Given the run's cache, the head is kept there under `head_cache_key` (weights
sha256, config, QuickGELU, prompts, open_clip version, dtype) and reused by later loads; the provenance says
which (`head_cache`). Preprocessing is the model's open_clip eval transform, which must be `resize_mode`
"shortest" (resize the shorter side to `size`, center-crop `size`), the harness's protocol.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import torch

from ..cache import ArrayCache
from ..data.base import Preprocess
from ..files import sha256_file
from .base import LoadedModel, ModelId, PixelClassifier
from .hf_cache import hf_cached
from .registry import UnknownModelError, register_family
from .weights import LOCAL_SUFFIXES, WeightsNotCachedError, refusing_unsafe_pickles
from ..prompts import Prompts
from .zeroshot import HEAD_FORMAT, cached_head, zero_shot_head

HF_PREFIX = "hf-hub:"
LOCAL_PREFIX = "local-dir:"
HF_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


@dataclasses.dataclass(frozen=True)
class Weights:
    """A resolved checkpoint: the file to load, what it is (for provenance), the config to build it with
    (`config`: an open_clip model name or `local-dir:<folder>`), preprocessing overrides from its tag, and
    whether QuickGELU is forced."""

    path: Path
    description: str
    config: str
    preprocess: dict[str, Any]
    quick_gelu: bool


def prefix_text_encoder(model: torch.nn.Module) -> tuple[Callable[[torch.Tensor], torch.Tensor],
                                                          Callable[[torch.Tensor], int]] | None:
    """(encode_text of a token prefix, its context length) for an open_clip text tower where cutting the tokens
    after the longest prompt's end-of-text changes no embedding: a causal attention mask, pooled at the
    end-of-text token (pool type `argmax` or `eos`), with no padding mask and no class token. None for any other
    tower (Hugging Face text encoders, CoCa, towers pooled at the last or first position), whose head is then
    built over the full context. See zero_shot_head's `context`."""
    from open_clip.transformer import TextTransformer, text_global_pool

    text = getattr(model, "text", None)
    if isinstance(text, TextTransformer):  # CustomTextCLIP keeps its tower whole
        if text.cls_emb is not None or getattr(text, "use_pad_mask", False):
            return None
        tower, pool, eos = text, text.pool_type, getattr(text, "eos_id", None)
    elif hasattr(model, "token_embedding") and hasattr(model, "text_pool_type"):  # CLIP inlines its tower
        tower, pool, eos = model, model.text_pool_type, getattr(model, "text_eos_id", None)
    else:
        return None
    if tower.attn_mask is None or pool not in ("argmax", "eos"):
        return None

    def encode(tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        cast = tower.transformer.get_cast_dtype()
        x = tower.token_embedding(tokens).to(cast) + tower.positional_embedding[:length].to(cast)
        x = tower.ln_final(tower.transformer(x, attn_mask=tower.attn_mask[:length, :length]))
        x = text_global_pool(x, tokens, pool, eos_token_id=eos)
        projection = tower.text_projection
        if projection is None:
            return x
        return projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection

    def context(tokens: torch.Tensor) -> int:
        ends = tokens.argmax(dim=-1) if pool == "argmax" else (tokens == eos).int().argmax(dim=-1)
        return int(ends.max()) + 1

    return encode, context


def open_clip_head(model: torch.nn.Module, tokenizer: Any, prompts: Prompts, device: torch.device) -> torch.Tensor:
    """The zero-shot head of an open_clip model over `prompts`, with the tokens cut after the longest prompt
    where that is exact (prefix_text_encoder), else over the tokenizer's full context."""
    prefix = prefix_text_encoder(model)
    encode, context = prefix if prefix is not None else (model.encode_text, None)
    return zero_shot_head(encode, tokenizer, prompts, device, context=context)


def _not_cached(model_id: ModelId, searched: list[str], fetch: str) -> WeightsNotCachedError:
    return WeightsNotCachedError(
        f"{model_id}: weights not in the local cache (nothing is downloaded); searched {', '.join(searched)}. "
        f"On a connected machine run `python -c \"import open_clip; open_clip.create_model({fetch})\"` and copy "
        f"the cache folder to this machine (or point HF_HUB_CACHE at it)")


def _resolve_hf(model_id: ModelId) -> Weights:
    repo = model_id.name[len(HF_PREFIX):]
    config, searched = hf_cached(repo, ("open_clip_config.json",))
    path, searched_weights = hf_cached(repo, HF_WEIGHT_FILES)
    if config is None or path is None:
        raise _not_cached(model_id, searched + searched_weights, f"'{HF_PREFIX}{repo}'")
    return Weights(path, f"{HF_PREFIX}{repo} ({path.name})", f"local-dir:{config.parent}", {}, False)


def _tag_candidates(cfg: dict) -> list[tuple[str, tuple[str, ...]]]:
    """(HF repo, or "" for ~/.cache/clip; file names in order of preference) where open_clip stores a tag's
    weights: its hub repo (`org/repo/` meaning the default file; a safetensors alternative first, as open_clip
    prefers it) and its url's file."""
    candidates = []
    if cfg.get("hf_hub"):
        repo, filename = os.path.split(cfg["hf_hub"])
        if not filename or filename == HF_WEIGHT_FILES[1]:
            names = HF_WEIGHT_FILES
        elif Path(filename).suffix in (".bin", ".pth"):
            names = (str(Path(filename).with_suffix(".safetensors")), filename)
        else:
            names = (filename,)
        candidates.append((repo, names))
    if cfg.get("url"):
        candidates.append(("", (os.path.basename(cfg["url"]),)))
    return candidates


def _resolve_tag(model_id: ModelId, cfg: dict) -> Weights:
    searched: list[str] = []
    for repo, names in _tag_candidates(cfg):
        if repo:
            path, missed = hf_cached(repo, names)
        else:
            url_file = Path.home() / ".cache" / "clip" / names[0]
            path, missed = (url_file, []) if url_file.is_file() else (None, [str(url_file)])
        if path is not None:
            return Weights(path, f"{model_id.weights} ({path.name})", model_id.name, _preprocess_keys(cfg),
                           bool(cfg.get("quick_gelu")) or model_id.weights == "openai")
        searched += missed
    raise _not_cached(model_id, searched, f"'{model_id.name}', pretrained='{model_id.weights}'")


def _preprocess_keys(cfg: dict) -> dict[str, Any]:
    return {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg}


def _resolve_local_dir(model_id: ModelId) -> Weights:
    folder = Path(model_id.name[len(LOCAL_PREFIX):]).expanduser().resolve()
    candidates = [folder / name for name in (*HF_WEIGHT_FILES, "open_clip_pytorch_model.safetensors")
                  if (folder / name).is_file()]
    if len(candidates) != 1 or not (folder / "open_clip_config.json").is_file():
        found = f"; it holds {', '.join(path.name for path in candidates)}, and the one open_clip loads is the one " \
                f"whose bytes must be hashed: keep one" if len(candidates) > 1 else ""
        raise WeightsNotCachedError(f"{model_id}: {folder} must hold open_clip_config.json and exactly one of "
                                    f"{', '.join(HF_WEIGHT_FILES)} (the layout of an open_clip hf-hub repo){found}")
    return Weights(candidates[0], f"{LOCAL_PREFIX}{folder} ({candidates[0].name})", f"{LOCAL_PREFIX}{folder}", {},
                   False)


def resolve_weights(model_id: ModelId) -> Weights:
    """Find the checkpoint of `model_id` on disk; raises WeightsNotCachedError at once when it is not there."""
    import open_clip

    if model_id.name.startswith(HF_PREFIX):
        return _resolve_hf(model_id)
    if model_id.name.startswith(LOCAL_PREFIX):
        return _resolve_local_dir(model_id)
    if Path(model_id.weights).suffix in LOCAL_SUFFIXES:
        path = Path(model_id.weights).expanduser().resolve()
        return Weights(path, f"file {path}", model_id.name, {}, False)
    return _resolve_tag(model_id, open_clip.get_pretrained_cfg(model_id.name, model_id.weights))


def create_clip(model_id: ModelId, device: torch.device) -> tuple[torch.nn.Module, Weights]:
    """The open_clip model of `model_id` with its weights loaded by open_clip (weights_only=True; eval mode, on
    `device`), and what was loaded. A `local-dir:` config loads the folder's checkpoint, the file resolved."""
    import open_clip

    weights = resolve_weights(model_id)
    pretrained = None if weights.config.startswith(LOCAL_PREFIX) else str(weights.path)
    with refusing_unsafe_pickles(weights.path):
        model = open_clip.create_model(weights.config, pretrained=pretrained, device=device,
                                       force_quick_gelu=weights.quick_gelu, force_preprocess_cfg=weights.preprocess,
                                       require_pretrained=True, weights_only=True)
    return model.eval(), weights


def head_cache_key(weights_sha256: str, config: str, force_quick_gelu: bool, prompts: str,
                   dtype: torch.dtype) -> dict[str, Any]:
    """The cache key of an open_clip zero-shot head: everything it depends on. `config` is the model name of
    the id (an open_clip config, or `hf-hub:<org>/<repo>`), which also picks the tokenizer; `prompts` is
    prompts_sha256 of the class names and templates; `dtype` that of the model's parameters. The device is not
    part of it: heads computed on a CPU and on a GPU agree to float rounding."""
    import open_clip

    return {"kind": "open_clip zero-shot head", "format": HEAD_FORMAT, "weights_sha256": weights_sha256,
            "config": config, "force_quick_gelu": force_quick_gelu, "prompts_sha256": prompts,
            "open_clip": open_clip.__version__, "dtype": str(dtype)}


def uses_quick_gelu(model: torch.nn.Module) -> bool:
    from open_clip.transformer import QuickGELU
    return any(isinstance(module, QuickGELU) for module in model.modules())


def _preprocess(model_id: ModelId, cfg: dict) -> tuple[Preprocess, dict[str, Any]]:
    size = cfg["size"]
    if not isinstance(size, int) and len(set(size)) == 1:
        size = int(size[0])
    if cfg.get("resize_mode", "shortest") != "shortest" or not isinstance(size, int):
        raise ValueError(f"{model_id}: open_clip preprocessing resize_mode={cfg.get('resize_mode')!r} "
                         f"size={size!r} is not the harness's protocol (shorter side resized to a square crop)")
    recorded = {"size": size, "resize": size, "interpolation": cfg["interpolation"],
                "resize_mode": cfg["resize_mode"], "mean": list(cfg["mean"]), "std": list(cfg["std"])}
    return Preprocess(size, size, cfg["interpolation"]), recorded


@register_family("openclip")
class OpenClipFamily:
    zero_shot = True

    def names(self) -> list[str]:
        """`<NAME>@<tag>` of every open_clip pretrained tag whose weights are in the local cache."""
        import open_clip

        cached = []
        for name, tag in open_clip.list_pretrained():
            try:
                resolve_weights(ModelId("openclip", name, tag))
            except WeightsNotCachedError:
                continue
            cached.append(f"{name}@{tag}")
        return cached

    def validate(self, model_id: ModelId) -> None:
        import open_clip

        if model_id.name.startswith(HF_PREFIX):
            if model_id.weights is not None or model_id.name.count("/") != 1:
                raise UnknownModelError(f"{model_id}: write hf-hub models as openclip:hf-hub:<org>/<repo>")
            return
        if model_id.name.startswith(LOCAL_PREFIX):
            if model_id.weights is not None:
                raise UnknownModelError(f"{model_id}: a local-dir model's weights are its folder's; drop '@...'")
            _resolve_local_dir(model_id)
            return
        if model_id.name not in open_clip.list_models():
            raise UnknownModelError(f"{model_id}: {model_id.name!r} is not an open_clip model config "
                                    f"(see open_clip.list_models())")
        if model_id.weights is None:
            raise UnknownModelError(f"{model_id}: name the weights after '@': a tag of "
                                    f"open_clip.list_pretrained() or a checkpoint file")
        if Path(model_id.weights).suffix in LOCAL_SUFFIXES:
            if not Path(model_id.weights).expanduser().is_file():
                raise UnknownModelError(f"{model_id}: checkpoint {model_id.weights} does not exist")
        elif not open_clip.get_pretrained_cfg(model_id.name, model_id.weights):
            tags = ", ".join(open_clip.list_pretrained_tags_by_model(model_id.name)) or "none"
            raise UnknownModelError(f"{model_id}: unknown pretrained tag {model_id.weights!r}; known: {tags}")

    def benchmark(self, model_id: ModelId) -> str:
        return "imagenet"

    def load(self, model_id: ModelId, device: torch.device, cache: ArrayCache | None = None,
             prompts: Prompts | None = None) -> LoadedModel:
        import open_clip

        from ..data import get_benchmark

        prompts = prompts or get_benchmark(self.benchmark(model_id)).prompts()
        model, weights = create_clip(model_id, device)
        preprocess, recorded = _preprocess(model_id, model.visual.preprocess_cfg)
        weights_sha256 = sha256_file(weights.path)
        config_name = model_id.name
        if weights.config.startswith(LOCAL_PREFIX):  # a folder's config can change under the same path
            config_name += f" open_clip_config.json sha256 {sha256_file(weights.path.parent / 'open_clip_config.json')}"
        key = head_cache_key(weights_sha256, config_name, weights.quick_gelu, prompts.sha256,
                             next(model.parameters()).dtype)
        head, head_provenance = cached_head(cache, key, lambda: open_clip_head(
            model, open_clip.get_tokenizer(weights.config), prompts, device))
        classifier = PixelClassifier(model.visual, recorded["mean"], recorded["std"], head=head,
                                     logit_scale=model.logit_scale.exp().item()).to(device)
        config = weights.config if model_id.name.startswith((HF_PREFIX, LOCAL_PREFIX)) else model_id.name
        return LoadedModel(model_id, classifier, prompts.classnames, preprocess, {
            "architecture": f"open_clip:{_architecture(config)}",
            "pretrained": model_id.weights or model_id.name,
            "weights": weights.description,
            "weights_sha256": weights_sha256,
            "quick_gelu": uses_quick_gelu(model),
            "preprocess": recorded,
            "prompts_sha256": prompts.sha256,
            "n_templates": len(prompts.templates),
            "prompts": prompts.provenance(),
            "head_cache": head_provenance,
            "head_context": "cut after the longest prompt" if prefix_text_encoder(model) else "full",
            "logit_scale": classifier.logit_scale,
            "n_classes": len(prompts.classnames),
        })


def _architecture(config: str) -> str:
    """The open_clip config name; for a folder, whose path says nothing of its contents, the sha256 of its
    config's model_cfg, so a baseline recorded for one architecture refuses a folder holding another."""
    if not config.startswith(LOCAL_PREFIX):
        return config
    model_cfg = json.loads((Path(config[len(LOCAL_PREFIX):]) / "open_clip_config.json").read_text())["model_cfg"]
    digest = hashlib.sha256(json.dumps(model_cfg, sort_keys=True).encode()).hexdigest()[:16]
    return f"{LOCAL_PREFIX}model_cfg {digest}"
