"""Tiny random-weight Hugging Face CLIP and SigLIP folders, as `save_pretrained` writes them, for the tests of the
`transformers` family and any suite test that loads `transformers:<folder>`.

Each folder holds config.json and model.safetensors (seeded random weights, torch.manual_seed(0)), a tokenizer
built with the `tokenizers` library and saved through PreTrainedTokenizerFast (tokenizer.json,
tokenizer_config.json), and the model's image processor (preprocessor_config.json). The tokenizer is a
character-level WordPiece over lowercase letters, digits and common punctuation, so any class name tokenizes to
its own ids (unknown characters become <unk>); its special tokens are the ones the text config names:
CLIP <|startoftext|> (bos) ... <|endoftext|> (eos, where CLIP pools) and a distinct <pad>; SigLIP ... </s> (eos
and pad, as released SigLIP has it). Text lengths are the released ones (CLIP 77, SigLIP 64), so the padding
rules are exercised at their real lengths. Writing either takes well under a second.
"""
from __future__ import annotations

import math
import string
from pathlib import Path

CHARACTERS = string.ascii_lowercase + string.digits
PUNCTUATION = ".,'-!?()&/:;\""
CLIP_SPECIALS = ("<unk>", "<pad>", "<|startoftext|>", "<|endoftext|>")  # ids 0..3: bos 2, eos 3, pad 1
SIGLIP_SPECIALS = ("<pad>", "</s>", "<unk>")  # ids 0..2: eos = pad = 1, unk 2, as released SigLIP


def _vocab(specials: tuple[str, ...]) -> dict[str, int]:
    tokens = [*specials, *CHARACTERS, *(f"##{c}" for c in CHARACTERS), *PUNCTUATION]
    return {token: index for index, token in enumerate(tokens)}


def _tokenizer(specials: tuple[str, ...], template: str, special_ids: list[tuple[str, int]], unk: str):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    tokenizer = Tokenizer(models.WordPiece(_vocab(specials), unk_token=unk, max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(),
                                                 normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(single=template, special_tokens=special_ids)
    tokenizer.decoder = decoders.WordPiece()
    return tokenizer


def write_tiny_clip(folder: Path, shortest_edge: int = 36, crop: int = 32, resample: int = 3) -> Path:
    """A tiny CLIPModel (width 32, 2 layers, 2 heads, 32 px images in 8 px patches, projection 16) in `folder`;
    its processor resizes the shortest edge to `shortest_edge` and center-crops `crop` with PIL `resample`."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

    folder = Path(folder)
    vocab = _vocab(CLIP_SPECIALS)
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 77, "bos_token_id": 2, "eos_token_id": 3,
                     "pad_token_id": 1},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": crop, "patch_size": 8},
        projection_dim=16)
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(folder)
    tokenizer = _tokenizer(CLIP_SPECIALS, "<|startoftext|> $A <|endoftext|>",
                           [("<|startoftext|>", 2), ("<|endoftext|>", 3)], "<unk>")
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<|startoftext|>", eos_token="<|endoftext|>",
                            pad_token="<pad>", unk_token="<unk>", model_max_length=77).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": shortest_edge}, crop_size={"height": crop, "width": crop},
                       resample=resample).save_pretrained(folder)
    return folder


def write_tiny_siglip(folder: Path, size: tuple[int, int] = (32, 32), resample: int = 2) -> Path:
    """A tiny SiglipModel (width 32, the vision tower with its attention-pooling head, 2 layers, 2 heads, 32 px
    images in 8 px patches, embeddings 32: transformers 4.x has no text projection_size) in `folder`; its processor squashes to `size` (height, width) with PIL
    `resample`, without a crop, as SigLIP's does. logit_scale is log 10 and logit_bias -10."""
    import torch
    from transformers import PreTrainedTokenizerFast, SiglipConfig, SiglipImageProcessor, SiglipModel

    folder = Path(folder)
    vocab = _vocab(SIGLIP_SPECIALS)
    config = SiglipConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 64, "projection_size": 32,
                     "bos_token_id": None, "eos_token_id": 1, "pad_token_id": 1},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8})
    torch.manual_seed(0)
    model = SiglipModel(config)
    with torch.no_grad():  # SigLIP's initial temperature and bias (its paper's t' = log 10, b = -10), not 1 and 0
        model.logit_scale.fill_(math.log(10.0))
        model.logit_bias.fill_(-10.0)
    model.save_pretrained(folder)
    tokenizer = _tokenizer(SIGLIP_SPECIALS, "$A </s>", [("</s>", 1)], "<unk>")
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="</s>", pad_token="</s>", unk_token="<unk>",
                            model_max_length=64).save_pretrained(folder)
    SiglipImageProcessor(size={"height": size[0], "width": size[1]}, resample=resample).save_pretrained(folder)
    return folder
