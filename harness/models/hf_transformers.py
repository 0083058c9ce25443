"""`transformers:<org>/<repo>[@<revision>]` and `transformers:<folder>`: Hugging Face CLIP and SigLIP models
(config.json `model_type` "clip" or "siglip"), used zero-shot on `imagenet` or on the benchmark whose `Prompts`
the harness passes to `load`.

Where the files come from. `<org>/<repo>` is read from the local Hugging Face hub cache only (`$HF_HUB_CACHE`,
else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`, read at call time): the snapshot `refs/<revision>` names
(`main` by default; `@<revision>` may also be a commit hash naming `snapshots/<hash>` itself; without refs/main a
cache holding one snapshot uses it). Nothing is downloaded: an uncached repo fails at load with
WeightsNotCachedError naming the paths searched and the command that fetches it on a connected machine. A folder
is written as a path starting with `/`, `./`, `../` or `~` (relative to the working directory) and holds what
`save_pretrained` writes: config.json, the weights (`model.safetensors`, preferred, or `pytorch_model.bin`,
either possibly sharded with an `.index.json`), the tokenizer files and preprocessor_config.json. Both load through
`AutoModel.from_pretrained(folder, local_files_only=True)` (remote code is never trusted; a `.bin` pickle that
would execute code is refused with UnsafeCheckpointError), `AutoTokenizer` and `AutoImageProcessor` (each
`from_pretrained(folder, local_files_only=True)`; not AutoProcessor, whose CLIP and SigLIP processors in
transformers 4.x insist on their own tokenizer classes and refuse the PreTrainedTokenizerFast the tests write
with the `tokenizers` library). Released SigLIP tokenizers are sentencepiece models, read with the `sentencepiece`
package (a dependency). The model runs in eval mode, in float32, on the device.

Pixels. The classifier follows the pixel-space contract (PixelClassifier): images in [0, 1], normalized inside
with the image processor's image_mean/image_std, embedded by the model's `get_image_features` (vision tower and
projection; a tensor in transformers 4.x, an output whose `pooler_output` it is in 5.x: both are read), scored by
`logit_scale.exp()` times the cosine with the head. SigLIP's `logit_bias` is a constant added to every logit: it
changes neither the argmax nor the cross-entropy (nor any margin between logits), so the classifier leaves it out
and the provenance records it. The text tower is released once the head is built (the classifier holds the
image side only, as the open_clip family holds `model.visual`).

Preprocessing (from preprocessor_config.json, checked when the id is validated): the harness resizes the shorter
side to `resize` and center-crops `size` (interpolation from `resample`, PIL's enum: 3 bicubic, 2 bilinear, ...).
CLIP's processor does exactly that (`size.shortest_edge`, `crop_size`). SigLIP's resizes to height x width
without cropping (a squash); the harness uses size = resize = height instead, which is the same on square images
(every benchmark image the harness crops is square after the crop it takes) and differs on non-square ones, where
the harness crops what SigLIP squashes; the provenance says so. Refused, with a ValueError naming the model (an
UnknownModelError when the id is validated): non-square sizes or crops, a crop larger than the resize, processors
that do not resize, that rescale by anything but 1/255 (the harness's pixels are already in [0, 1]), or that
resize the shortest edge without a crop (non-square inputs). SigLIP 2 (`siglip2`: patch sequences with masks, not
pixel images) and every other model type are refused.

Text. Every prompt is tokenized with `padding="max_length"` to the text tower's `max_position_embeddings`
(CLIP 77, released SigLIP 64), truncated, padded on the right, and encoded by `get_text_features(input_ids=...)`
without an attention mask. For SigLIP that is how it was trained and how Hugging Face's docs use it (its text
tower is bidirectional and pools the last position, so padding=True, to the longest prompt, gives other
embeddings). For CLIP it is how OpenAI's CLIP was trained (no padding mask); its text tower is causal and pools
the first end-of-text token, so whatever follows that token, mask or not, leaves the embedding unchanged, and the
tokens are cut after the longest prompt's end-of-text before encoding (zero_shot_head's `context`; exact, and
about 2.5 times cheaper on ImageNet's prompts). SigLIP's tokens are never cut.

The zero-shot head (zero_shot_head over `prompts.classnames` x `prompts.templates`; without prompts, those of the
family's benchmark, `imagenet`) is kept in the run's cache under `head_cache_key`: the sha256 of the weight files,
of config.json and of the tokenizer files, the model type, the source (repo@commit or folder), the prompts'
sha256, the transformers version, the padding rule, the dtype and HEAD_FORMAT. The provenance's `architecture`
names the model type and the towers' shapes, so a baseline recorded for one model refuses another.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..cache import ArrayCache
from ..data.base import Preprocess
from ..data.folders import RESAMPLE
from ..files import sha256_file
from ..prompts import Prompts
from .base import LoadedModel, ModelId, PixelClassifier
from .hf_cache import hf_cache_dir, hf_repo_folder
from .registry import UnknownModelError, register_family
from .weights import WeightsNotCachedError, refusing_unsafe_pickles
from .zeroshot import HEAD_FORMAT, cached_head, zero_shot_head

SUPPORTED_TYPES = ("clip", "siglip")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.json", "merges.txt", "vocab.txt", "spiece.model", "sentencepiece.bpe.model",
                   "processor_config.json")
PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
FOLDER_PREFIXES = ("/", "./", "../", "~")


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """The folder a model loads from, what it is (`source`: `<org>/<repo>@<commit>` or `folder <path>`), and the
    weight files transformers reads from it (an index first when sharded)."""

    folder: Path
    source: str
    weights: tuple[Path, ...]

    @property
    def description(self) -> str:
        return f"{self.source} ({', '.join(path.name for path in self.weights)})"


def is_folder(model_id: ModelId) -> bool:
    return model_id.name.startswith(FOLDER_PREFIXES) or model_id.name in (".", "..")


def _fetch_command(model_id: ModelId) -> str:
    """A command that puts into the HF hub cache what `load` reads: weights, config, tokenizer, image processor."""
    arguments = f"'{model_id.name}'" + (f", revision='{model_id.weights}'" if model_id.weights else "")
    return (f"python -c \"import transformers as t; t.AutoModel.from_pretrained({arguments}); "
            f"t.AutoTokenizer.from_pretrained({arguments}); t.AutoImageProcessor.from_pretrained({arguments})\"")


def _snapshot(model_id: ModelId) -> tuple[Path | None, list[str]]:
    """The cached snapshot folder of a repo id (holding config.json), or None and the paths searched."""
    base = hf_repo_folder(model_id.name)
    revision = model_id.weights or "main"
    ref = base / "refs" / revision
    searched = [str(ref), str(base / "snapshots" / revision)]
    candidates = [base / "snapshots" / revision]
    if ref.is_file():
        candidates.insert(0, base / "snapshots" / ref.read_text().strip())
    if model_id.weights is None and not ref.is_file() and (base / "snapshots").is_dir():
        snapshots = sorted(path for path in (base / "snapshots").iterdir() if path.is_dir())
        if len(snapshots) > 1:
            raise UnknownModelError(
                f"{model_id}: the cache holds {len(snapshots)} snapshots of {model_id.name} "
                f"({', '.join(path.name for path in snapshots)}) and no refs/main; name one: "
                f"transformers:{model_id.name}@<commit>")
        candidates += snapshots
    for folder in candidates:
        if (folder / "config.json").is_file():
            return folder, []
    return None, searched + [str(base / "snapshots" / "*" / "config.json")]


def weight_files(folder: Path) -> tuple[Path, ...]:
    """The weight files transformers loads from `folder` (safetensors first; an index and its shards), or ()."""
    for name in WEIGHT_FILES:
        path = folder / name
        if path.is_file():
            if not name.endswith(".index.json"):
                return (path,)
            shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
            return (path, *(folder / shard for shard in shards))
    return ()


def locate(model_id: ModelId) -> Checkpoint:
    """The folder and weight files of `model_id`; WeightsNotCachedError at once when they are not on disk."""
    if is_folder(model_id):
        folder = Path(model_id.name).expanduser().resolve()
        if not (folder / "config.json").is_file():
            raise WeightsNotCachedError(f"{model_id}: no config.json in {folder}; name a folder written by "
                                        f"save_pretrained (config.json, weights, tokenizer, preprocessor)")
        source = f"folder {folder}"
    else:
        folder, searched = _snapshot(model_id)
        if folder is None:
            raise WeightsNotCachedError(
                f"{model_id}: not in the local Hugging Face hub cache (nothing is downloaded); searched "
                f"{', '.join(searched)}. On a connected machine run `{_fetch_command(model_id)}` and copy the "
                f"cache folder to this machine (or point HF_HUB_CACHE at it)")
        source = f"{model_id.name}@{folder.name}"
    weights = weight_files(folder)
    if not weights or not all(path.is_file() for path in weights):
        fetch = "" if is_folder(model_id) else f"; on a connected machine run `{_fetch_command(model_id)}`"
        raise WeightsNotCachedError(f"{model_id}: no complete weights in {folder} (looked for "
                                    f"{', '.join(WEIGHT_FILES)} and the shards an index names){fetch}")
    return Checkpoint(folder, source, weights)


def _read_json(path: Path, model_id: ModelId) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UnknownModelError(f"{model_id}: cannot read {path} ({error})") from None


def check_model_type(model_type: str | None, model_id: ModelId) -> str:
    """`model_type` when this family loads it; else UnknownModelError saying what it loads."""
    if model_type in SUPPORTED_TYPES:
        return model_type
    if model_type == "siglip2":
        raise UnknownModelError(f"{model_id}: SigLIP 2 (model_type siglip2) takes patch sequences with attention "
                                f"masks and spatial shapes, not pixel images; the transformers family loads "
                                f"{' and '.join(SUPPORTED_TYPES)} models")
    raise UnknownModelError(f"{model_id}: model_type {model_type!r} is not a CLIP or SigLIP model; the "
                            f"transformers family loads model types {', '.join(SUPPORTED_TYPES)}")


def _interpolation(resample: Any) -> str | None:
    value = getattr(resample, "value", resample)
    if isinstance(value, str):
        return value.lower() if value.lower() in RESAMPLE else None
    return PIL_RESAMPLE.get(int(value)) if value is not None else None


def _square(size: Any, what: str, model_id: ModelId) -> int:
    if isinstance(size, int):
        return size
    if size and size.get("height") and size.get("height") == size.get("width"):
        return int(size["height"])
    raise ValueError(f"{model_id}: the image processor's {what} {size!r} is not square; the harness evaluates "
                     f"square crops only")


def _per_channel(value: Any) -> list[float]:
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)] * 3


def preprocess_of(processor: dict[str, Any], model_id: ModelId) -> tuple[Preprocess, dict[str, Any]]:
    """The harness preprocessing of an image processor's settings (`to_dict()` or preprocessor_config.json) and
    its provenance record; ValueError naming the model when the harness's protocol cannot express them."""
    def refuse(why: str) -> ValueError:
        return ValueError(f"{model_id}: the image processor {why}; the harness resizes the shorter side of [0, 1] "
                          f"pixels and center-crops a square")

    if not processor.get("do_resize", True):
        raise refuse("does not resize")
    factor = processor.get("rescale_factor", 1 / 255) if processor.get("do_rescale", True) else 1.0
    if abs(float(factor) - 1 / 255) > 1e-9:
        raise refuse(f"rescales pixels by {factor}, not 1/255")
    interpolation = _interpolation(processor.get("resample", 3))
    if interpolation is None:
        raise refuse(f"resamples with {processor.get('resample')!r}, none of {', '.join(RESAMPLE)}")
    size = processor.get("size")
    size = {"shortest_edge": size} if isinstance(size, int) else size  # as CLIP's and SigLIP's processors read it
    if isinstance(size, dict) and size.get("shortest_edge"):
        resize, mode = int(size["shortest_edge"]), "shortest_edge"
    else:
        resize, mode = _square(size, "size", model_id), "squash"
    if processor.get("do_center_crop"):
        crop = _square(processor.get("crop_size"), "crop_size", model_id)
    elif mode == "shortest_edge":
        raise refuse(f"resizes the shortest edge to {resize} without a center crop (non-square inputs)")
    else:
        crop = resize
    if crop > resize:
        raise refuse(f"crops {crop} px from an image resized to {resize}")
    normalize = processor.get("do_normalize", True)
    recorded = {"size": crop, "resize": resize, "interpolation": interpolation, "resize_mode": mode,
                "center_crop": bool(processor.get("do_center_crop")),
                "mean": _per_channel(processor.get("image_mean", 0.0) if normalize else 0.0),
                "std": _per_channel(processor.get("image_std", 1.0) if normalize else 1.0),
                "image_processor": processor.get("image_processor_type")}
    if mode == "squash":
        recorded["note"] = (f"the processor squashes the image to {resize}x{resize}; the harness resizes the shorter "
                            f"side and center-crops, the same on square images")
    return Preprocess(crop, resize, interpolation), recorded


def _digest(files: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def fingerprint(checkpoint: Checkpoint) -> dict[str, str]:
    """sha256 of the weights (the file's own when one file, else of the {name: sha256} map of index and shards),
    of config.json, and of the {name: sha256} map of the tokenizer files present."""
    weights = {path.name: sha256_file(path) for path in checkpoint.weights}
    tokenizer = {name: sha256_file(checkpoint.folder / name) for name in TOKENIZER_FILES
                 if (checkpoint.folder / name).is_file()}
    return {"weights_sha256": next(iter(weights.values())) if len(weights) == 1 else _digest(weights),
            "config_sha256": sha256_file(checkpoint.folder / "config.json"), "tokenizer_sha256": _digest(tokenizer)}


def _embedding(output: Any) -> torch.Tensor:
    """get_*_features' embedding: the tensor itself (transformers 4.x) or its `pooler_output` (5.x)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


@dataclasses.dataclass(frozen=True)
class TextEncoder:
    """The model's text side as zero_shot_head calls it: `tokenize(texts)` -> (N, L) input ids, `encode(ids)`
    -> (N, D) text embeddings, and `context(ids)`, the leading positions that decide every embedding (CLIP: up
    to the last prompt's end-of-text token; None for SigLIP, whose every position counts); `padding` records the
    rule, the cut included."""

    tokenize: Callable[[list[str]], torch.Tensor]
    encode: Callable[[torch.Tensor], torch.Tensor]
    context: Callable[[torch.Tensor], int] | None
    padding: dict[str, Any]


def _end_of_text(model: nn.Module) -> Callable[[torch.Tensor], int]:
    """How many leading positions of CLIP's (N, L) input ids reach its pooled end-of-text tokens, found as
    CLIPTextTransformer finds them: the first `eos_token_id`, or the highest id for configs with the old
    eos_token_id 2."""
    eos = model.config.text_config.eos_token_id

    def context(ids: torch.Tensor) -> int:
        ends = ids.argmax(dim=-1) if eos == 2 else (ids == eos).int().argmax(dim=-1)
        return int(ends.max()) + 1

    return context


def text_encoder(model: nn.Module, tokenizer: Any) -> TextEncoder:
    """padding="max_length" to the text tower's max_position_embeddings, truncated, on the right, no attention
    mask: SigLIP's training rule, and for CLIP's causal, end-of-text-pooled tower the same as masked padding, so
    CLIP's tokens are also cut after the longest prompt's end-of-text (exact: no position attends to a later one;
    ImageNet's prompts end by position 30 or so of 77)."""
    length = int(model.config.text_config.max_position_embeddings)
    tokenizer.padding_side = "right"
    causal = model.config.model_type == "clip"

    def tokenize(texts: list[str]) -> torch.Tensor:
        return tokenizer(list(texts), padding="max_length", max_length=length, truncation=True,
                         return_tensors="pt")["input_ids"]

    def encode(ids: torch.Tensor) -> torch.Tensor:
        return _embedding(model.get_text_features(input_ids=ids))

    return TextEncoder(tokenize, encode, _end_of_text(model) if causal else None, {
        "padding": "max_length", "max_length": length, "truncation": True, "side": "right",
        "attention_mask": False, "cut_after_end_of_text": causal})


class ImageEmbedder(nn.Module):
    """Normalized pixels (N, 3, H, W) -> image embeddings (N, D): the model's get_image_features."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return _embedding(self.model.get_image_features(pixel_values=pixel_values))


def release_text_tower(model: nn.Module) -> None:
    """Drop the text tower and projection, which the classifier never calls, to free their memory."""
    for name in ("text_model", "text_projection"):
        if isinstance(getattr(model, name, None), nn.Module):
            setattr(model, name, None)


def head_cache_key(fingerprints: dict[str, str], model_type: str, source: str, prompts_sha256: str,
                   padding: dict[str, Any], dtype: torch.dtype) -> dict[str, Any]:
    """The cache key of a transformers zero-shot head: everything it depends on. `fingerprints` is
    fingerprint(checkpoint) (weights, config.json, tokenizer files); the device is not part of it."""
    import transformers

    return {"kind": "transformers zero-shot head", "format": HEAD_FORMAT, **fingerprints, "model_type": model_type,
            "source": source, "prompts_sha256": prompts_sha256, "transformers": transformers.__version__,
            "padding": dict(padding), "dtype": str(dtype)}


def architecture(model: nn.Module, head: torch.Tensor) -> str:
    """`transformers:<model_type>` and the towers' shapes, so a baseline recorded for one model refuses another
    (any id form: a folder's path says nothing of its contents): layers x width, patch, input size, text
    context, embedding width."""
    config = model.config
    vision, text = config.vision_config, config.text_config
    return (f"transformers:{config.model_type} vision {vision.num_hidden_layers}x{vision.hidden_size} patch "
            f"{vision.patch_size} at {vision.image_size} px, text {text.num_hidden_layers}x{text.hidden_size} "
            f"context {text.max_position_embeddings}, embedding {head.shape[-1]}")


def load_pretrained(checkpoint: Checkpoint, device: torch.device) -> tuple[nn.Module, Any, Any]:
    """(model in eval mode, float32, on `device`; tokenizer; image processor) from the checkpoint's folder, each
    by its Auto class, offline. Weights that leave any parameter of the model unloaded (missing, or of another
    shape) are refused: transformers would initialize it at random with only a log line."""
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    folder = str(checkpoint.folder)
    with refusing_unsafe_pickles(checkpoint.weights[0]):
        model, info = AutoModel.from_pretrained(folder, local_files_only=True, output_loading_info=True)
    unloaded = sorted(info.get("missing_keys") or []) + sorted(str(m) for m in info.get("mismatched_keys") or [])
    if unloaded:
        raise ValueError(f"{checkpoint.description}: the weights leave {len(unloaded)} parameter(s) of the "
                         f"{model.config.model_type} model unloaded ({', '.join(unloaded[:5])}); transformers "
                         f"would initialize them at random. Save the model with save_pretrained, or check that "
                         f"config.json describes these weights")
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    image_processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
    return model.to(device=device, dtype=torch.float32).eval(), tokenizer, image_processor


@register_family("transformers")
class TransformersFamily:
    zero_shot = True  # builds its head from any benchmark's Prompts

    def names(self) -> list[str]:
        """`<org>/<repo>` of every CLIP or SigLIP repo in the local HF hub cache with its weights (JSON reads only:
        this runs for the error message of an unknown model id)."""
        root = hf_cache_dir()
        if not root.is_dir():
            return []
        found = []
        for folder in sorted(root.glob("models--*--*")):
            model_id = ModelId("transformers", folder.name[len("models--"):].replace("--", "/"))
            try:
                snapshot, _ = _snapshot(model_id)
                config = json.loads((snapshot / "config.json").read_text()) if snapshot else {}
            except (UnknownModelError, OSError, ValueError):
                continue
            if config.get("model_type") in SUPPORTED_TYPES and weight_files(snapshot):
                found.append(model_id.name)
        return found

    def validate(self, model_id: ModelId) -> None:
        if is_folder(model_id):
            if model_id.weights is not None:
                raise UnknownModelError(f"{model_id}: a folder takes no '@<revision>' (a path holding '@' cannot "
                                        f"be named); write transformers:/path/to/folder")
            folder = Path(model_id.name).expanduser().resolve()
            if not (folder / "config.json").is_file():
                state = "holds no config.json" if folder.is_dir() else "does not exist"
                raise UnknownModelError(f"{model_id}: folder {folder} {state}; name a folder written by "
                                        f"save_pretrained (config.json, weights, tokenizer, preprocessor_config.json)")
        elif not REPO.fullmatch(model_id.name):
            raise UnknownModelError(f"{model_id}: write transformers:<org>/<repo>[@<revision>] for a repo of the "
                                    f"local HF hub cache, or transformers:/path (or ./path) for a folder")
        else:
            folder, _ = _snapshot(model_id)
            if folder is None:
                return  # not cached: load says where it looked and how to fetch it
        check_model_type(_read_json(folder / "config.json", model_id).get("model_type"), model_id)
        processor = folder / "preprocessor_config.json"
        if not processor.is_file():
            raise UnknownModelError(f"{model_id}: {processor} is missing: the image processor's settings say how "
                                    f"to preprocess the images")
        try:
            preprocess_of(_read_json(processor, model_id), model_id)
        except ValueError as error:
            raise UnknownModelError(str(error)) from None

    def benchmark(self, model_id: ModelId) -> str:
        return "imagenet"

    def load(self, model_id: ModelId, device: torch.device, cache: ArrayCache | None = None,
             prompts: Prompts | None = None) -> LoadedModel:
        import transformers

        from ..data import get_benchmark

        prompts = prompts if prompts is not None else get_benchmark(self.benchmark(model_id)).prompts()
        checkpoint = locate(model_id)
        model, tokenizer, image_processor = load_pretrained(checkpoint, device)
        model_type = check_model_type(model.config.model_type, model_id)
        preprocess, recorded = preprocess_of(image_processor.to_dict(), model_id)
        text = text_encoder(model, tokenizer)
        fingerprints = fingerprint(checkpoint)
        key = head_cache_key(fingerprints, model_type, checkpoint.source, prompts.sha256, text.padding,
                             next(model.parameters()).dtype)
        head, head_provenance = cached_head(cache, key, lambda: zero_shot_head(
            text.encode, text.tokenize, prompts, device, context=text.context))
        release_text_tower(model)
        classifier = PixelClassifier(ImageEmbedder(model), recorded["mean"], recorded["std"], head=head,
                                     logit_scale=model.logit_scale.exp().item()).to(device)
        provenance = {
            "architecture": architecture(model, head),
            "pretrained": str(model_id).split(":", 1)[1],
            "weights": checkpoint.description,
            **fingerprints,
            "tokenizer": type(tokenizer).__name__,
            "text_padding": text.padding,
            "preprocess": recorded,
            "prompts": prompts.provenance(),
            "prompts_sha256": prompts.sha256,
            "n_templates": len(prompts.templates),
            "head_cache": head_provenance,
            "head_context": "cut after the longest prompt" if text.context else "full",
            "logit_scale": classifier.logit_scale,
            "n_classes": len(prompts.classnames),
            "transformers": transformers.__version__,
        }
        if getattr(model, "logit_bias", None) is not None:
            provenance["logit_bias"] = model.logit_bias.item()
            provenance["logit_bias_note"] = ("a constant added to every logit by the model, left out of the "
                                             "classifier's logits: it changes neither argmax nor cross-entropy")
        return LoadedModel(model_id, classifier, tuple(prompts.classnames), preprocess, provenance)
