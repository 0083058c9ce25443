"""Procedurally rendered zero-shot benchmark (the embedded default).

Ten object classes are drawn as recognisable shapes with numpy + PIL. Every
sample ``i`` of a split is rendered from its own RNG, seeded by
``(seed, split index, i)``, so splits are deterministic and capping the number
of samples yields a prefix. Labels are ``i % len(CLASSNAMES)``.

Splits mirror the natural distribution shifts of the RoZ benchmark:
``train``/``test`` (photo-like renderings), ``v2`` (re-sampled, mildly shifted
distributions), ``sketch`` (line drawings), ``rendition`` (cartoon, pixel art,
painting, silhouette, embroidery), ``hard`` (candidates an independent
reference CNN misclassifies, listed in ``hard_split.json``), ``pose``
(unusual rotations, viewpoints and backgrounds) and the frame-sequence splits
``vid`` and ``ytbb`` (``FRAMES`` frames per sequence, anchor at ``FRAMES // 2``).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

IMAGE_SIZE: int = 64
CLASSNAMES: tuple[str, ...] = (
    "house", "tree", "car", "fish", "star", "cup", "key", "boat", "bird", "flower",
)
TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a photo of the {}.",
    "a drawing of a {}.",
    "a rendering of a {}.",
    "a {} in the picture.",
)
SPLITS: tuple[str, ...] = ("train", "test", "v2", "sketch", "rendition", "hard", "pose", "vid", "ytbb")
HARD_PER_CLASS: int = 40
SPLIT_SIZES: dict[str, int] = {
    "test": 1000, "v2": 1000, "sketch": 1000, "rendition": 1000,
    "hard": HARD_PER_CLASS * len(CLASSNAMES), "pose": 1000, "vid": 300, "ytbb": 300,
}
FRAMES: int = 9
RENDERER_VERSION: str = "1.0.0"
HARD_SPLIT_PATH: Path = Path(__file__).with_name("hard_split.json")
HARD_CANDIDATE_SPLIT: str = "hard-candidates"

_STREAMS = SPLITS + (HARD_CANDIDATE_SPLIT,)

_PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (205, 40, 40), "orange": (240, 135, 30), "yellow": (235, 205, 45),
    "green": (50, 160, 60), "blue": (40, 80, 205), "purple": (135, 60, 175),
    "pink": (235, 120, 175), "brown": (130, 80, 40), "black": (30, 30, 30),
    "white": (238, 238, 238), "grey": (128, 128, 128), "cyan": (40, 185, 205),
}
_COLOUR_NAMES = tuple(_PALETTE)
_TEXTURES = ("solid", "stripes", "dots", "gradient", "noise")
_TEXTURE_WORDS = {"solid": "plain", "stripes": "striped", "dots": "dotted", "gradient": "shaded", "noise": "speckled"}
_BACKGROUNDS = ("solid", "gradient", "noise", "scene")
_RENDITION_STYLES = ("cartoon", "pixel", "painting", "silhouette", "pattern")
_DISTRACTOR_WORDS = ("sale", "hello", "photo", "news", "free", "open", "love", "shop")
_CAPTION_TEMPLATES = (
    "a photo of a {c}.", "a {colour} {c}.", "a photo of a {colour} {c}.",
    "a {c} on a {bg} background.", "a {texture} {c}.", "a picture of a {colour} {c}.",
    "a {c} in the image.", "an image showing a {c}.", "a {texture} {colour} {c}.",
)


# --------------------------------------------------------------------------- shapes

def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 20) -> np.ndarray:
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], dtype=float)


def _poly(*points: tuple[float, float]) -> np.ndarray:
    return np.array(points, dtype=float)


def _band(centre: tuple[float, float], r_out: float, r_in: float, a0: float, a1: float, n: int = 14) -> np.ndarray:
    """Annular sector around `centre` (x, y) between angles a0..a1 (degrees) as one closed polygon."""
    cx, cy = centre
    t = np.radians(np.linspace(a0, a1, n))
    outer = np.stack([cx + r_out * np.cos(t), cy + r_out * np.sin(t)], axis=1)
    inner = np.stack([cx + r_in * np.cos(t[::-1]), cy + r_in * np.sin(t[::-1])], axis=1)
    return np.concatenate([outer, inner])


def _star(r_out: float = 0.95, r_in: float = 0.4) -> np.ndarray:
    t = np.radians(np.arange(10) * 36.0 - 90.0)
    r = np.where(np.arange(10) % 2 == 0, r_out, r_in)
    return np.stack([r * np.cos(t), r * np.sin(t) + 0.08], axis=1)


# Each class is a list of (role, polygon) in unit coordinates (x right, y down,
# roughly within [-1, 1]). Roles: "main" (object colour + texture), "accent"
# (secondary colour), "dark" (dark details).
_SHAPES: dict[str, tuple[tuple[str, np.ndarray], ...]] = {
    "house": (("main", _rect(-0.7, -0.1, 0.7, 0.9)), ("accent", _poly((-0.92, -0.1), (0.0, -0.9), (0.92, -0.1))),
              ("dark", _rect(-0.15, 0.4, 0.15, 0.9)), ("dark", _rect(0.3, 0.1, 0.55, 0.35))),
    "tree": (("main", _ellipse(0.0, -0.3, 0.72, 0.62)), ("dark", _rect(-0.13, 0.25, 0.13, 0.95))),
    "car": (("main", _rect(-0.95, 0.0, 0.95, 0.45)), ("main", _poly((-0.5, 0.02), (-0.3, -0.42), (0.35, -0.42), (0.58, 0.02))),
            ("accent", _poly((-0.35, -0.02), (-0.22, -0.32), (0.28, -0.32), (0.42, -0.02))),
            ("dark", _ellipse(-0.55, 0.5, 0.23, 0.23)), ("dark", _ellipse(0.55, 0.5, 0.23, 0.23))),
    "fish": (("main", _ellipse(-0.15, 0.0, 0.65, 0.4)), ("main", _poly((0.35, 0.0), (0.95, -0.45), (0.95, 0.45))),
             ("dark", _ellipse(-0.5, -0.1, 0.09, 0.09, 10))),
    "star": (("main", _star()),),
    "cup": (("main", _poly((-0.6, -0.6), (0.45, -0.6), (0.35, 0.7), (-0.5, 0.7))),
            ("main", _band((0.42, 0.0), 0.45, 0.22, -90, 90)), ("dark", _rect(-0.85, 0.7, 0.7, 0.85))),
    "key": (("main", _band((-0.55, 0.0), 0.42, 0.18, 0, 360, 22)), ("main", _rect(-0.16, -0.09, 0.95, 0.09)),
            ("main", _rect(0.55, 0.05, 0.67, 0.38)), ("main", _rect(0.78, 0.05, 0.9, 0.3))),
    "boat": (("main", _poly((-0.95, 0.35), (0.95, 0.35), (0.6, 0.8), (-0.6, 0.8))),
             ("dark", _rect(-0.05, -0.9, 0.05, 0.35)), ("accent", _poly((0.1, -0.85), (0.1, 0.25), (0.78, 0.25)))),
    "bird": (("main", _ellipse(0.0, 0.1, 0.55, 0.33)), ("main", _ellipse(0.52, -0.3, 0.25, 0.25)),
             ("main", _poly((-0.45, 0.05), (-0.95, -0.25), (-0.95, 0.25))),
             ("accent", _poly((0.72, -0.38), (1.0, -0.27), (0.72, -0.18))),
             ("accent", _poly((-0.3, 0.05), (0.25, 0.05), (-0.15, -0.55))), ("dark", _ellipse(0.56, -0.36, 0.06, 0.06, 8))),
    "flower": tuple(("main", _ellipse(0.32 * math.cos(a), -0.35 + 0.32 * math.sin(a), 0.22, 0.22, 12))
                    for a in np.linspace(0, 2 * np.pi, 6, endpoint=False))
    + (("accent", _ellipse(0.0, -0.35, 0.17, 0.17, 12)), ("dark", _rect(-0.05, -0.1, 0.05, 0.95)),
       ("dark", _ellipse(0.22, 0.5, 0.2, 0.08, 10))),
}


# --------------------------------------------------------------------------- scene description

@dataclass(frozen=True)
class _Scene:
    """Everything needed to draw one image; coordinates in IMAGE_SIZE pixels."""

    label: int
    cx: float
    cy: float
    scale: float  # half-size of the object in pixels
    angle: float  # degrees
    squash: float = 1.0  # vertical scale factor (viewpoint)
    shear: float = 0.0
    flip: bool = False
    colour: tuple[int, int, int] = (200, 40, 40)
    colour_name: str = "red"
    accent: tuple[int, int, int] = (240, 240, 240)
    texture: str = "solid"
    texture_colour: tuple[int, int, int] = (0, 0, 0)
    texture_period: float = 8.0
    texture_angle: float = 0.0
    background: str = "solid"
    bg_colours: tuple[tuple[int, int, int], tuple[int, int, int]] = ((235, 235, 235), (200, 200, 200))
    bg_name: str = "white"
    style: str = "photo"
    clutter: int = 0
    background_object: int = -1  # class index of a large faded object behind, -1 for none
    occluder: bool = False
    contrast: float = 1.0
    jitter: float = 0.0  # vertex jitter (unit coordinates) for hand-drawn styles
    noise_seed: int = 0
    brightness: float = 1.0
    blur: float = 0.0
    noise_std: float = 0.0
    jpeg: int = 0  # JPEG quality, 0 for none
    text: str = ""
    text_position: tuple[int, int] = (0, 0)
    text_size: int = 12
    text_colour: tuple[int, int, int] = (0, 0, 0)


def _jittered(rng: np.random.Generator, name: str, amount: float = 22.0) -> tuple[int, int, int]:
    base = np.array(_PALETTE[name], dtype=float)
    return tuple(int(v) for v in np.clip(base + rng.uniform(-amount, amount, 3), 0, 255))


def _distinct_colour(rng: np.random.Generator, avoid: tuple[int, int, int], min_dist: float = 110.0) -> tuple[str, tuple[int, int, int]]:
    """A palette colour at least ``min_dist`` (RGB distance) away from ``avoid``."""
    for _ in range(50):
        name = _COLOUR_NAMES[rng.integers(len(_COLOUR_NAMES))]
        colour = _jittered(rng, name)
        if sum((int(a) - int(b)) ** 2 for a, b in zip(colour, avoid)) >= min_dist ** 2:
            return name, colour
    return ("white", _PALETTE["white"]) if sum(avoid) < 380 else ("black", _PALETTE["black"])


def _light_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(205, 256, 3))


def _sample_photo(rng: np.random.Generator, label: int, *, scale: tuple[float, float] = (15.0, 27.0),
                  max_angle: float = 30.0, saturation: float = 1.0) -> _Scene:
    """The in-distribution (train/test) scene recipe."""
    colour_name = _COLOUR_NAMES[rng.integers(len(_COLOUR_NAMES))]
    colour = _jittered(rng, colour_name)
    if saturation != 1.0:
        grey = sum(colour) / 3.0
        colour = tuple(int(np.clip(grey + saturation * (c - grey), 0, 255)) for c in colour)
    s = rng.uniform(*scale)
    margin = s * 0.8
    background = _BACKGROUNDS[rng.integers(len(_BACKGROUNDS))]
    bg_name, bg0 = _distinct_colour(rng, colour)
    _, bg1 = _distinct_colour(rng, colour)
    if background == "noise":
        bg_name = "noisy"
    elif background == "scene":
        bg_name, bg0, bg1 = "outdoor", _jittered(rng, "cyan", 40), _jittered(rng, "green", 40)
    texture = _TEXTURES[rng.integers(len(_TEXTURES))]
    _, texture_colour = _distinct_colour(rng, colour, 70.0)
    _, accent = _distinct_colour(rng, colour, 90.0)
    return _Scene(
        label=label,
        cx=rng.uniform(margin, IMAGE_SIZE - margin), cy=rng.uniform(margin, IMAGE_SIZE - margin),
        scale=s, angle=rng.uniform(-max_angle, max_angle), flip=bool(rng.random() < 0.5),
        squash=rng.uniform(0.9, 1.1), colour=colour, colour_name=colour_name, accent=accent,
        texture=texture, texture_colour=texture_colour, texture_period=rng.uniform(5, 12),
        texture_angle=rng.uniform(0, 180), background=background, bg_colours=(bg0, bg1), bg_name=bg_name,
        clutter=int(rng.integers(0, 3)), noise_seed=int(rng.integers(2**31)),
        brightness=rng.uniform(0.9, 1.1),
    )


def _with_train_text(rng: np.random.Generator, scene: _Scene) -> _Scene:
    """Write a word on ~25% of training images, usually the class name (web captions)."""
    if rng.random() >= 0.25:
        return scene
    word = CLASSNAMES[scene.label] if rng.random() < 0.85 else _DISTRACTOR_WORDS[rng.integers(len(_DISTRACTOR_WORDS))]
    size = int(rng.integers(10, 17))
    x = int(rng.integers(0, max(1, IMAGE_SIZE - int(0.6 * size * len(word)))))
    y = int(rng.integers(0, IMAGE_SIZE - size))
    colour = (255, 255, 255) if rng.random() < 0.5 else (0, 0, 0)
    return dataclasses.replace(scene, text=word, text_position=(x, y), text_size=size, text_colour=colour)


def _sample_sketch(rng: np.random.Generator, label: int) -> _Scene:
    scene = _sample_photo(rng, label)
    ink = tuple(int(v) for v in rng.integers(0, 70, 3))
    return dataclasses.replace(scene, style="sketch", colour=ink, background="solid", clutter=0,
                               bg_colours=(_light_colour(rng), _light_colour(rng)), jitter=rng.uniform(0.0, 0.06),
                               noise_std=rng.uniform(0, 6))


def _sample_rendition(rng: np.random.Generator, label: int) -> _Scene:
    scene = _sample_photo(rng, label)
    style = _RENDITION_STYLES[rng.integers(len(_RENDITION_STYLES))]
    if style == "cartoon":
        return dataclasses.replace(scene, style=style, texture="solid", background="solid", clutter=0,
                                   bg_colours=(_light_colour(rng),) * 2)
    if style == "silhouette":
        ink = tuple(int(v) for v in rng.integers(0, 60, 3))
        return dataclasses.replace(scene, style=style, colour=ink, accent=ink, texture="solid", clutter=0,
                                   background="gradient", bg_colours=(_light_colour(rng), _jittered(rng, "orange", 30)))
    if style == "pattern":
        return dataclasses.replace(scene, style=style, texture="dots", texture_period=rng.uniform(3.0, 4.5),
                                   background="noise", jitter=0.03)
    return dataclasses.replace(scene, style=style)  # pixel, painting


def _sample_hard_candidate(rng: np.random.Generator, label: int) -> _Scene:
    """Harder but in-domain: small, cluttered, occluded, low contrast."""
    scene = _sample_photo(rng, label, scale=(10.0, 18.0), max_angle=45.0)
    return dataclasses.replace(scene, clutter=int(rng.integers(3, 8)), occluder=bool(rng.random() < 0.5),
                               contrast=rng.uniform(0.4, 0.8), background=("noise", "scene")[rng.integers(2)],
                               background_object=int(rng.integers(len(CLASSNAMES))) if rng.random() < 0.4 else -1,
                               noise_std=rng.uniform(0, 10))


def _sample_pose(rng: np.random.Generator, label: int) -> _Scene:
    scene = _sample_photo(rng, label)
    angle = float(rng.choice([90.0, 180.0, 270.0])) + rng.uniform(-25, 25)
    other = (label + 1 + int(rng.integers(len(CLASSNAMES) - 1))) % len(CLASSNAMES)
    return dataclasses.replace(scene, angle=angle, squash=rng.uniform(0.45, 0.8), shear=rng.uniform(-0.6, 0.6),
                               clutter=int(rng.integers(2, 6)),
                               background_object=other if rng.random() < 0.5 else -1)


def _sample_v2(rng: np.random.Generator, label: int) -> _Scene:
    scene = _sample_photo(rng, label, scale=(13.0, 25.0), max_angle=38.0, saturation=0.8)
    return dataclasses.replace(scene, brightness=rng.uniform(0.82, 1.12), noise_std=rng.uniform(0, 5))


def _sample_frames(rng: np.random.Generator, label: int, *, youtube: bool) -> list[_Scene]:
    """FRAMES consecutive frames of one object; the anchor is frame FRAMES // 2."""
    scale = (11.0, 19.0) if youtube else (15.0, 26.0)
    base = _sample_photo(rng, label, scale=scale)
    shake, jpeg = (2.0, (15, 35)) if youtube else (0.9, (45, 80))
    steps = rng.normal(0.0, 1.0, (FRAMES, 4)) * (shake, shake, 2.5 * shake, 0.03 * shake)
    offsets = np.cumsum(steps, axis=0)
    offsets -= offsets[FRAMES // 2]
    frames = []
    for t in range(FRAMES):
        dx, dy, da, ds = offsets[t]
        frames.append(dataclasses.replace(
            base, cx=base.cx + dx, cy=base.cy + dy, angle=base.angle + da, scale=base.scale * (1.0 + ds),
            brightness=base.brightness * rng.uniform(0.88, 1.12), blur=rng.uniform(0.0, 1.1 if youtube else 0.7),
            jpeg=int(rng.integers(*jpeg)), noise_std=rng.uniform(0, 6 if youtube else 3)))
    return frames


def _sample_scene(split: str, rng: np.random.Generator, label: int) -> _Scene:
    if split == "train":
        return _with_train_text(rng, _sample_photo(rng, label))
    if split == "test":
        return _sample_photo(rng, label)
    sampler = {"v2": _sample_v2, "sketch": _sample_sketch, "rendition": _sample_rendition,
               "pose": _sample_pose, HARD_CANDIDATE_SPLIT: _sample_hard_candidate}[split]
    return sampler(rng, label)


# --------------------------------------------------------------------------- drawing

@functools.lru_cache(maxsize=1)
def _grid() -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)
    return x, y


def _smooth_noise(rng: np.random.Generator, cells: int, channels: int = 3) -> np.ndarray:
    """Low-frequency noise in [0, 1], shape (IMAGE_SIZE, IMAGE_SIZE, channels) float32."""
    small = (rng.random((cells, cells, channels)) * 255).astype(np.uint8)
    img = Image.fromarray(small if channels == 3 else small[..., 0]).resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
    out = np.asarray(img, dtype=np.float32) / 255.0
    return out if channels == 3 else out[..., None]


def _two_tone(a: tuple[int, int, int], b: tuple[int, int, int], t: np.ndarray) -> np.ndarray:
    """Blend colours a -> b with weights t of shape (IMAGE_SIZE, IMAGE_SIZE, 1)."""
    a32 = np.asarray(a, np.float32)
    return a32 + (np.asarray(b, np.float32) - a32) * t


def _background(scene: _Scene, rng: np.random.Generator) -> np.ndarray:
    x, y = _grid()
    c0, c1 = scene.bg_colours
    if scene.background == "solid":
        return np.broadcast_to(np.asarray(c0, np.float32), (IMAGE_SIZE, IMAGE_SIZE, 3)).copy()
    if scene.background == "gradient":
        a = rng.uniform(0, 2 * np.pi)
        t = (np.cos(a) * (x - IMAGE_SIZE / 2) + np.sin(a) * (y - IMAGE_SIZE / 2)) / IMAGE_SIZE + 0.5
        return _two_tone(c0, c1, np.clip(t, 0, 1)[..., None])
    if scene.background == "noise":
        return _two_tone(c0, c1, _smooth_noise(rng, int(rng.integers(4, 12)), 1)) * 0.6 \
            + _smooth_noise(rng, 16) * 100.0
    horizon = rng.uniform(0.45, 0.8) * IMAGE_SIZE  # "scene": sky over ground
    t = (y > horizon + 3.0 * np.sin(x / rng.uniform(6, 20)))[..., None].astype(np.float32)
    return _two_tone(c0, c1, t) + (_smooth_noise(rng, 8, 1) - 0.5) * 40.0


def _texture(scene: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Object fill, shape (IMAGE_SIZE, IMAGE_SIZE, 3) float32 in [0, 255]."""
    x, y = _grid()
    a = np.radians(scene.texture_angle)
    u = (np.cos(a) * x + np.sin(a) * y)
    period = scene.texture_period
    if scene.texture == "stripes":
        t = (np.sin(2 * np.pi * u / period) > 0.2)[..., None]
    elif scene.texture == "dots":
        v = (-np.sin(a) * x + np.cos(a) * y)
        du, dv = (u % period) - period / 2, (v % period) - period / 2
        t = (du * du + dv * dv < (period * 0.3) ** 2)[..., None]
    elif scene.texture == "gradient":
        t = np.clip((u - u.min()) / (np.ptp(u) + 1e-6), 0, 1)[..., None]
    elif scene.texture == "noise":
        t = _smooth_noise(rng, 24, 1) * 0.8
    else:
        return np.broadcast_to(np.asarray(scene.colour, np.float32), (IMAGE_SIZE, IMAGE_SIZE, 3))
    return _two_tone(scene.colour, scene.texture_colour, t.astype(np.float32))


def _place(scene: _Scene, points: np.ndarray, rng: np.random.Generator | None = None) -> list[tuple[float, float]]:
    """Map unit-coordinate points to pixel coordinates."""
    p = points.copy()
    if scene.jitter and rng is not None:
        p += rng.normal(0.0, scene.jitter, p.shape)
    if scene.flip:
        p[:, 0] = -p[:, 0]
    p[:, 0] += scene.shear * p[:, 1]
    p[:, 1] *= scene.squash
    a = np.radians(scene.angle)
    cos, sin = np.cos(a), np.sin(a)  # elementwise, not a matrix product: BLAS kernels differ by CPU
    qx = (p[:, 0] * cos + p[:, 1] * -sin) * scene.scale + scene.cx
    qy = (p[:, 0] * sin + p[:, 1] * cos) * scene.scale + scene.cy
    return list(zip(qx.tolist(), qy.tolist()))


def _draw_object(canvas: np.ndarray, scene: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Draw the scene's object onto a float (IMAGE_SIZE, IMAGE_SIZE, 3) canvas, in its style."""
    parts = _SHAPES[CLASSNAMES[scene.label]]
    if scene.style == "sketch":
        img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        width = int(rng.integers(1, 3))
        for _, poly in parts:
            pts = _place(scene, poly, rng)
            draw.line(pts + pts[:1], fill=scene.colour, width=width, joint="curve")
        return np.asarray(img, np.float32)
    mask_img = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    mask_draw = ImageDraw.Draw(mask_img)
    for role, poly in parts:
        if role == "main":
            mask_draw.polygon(_place(scene, poly, rng), fill=255)
    mask = (np.asarray(mask_img, np.float32) / 255.0)[..., None]
    fill = _texture(scene, rng)
    if scene.contrast != 1.0:
        fill = canvas.mean(axis=(0, 1)) + scene.contrast * (fill - canvas.mean(axis=(0, 1)))
    img = Image.fromarray(np.clip(canvas * (1 - mask) + fill * mask, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    outline = (0, 0, 0) if scene.style in ("cartoon", "pattern") else None
    width = 3 if scene.style == "cartoon" else 1
    dark = scene.colour if scene.style == "silhouette" else (25, 25, 25)
    for role, poly in parts:
        pts = _place(scene, poly, rng)
        if role != "main":
            colour = dark if role == "dark" else scene.accent
            draw.polygon(pts, fill=_faded(colour, canvas, scene.contrast))
        if outline is not None:
            draw.line(pts + pts[:1], fill=outline, width=width, joint="curve")
    return np.asarray(img, np.float32)


def _faded(colour: tuple[int, int, int], canvas: np.ndarray, contrast: float) -> tuple[int, int, int]:
    if contrast == 1.0:
        return colour
    mean = canvas.mean(axis=(0, 1))
    return tuple(int(np.clip(m + contrast * (c - m), 0, 255)) for c, m in zip(colour, mean))


def _draw_clutter(canvas: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Random small distracting polygons (triangles, boxes, blobs)."""
    if count == 0:
        return canvas
    img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(count):
        cx, cy = rng.uniform(0, IMAGE_SIZE, 2)
        r = rng.uniform(3, 10)
        k = int(rng.integers(3, 7))
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        pts = [(cx + r * np.cos(t), cy + r * np.sin(t)) for t in ang]
        draw.polygon(pts, fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return np.asarray(img, np.float32)


def _draw_occluder(canvas: np.ndarray, scene: _Scene, rng: np.random.Generator) -> np.ndarray:
    img = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    side = rng.uniform(0.7, 1.1) * scene.scale
    cx = scene.cx + rng.choice([-1, 1]) * scene.scale * rng.uniform(0.6, 1.0)
    cy = scene.cy + rng.uniform(-0.5, 0.5) * scene.scale
    ImageDraw.Draw(img).rectangle([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2],
                                  fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return np.asarray(img, np.float32)


def _draw_background_object(canvas: np.ndarray, scene: _Scene, rng: np.random.Generator) -> np.ndarray:
    """A large, faded object of another class behind the main one."""
    ghost = dataclasses.replace(
        scene, label=scene.background_object, cx=rng.uniform(16, 48), cy=rng.uniform(16, 48),
        scale=rng.uniform(24, 34), angle=rng.uniform(-30, 30), squash=1.0, shear=0.0,
        contrast=0.45, texture="solid", colour=_jittered(rng, _COLOUR_NAMES[rng.integers(len(_COLOUR_NAMES))]))
    return _draw_object(canvas, ghost, rng)


def _stylise(img: np.ndarray, scene: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Style-level post-processing at IMAGE_SIZE resolution (uint8 in, uint8 out)."""
    if scene.style == "pixel":
        cells = int(rng.integers(10, 17))
        small = Image.fromarray(img).resize((cells, cells), Image.BOX)
        return np.asarray(small.quantize(int(rng.integers(6, 16))).convert("RGB").resize(
            (IMAGE_SIZE, IMAGE_SIZE), Image.NEAREST))
    if scene.style == "painting":
        base = Image.fromarray(img).filter(ImageFilter.ModeFilter(3)).filter(ImageFilter.GaussianBlur(1.0))
        strokes = np.asarray(Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).resize(
            (IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC), np.float32) - 127.5
        return np.clip(np.asarray(base, np.float32) + 0.25 * strokes, 0, 255).astype(np.uint8)
    return img


def _degrade(img: np.ndarray, scene: _Scene, rng: np.random.Generator) -> np.ndarray:
    """Photometric/camera effects at IMAGE_SIZE: brightness, blur, noise, JPEG."""
    out = img
    if scene.blur > 0.05:
        out = np.asarray(Image.fromarray(out).filter(ImageFilter.GaussianBlur(scene.blur)))
    if scene.brightness != 1.0 or scene.noise_std > 0:
        f = out.astype(np.float32) * scene.brightness
        if scene.noise_std > 0:
            f += rng.normal(0.0, scene.noise_std, f.shape)
        out = np.clip(f, 0, 255).astype(np.uint8)
    if scene.jpeg:
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=scene.jpeg)
        out = np.asarray(Image.open(buf).convert("RGB"))
    return out


def _draw_scene(scene: _Scene) -> np.ndarray:
    """Render a scene to a uint8 (IMAGE_SIZE, IMAGE_SIZE, 3) array."""
    rng = np.random.default_rng(scene.noise_seed)
    canvas = _background(scene, rng)
    if scene.background_object >= 0:
        canvas = _draw_background_object(canvas, scene, rng)
    canvas = _draw_clutter(canvas, scene.clutter, rng)
    canvas = _draw_object(canvas, scene, rng)
    if scene.occluder:
        canvas = _draw_occluder(canvas, scene, rng)
    img = _stylise(np.clip(canvas, 0, 255).astype(np.uint8), scene, rng)
    img = _degrade(img, scene, rng)
    if scene.text:
        img = draw_text(img, scene.text, position=scene.text_position, size=scene.text_size, color=scene.text_colour)
    return img


# --------------------------------------------------------------------------- public API

@dataclass(frozen=True)
class RenderedSplit:
    """A rendered split.

    ``images``: uint8, (N, IMAGE_SIZE, IMAGE_SIZE, 3) for still splits or
    (N, FRAMES, IMAGE_SIZE, IMAGE_SIZE, 3) for "vid"/"ytbb" (anchor frame at
    FRAMES // 2). ``labels``: int64 (N,), indices into CLASSNAMES.
    """

    images: np.ndarray
    labels: np.ndarray
    split: str
    seed: int


@functools.lru_cache(maxsize=None)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def draw_text(image: np.ndarray, text: str, *, position: tuple[int, int], size: int,
              color: tuple[int, int, int]) -> np.ndarray:
    """Write ``text`` onto a uint8 (H, W, 3) image; returns a new uint8 array.

    ``position`` is the (x, y) pixel of the text's top-left corner, ``size``
    the font size in pixels (Pillow's built-in font), ``color`` RGB 0-255.
    """
    img = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    ImageDraw.Draw(img).text(position, text, fill=tuple(int(c) for c in color), font=_font(int(size)))
    return np.asarray(img).copy()


def _rng(seed: int, stream: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _STREAMS.index(stream), index])


def _scene(stream: str, seed: int, index: int) -> _Scene:
    """Scene of sample ``index`` of a still stream (a split or the hard candidate pool)."""
    return _sample_scene(stream, _rng(seed, stream, index), index % len(CLASSNAMES))


def render_candidates(indices: np.ndarray | list[int], seed: int = 0) -> RenderedSplit:
    """Render hard-split candidates (from the harder generator) by pool index.

    Labels are ``index % len(CLASSNAMES)``; used by the training script to
    build ``hard_split.json`` and by ``render_split("hard")``.
    """
    idx = [int(i) for i in indices]
    images = np.stack([_draw_scene(_scene(HARD_CANDIDATE_SPLIT, seed, i)) for i in idx]) if idx \
        else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    return RenderedSplit(images, np.array([i % len(CLASSNAMES) for i in idx], np.int64), HARD_CANDIDATE_SPLIT, seed)


def load_hard_indices() -> tuple[int, list[int]]:
    """(seed, candidate indices) of the committed hard split; checks the renderer version."""
    record = json.loads(HARD_SPLIT_PATH.read_text())
    if record["renderer_version"] != RENDERER_VERSION:
        raise RuntimeError(f"hard_split.json was built with renderer {record['renderer_version']}, "
                           f"current is {RENDERER_VERSION}; rerun python -m tools.train_embedded")
    return int(record["seed"]), [int(i) for i in record["indices"]]


def _split_size(split: str, n: int | None) -> int:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if n is None:
        if split == "train":
            raise ValueError("render_split('train') needs an explicit n")
        return SPLIT_SIZES[split]
    if n < 0:
        raise ValueError("n must be >= 0")
    return min(n, SPLIT_SIZES[split]) if split != "train" else n


def render_split(split: str, n: int | None = None, seed: int = 0) -> RenderedSplit:
    """Render the first ``n`` samples (default: SPLIT_SIZES[split]) of a split.

    Deterministic in (split, seed); sample i does not depend on n. Labels are
    balanced (i % len(CLASSNAMES)). "hard" is only defined for the seed stored
    in hard_split.json.
    """
    count = _split_size(split, n)
    if split == "hard":
        hard_seed, indices = load_hard_indices()
        if seed != hard_seed:
            raise ValueError(f"the hard split is defined for seed {hard_seed} only")
        out = render_candidates(indices[:count], seed)
        return RenderedSplit(out.images, out.labels, split, seed)
    labels = np.arange(count, dtype=np.int64) % len(CLASSNAMES)
    if split in ("vid", "ytbb"):
        shape = (count, FRAMES, IMAGE_SIZE, IMAGE_SIZE, 3)
        seqs = [np.stack([_draw_scene(f) for f in _sample_frames(_rng(seed, split, i), int(labels[i]),
                                                                  youtube=split == "ytbb")]) for i in range(count)]
    else:
        shape = (count, IMAGE_SIZE, IMAGE_SIZE, 3)
        seqs = [_draw_scene(_scene(split, seed, i)) for i in range(count)]
    images = np.stack(seqs) if seqs else np.zeros(shape, np.uint8)
    return RenderedSplit(images, labels, split, seed)


def train_captions(n: int, seed: int = 0) -> tuple[str, ...]:
    """Captions for the first ``n`` samples of render_split("train", n, seed).

    Each caption names the sample's class, sometimes with its colour, texture
    or background, from a set of templates related to (not identical with)
    TEMPLATES.
    """
    captions = []
    for i in range(n):
        scene = _scene("train", seed, i)
        pick = np.random.default_rng([seed, len(_STREAMS), i]).integers(len(_CAPTION_TEMPLATES))
        captions.append(_CAPTION_TEMPLATES[pick].format(
            c=CLASSNAMES[scene.label], colour=scene.colour_name, bg=scene.bg_name,
            texture=_TEXTURE_WORDS[scene.texture]))
    return tuple(captions)
