"""A training-free near-duplicate embedding, and the search that matches evaluation images against a corpus.

No model weights are involved (the evaluated model's own embedding would judge its own data; the CLIP paper uses a
dedicated near-duplicate detector, and there are no pretrained weights here). The descriptor of a square region
of an image:

1. the image is reduced to WORK x WORK pixels (antialiased), in YCbCr;
2. the region is resampled bilinearly to SIZE x SIZE and transformed with an orthonormal 2-D DCT-II;
3. kept are the K x K lowest frequencies of luma and the K/2 x K/2 lowest of each chroma channel, without the
   three DC terms (a brightness or colour-cast change moves nothing); in the fine descriptor each coefficient
   (u, v) is weighted by (u + v) ** FINE_EXPONENT, so that the object counts against the smooth background
   gradients that dominate the lowest frequencies; L2-normalized, similarity is the cosine.

Low frequencies survive resizing and JPEG recompression. Crops are handled by searching over square crop boxes
(x, y, scale) of the evaluation image, in two stages:

1. coarse: a grid of boxes (GRID_SCALES x GRID_POSITIONS^2) of every evaluation image, described with the coarse
   descriptor (K = COARSE_K), against each corpus image's whole-image coarse descriptor; the CANDIDATES most similar
   corpus images per evaluation image are kept;
2. refine: for each candidate whose coarse similarity reaches FLOOR, a pattern search over the box on the coarse
   descriptor from its STARTS best grid boxes; a candidate whose best box then reaches GATE is searched further
   from that box on the fine descriptor (K = FINE_K).

An evaluation image's score is the best fine similarity over its candidates, its match the corpus image that gave
it. Non-square corpus images are described twice, whole (squashed) and as their central square, so that an
evaluation image center-cropped from a corpus photo (the ImageNet protocol) still matches it.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator

import numpy as np
from PIL import Image

WORK = 32
SIZE = 32
FINE_K, COARSE_K = 12, 6
FINE_EXPONENT = 0.5
GRID_SCALES, GRID_POSITIONS = (1.0, 0.9, 0.8, 0.7), 3
MIN_SCALE = 0.5
CANDIDATES, STARTS, FLOOR, GATE = 2, 3, 0.8, 0.95
COARSE_STEPS, FINE_STEPS = (0.04, 0.01), (0.01, 0.0025)  # (first step, last step) of each search phase
BLOCK_BYTES = 64 << 20  # working-set cap of one similarity block


def working_image(image: Image.Image | np.ndarray) -> np.ndarray:
    """float32 (3, WORK, WORK): the image reduced (antialiased) to WORK x WORK, in YCbCr."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    image = image.convert("RGB").resize((WORK, WORK), Image.BILINEAR).convert("YCbCr")
    return np.asarray(image, dtype=np.float32).transpose(2, 0, 1).copy()


def center_square(image: Image.Image) -> Image.Image | None:
    """The central square of a non-square image, None for a square one."""
    width, height = image.size
    if width == height:
        return None
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))


def _dct_basis(k: int) -> np.ndarray:
    """Orthonormal DCT-II rows 0..k-1 over SIZE samples: (k, SIZE)."""
    n = np.arange(SIZE)
    basis = np.cos(np.pi * (n[None, :] + 0.5) * np.arange(k)[:, None] / SIZE) * np.sqrt(2.0 / SIZE)
    basis[0] /= np.sqrt(2.0)
    return basis


_BASIS = _dct_basis(FINE_K)


def _axis_operator(start: np.ndarray, scale: np.ndarray, k: int) -> np.ndarray:
    """(B, k, WORK): DCT rows applied to bilinear samples of [start, start + scale] (fractions of the side)."""
    centres = (start[:, None] + scale[:, None] * (np.arange(SIZE) + 0.5) / SIZE) * WORK - 0.5
    centres = np.clip(centres, 0, WORK - 1)
    low = np.minimum(np.floor(centres).astype(int), WORK - 2)
    frac = (centres - low).astype(np.float32)
    weights = np.zeros((len(start), SIZE, WORK), np.float32)
    rows = np.arange(SIZE)[None, :]
    batch = np.arange(len(start))[:, None]
    weights[batch, rows, low] = 1 - frac
    weights[batch, rows, low + 1] += frac
    return np.matmul(_BASIS[:k].astype(np.float32), weights)


def _coefficients(images: np.ndarray, boxes: np.ndarray, k: int) -> np.ndarray:
    """(B, 3, k, k) DCT coefficients of box b = (x, y, scale) of working image b; images (B, 3, WORK, WORK)."""
    rows = _axis_operator(boxes[:, 1], boxes[:, 2], k)
    cols = _axis_operator(boxes[:, 0], boxes[:, 2], k)
    return np.matmul(np.matmul(rows[:, None], images), cols[:, None].transpose(0, 1, 3, 2))


def _frequency_weights(k: int, exponent: float) -> np.ndarray:
    """(k*k - 1,): (u + v) ** exponent per DCT coefficient (u, v), DC left out."""
    return (np.add.outer(np.arange(k), np.arange(k)).astype(np.float32) ** exponent).ravel()[1:]


def _describe(coefficients: np.ndarray, k: int) -> np.ndarray:
    """(B, D) normalized descriptors from (B, 3, >=k, >=k) coefficients; the fine descriptor (k = FINE_K) weighs
    its coefficients by frequency (FINE_EXPONENT), the coarse one does not."""
    exponent = FINE_EXPONENT if k == FINE_K else 0.0
    parts = []
    for channel, cut in ((0, k), (1, k // 2), (2, k // 2)):
        flat = coefficients[:, channel, :cut, :cut].reshape(len(coefficients), -1)[:, 1:]
        parts.append(flat * _frequency_weights(cut, exponent))
    vectors = np.concatenate(parts, axis=1)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)


def describe(images: np.ndarray, which: np.ndarray, boxes: np.ndarray, k: int, chunk: int = 2048) -> np.ndarray:
    """Descriptors (B, D) at frequency cut `k` of box b of working image `images[which[b]]`."""
    return np.concatenate([_describe(_coefficients(images[which[i:i + chunk]], boxes[i:i + chunk], k), k)
                           for i in range(0, len(boxes), chunk)])


def grid_boxes() -> np.ndarray:
    """(G, 3) crop boxes (x, y, scale): the whole image, then GRID_POSITIONS^2 positions per smaller scale."""
    boxes = [(0.0, 0.0, 1.0)]
    for scale in GRID_SCALES[1:]:
        offsets = np.linspace(0.0, 1.0 - scale, GRID_POSITIONS)
        boxes += [(x, y, scale) for y in offsets for x in offsets]
    return np.array(boxes, np.float32)


WHOLE = np.array([[0.0, 0.0, 1.0]], np.float32)


@dataclasses.dataclass
class CorpusIndex:
    """Whole-image descriptors of corpus images; row r describes image `owner[r]` (an image may have two rows)."""

    coarse: np.ndarray
    fine: np.ndarray
    owner: np.ndarray

    @classmethod
    def build(cls, working: Iterable[tuple[int, np.ndarray]], chunk: int = 2048) -> "CorpusIndex":
        """From (image number, working image) pairs, in any number, read in chunks."""
        coarse, fine, owner = [], [], []
        for batch in _chunks(working, chunk):
            images = np.stack([w for _, w in batch])
            coefficients = _coefficients(images, np.repeat(WHOLE, len(images), axis=0), FINE_K)
            coarse.append(_describe(coefficients, COARSE_K))
            fine.append(_describe(coefficients, FINE_K))
            owner.append(np.array([number for number, _ in batch], np.int64))
        if not owner:
            raise ValueError("the corpus holds no readable image")
        return cls(np.concatenate(coarse), np.concatenate(fine), np.concatenate(owner))


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _top_candidates(grid: np.ndarray, corpus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per evaluation image, the CANDIDATES corpus rows of highest coarse similarity (max over its grid boxes):
    (values, rows), each (N, CANDIDATES), in no particular order; grid (N, G, D), corpus (M, D)."""
    n, g, d = grid.shape
    take = min(CANDIDATES, len(corpus))
    values = np.full((n, take), -np.inf, np.float32)
    rows = np.zeros((n, take), np.int64)
    step_e = max(1, min(n, BLOCK_BYTES // (4 * g * 1024)))
    step_c = max(1, BLOCK_BYTES // (4 * g * step_e))
    for e in range(0, n, step_e):
        block_grid = grid[e:e + step_e]
        for c in range(0, len(corpus), step_c):
            sims = (block_grid.reshape(-1, d) @ corpus[c:c + step_c].T).reshape(len(block_grid), g, -1).max(axis=1)
            merged_values = np.concatenate([values[e:e + step_e], sims], axis=1)
            merged_rows = np.concatenate([rows[e:e + step_e], np.broadcast_to(
                np.arange(c, c + sims.shape[1]), sims.shape)], axis=1)
            keep = np.argpartition(-merged_values, take - 1, axis=1)[:, :take]
            values[e:e + step_e] = np.take_along_axis(merged_values, keep, axis=1)
            rows[e:e + step_e] = np.take_along_axis(merged_rows, keep, axis=1)
    return values, rows


def _search(images: np.ndarray, which: np.ndarray, boxes: np.ndarray, targets: np.ndarray, k: int,
            steps: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Pattern search of each state's box over working image `images[which[s]]`, maximizing similarity to its
    target; boxes (S, 3), targets (S, D). Returns (best similarity (S,), best box (S, 3))."""
    boxes = boxes.astype(np.float32).copy()
    best = np.einsum("sd,sd->s", describe(images, which, boxes, k), targets)
    step = np.full(len(boxes), steps[0], np.float32)
    moves = np.array([(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1),
                      (-0.5, -0.5, 1), (0.5, 0.5, -1)], np.float32)
    active = np.arange(len(boxes))
    while active.size:
        trial = boxes[active, None, :] + step[active, None, None] * moves[None]
        trial[..., 2] = np.clip(trial[..., 2], MIN_SCALE, 1.0)
        trial[..., :2] = np.clip(trial[..., :2], 0.0, 1.0 - trial[..., 2:3])
        flat = trial.reshape(-1, 3)
        owners = np.repeat(active, len(moves))
        sims = np.einsum("sd,sd->s", describe(images, which[owners], flat, k), targets[owners])
        sims = sims.reshape(len(active), -1)
        pick = sims.argmax(axis=1)
        gain = sims[np.arange(len(active)), pick] > best[active] + 1e-7
        improved = active[gain]
        best[improved] = sims[gain, pick[gain]]
        boxes[improved] = trial[gain, pick[gain]]
        step[active[~gain]] /= 2
        active = active[step[active] >= steps[1] - 1e-9]
    return best, boxes


@dataclasses.dataclass(frozen=True)
class Matches:
    """Per evaluation image: `score` (best fine similarity, -1 when no candidate passed FLOOR and GATE) and
    `image` (the corpus image number that gave it, -1 when none)."""

    score: np.ndarray
    image: np.ndarray


def match(evaluation: np.ndarray, corpus: CorpusIndex) -> Matches:
    """Best corpus match of each evaluation working image (N, 3, WORK, WORK)."""
    n = len(evaluation)
    grid = grid_boxes()
    grid_descriptors = describe(evaluation, np.repeat(np.arange(n), len(grid)), np.tile(grid, (n, 1)), COARSE_K)
    grid_descriptors = grid_descriptors.reshape(n, len(grid), -1)
    values, rows = _top_candidates(grid_descriptors, corpus.coarse)
    pair_eval, pair_slot = np.nonzero(values >= FLOOR)
    pair_row = rows[pair_eval, pair_slot]
    score, image = np.full(n, -1.0, np.float32), np.full(n, -1, np.int64)
    if not pair_eval.size:
        return Matches(score, image)
    per_box = np.einsum("pgd,pd->pg", grid_descriptors[pair_eval], corpus.coarse[pair_row])
    starts = np.argsort(-per_box, axis=1)[:, :min(STARTS, len(grid))]
    state_pair = np.repeat(np.arange(len(pair_eval)), starts.shape[1])
    coarse, boxes = _search(evaluation, pair_eval[state_pair], grid[starts.ravel()],
                            corpus.coarse[pair_row[state_pair]], COARSE_K, COARSE_STEPS)
    coarse, boxes = coarse.reshape(len(pair_eval), -1), boxes.reshape(len(pair_eval), -1, 3)
    best_start = coarse.argmax(axis=1)
    survivors = np.nonzero(coarse[np.arange(len(pair_eval)), best_start] >= GATE)[0]
    if not survivors.size:
        return Matches(score, image)
    similarity, _ = _search(evaluation, pair_eval[survivors], boxes[survivors, best_start[survivors]],
                            corpus.fine[pair_row[survivors]], FINE_K, FINE_STEPS)
    for i in np.argsort(similarity, kind="stable"):
        score[pair_eval[survivors[i]]] = similarity[i]
        image[pair_eval[survivors[i]]] = corpus.owner[pair_row[survivors[i]]]
    return Matches(score, image)
