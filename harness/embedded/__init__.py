"""Embedded default: a procedurally rendered benchmark and two tiny models trained on it.

The CLIP model is an open_clip model named ``CLIP_MODEL_NAME`` whose config is
``CLIP_CONFIG``; its image tower expects 64x64 images in [0, 1] normalized by
``CLIP_MEAN``/``CLIP_STD`` (open_clip's default preprocessing constants, so
``open_clip.create_model_and_transforms`` returns the matching transform).
"""

from pathlib import Path

EMBEDDED_DIR: Path = Path(__file__).parent
CHECKPOINT_DIR: Path = EMBEDDED_DIR / "checkpoints"
CLIP_MODEL_NAME: str = "synth-clip"
CLIP_CONFIG: Path = EMBEDDED_DIR / f"{CLIP_MODEL_NAME}.json"
CLIP_CHECKPOINT: Path = CHECKPOINT_DIR / f"{CLIP_MODEL_NAME}.safetensors"
CNN_CHECKPOINT: Path = CHECKPOINT_DIR / "synth-cnn.safetensors"
REFERENCE_CHECKPOINT: Path = CHECKPOINT_DIR / "reference-cnn.safetensors"
TRAINING_RECORD: Path = EMBEDDED_DIR / "training_record.json"
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
