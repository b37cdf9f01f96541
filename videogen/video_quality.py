"""Judge a generated video against the real clip it was learned from, with distribution measures that need no
downloaded weights (pure numpy and OpenCV; the measurements themselves live in :mod:`videogen.measures`).

Reads uint8 frame arrays ``(T, S, S, 3)`` (RGB): the generated video, the training frames of the clip, its held-out
(validation) frames and optionally the whole source clip. Computes, per window of ``window`` generated frames
(default 100), ratios against the real footage, so that 1 means "like the real clip":

- **motion**: mean optical-flow magnitude (Farneback) between consecutive generated frames, over the same mean for
  consecutive source frames. 0 = frozen.
- **coherence**: the temporal warping error (frame t+1 warped back onto frame t along the flow between them) over the
  source's. Two-sided: a frozen video sits near 0; flicker, boiling noise and things appearing from nowhere are high.
- **realism**: mean distance of small (7x7) patches of generated frames to their nearest patch in a seeded bank of
  training-frame patches, over the same mean for patches of the held-out real frames. 1 = as close to the clip's look
  as real frames the model never saw; above 1 = farther (mush, blotches, artefacts).
- **spacetime**: the bidirectional similarity of space-time patches (7x7 pixels over 3 consecutive frames, compared
  as the middle frame plus 3x the frame-to-frame changes, so that how a patch moves counts as much as how it looks):
  the mean distance of the window's patches to their nearest training patch plus the mean of the farthest tenth of
  the distances of training patches (half where the clip moves) to their nearest patch in the window, over the same
  sum for held-out frames and real windows. Motion that real footage does not have (smears, morphing, flicker) is
  far one way, a video that lost the clip's motion (frozen, faded) the other way.
- **coarse**: the same for patches of a third of the frame (8x8 patches of the frame area-averaged to 24 px, one
  frame): the layout and the objects, not the texture. Objects that split into fragments or melt into the background
  are far one way, a scene that lost its objects the other way.
- **completeness**: how much of the clip's variety a window holds: the mean of the farthest tenth of the distances
  from a fixed sample of training patches (half of them where the clip moves) to their nearest patch among the
  window's, over the same for real windows of the training frames (queries from outside the window). A scene that
  empties, loses its moving objects or collapses to one texture is high.
- **copying**: the share of the window's patches closer to a training patch (searched among every patch of the
  training frames) than all but 1% of held-out real patches are. Real footage sits near 0.01; pasted training
  patches or frames are high.
- **sharpness**: mean variance of the Laplacian of grayscale frames, over the source frames' mean.
- **contrast**: mean per-frame standard deviation of the pixel values, over the source frames' mean.
- **replay**: share of generated frames within ``replay_psnr_db`` (30 dB) PSNR of some source frame.
- **drift**: each per-window curve in the last window over the same in the reference window (the second window,
  frames ``[window, 2*window)``; the first window still starts from a real frame).

None of these is what steering (:mod:`videogen.steering`) drives toward a target except motion, sharpness and
realism; the other measures, the copying check that makes realism two-sided, and the null controls of the evaluate
stage are what tell a model's own work from the steering's. Realism, spacetime, coarse and completeness follow the
space-time patch nearest-neighbour measures of VGPNN (Haim et al., "Diverse Generation from a Single Video Made
Possible", ECCV 2022) and bidirectional similarity (Simakov et al., "Summarizing Visual Data Using Bidirectional
Similarity", CVPR 2008: coherence = every output patch is near an input patch, completeness = every input patch is
near an output patch).

:func:`verdict` turns these into pass/fail checks with the thresholds of :class:`Thresholds`; :func:`judge` does
both. :func:`baseline_videos` makes two reference "generators" to score the same way (copy-last-frame and a Video
Textures replay), and :func:`diversity` compares several videos generated from one start frame.

Windows: window ``k`` holds frames ``[k*window, (k+1)*window)``; there are ``max(1, T // window)`` windows and the
last one also takes the remainder (``T = 250`` with ``window = 100`` gives ``[0,100), [100,250)``). A window's motion
uses the frame pairs ``(t-1, t)`` for every ``t >= 1`` in it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from videogen import measures
from videogen.measures import FARNEBACK, nearest_rms, sample_patches

__all__ = ["FARNEBACK", "CHECKS", "PatchSettings", "Reference", "THRESHOLDS", "Thresholds", "baseline_videos",
           "combine_verdicts", "copy_last_frame", "diversity", "judge", "placement", "reference", "sample_patches",
           "score_video", "verdict", "verdict_line", "video_textures", "window_bounds"]

# Bytes of float32 frames converted at a time in the frame-to-frame distances (replay, Video Textures).
_BLOCK_BYTES = 64 << 20


@dataclass(frozen=True)
class Thresholds:
    """The project's pass criteria for a generated video; every ratio is against the real clip (1 = like it).

    The bounds of the measures that real footage sets (coherence, spacetime, coarse, completeness, copying, contrast)
    were calibrated on held-out windows of three real clips (``bench/quality/calibrate_judge.py``; docs/quality.md
    has the table): each sits beyond the worst real window by a margin."""

    # Motion below half the clip's in some window: the video has (nearly) stopped moving - "frozen".
    motion_min: float = 0.5
    # Motion above twice the clip's in some window: frames change far more than the clip ever does - boiling noise,
    # flicker or cuts every frame ("jitter").
    motion_max: float = 2.0
    # Realism above 1.5 in the last window: its patches are half again farther from the clip's patches than real
    # unseen frames are - the video has dissolved into "mush" (blur, blotches, texture soup).
    realism_max: float = 1.5
    # Warping error under 0.3 of the clip's in some window: nothing moves in a way the flow can follow - "still" (a
    # frozen video, or one whose only change is a fade). Real windows: 0.63-1.97.
    coherence_min: float = 0.3
    # Warping error above 2.4 times the clip's in some window: frames do not follow from each other - "flicker"
    # (boiling noise 2.5-7.9, shuffled frames 1.6-12).
    coherence_max: float = 2.4
    # Space-time realism above 1.25 in some window - "unreal motion": the bidirectional distance of space-time
    # patches (every generated patch to the clip's, plus the farthest of the clip's to the window's) over the real
    # clip's (real windows 0.87-1.12; boiling noise 1.31-1.80, shuffled frames 1.22-1.51, patch quilts 1.79-4.7).
    spacetime_max: float = 1.25
    # Coarse realism (the same for patches of a third of the frame) above 1.6 in some window - "layout": objects
    # split, melt or leave the frame's composition (real windows 0.94-1.52, the highest where a clip's end brings a
    # pose its training frames never show; patch quilts 1.31-2.48).
    coarse_max: float = 1.6
    # The farthest tenth of the clip's patches (half of them where it moves) farther from a window's patches than 1.3
    # times from real windows' in some window - "incomplete": the scene emptied, its moving objects vanished or it
    # collapsed to a few textures (real windows 0.93-1.17; discs that vanish from a still background 1.5).
    completeness_max: float = 1.3
    # More than 6% of a window's patches closer to a training patch than 99% of held-out real patches are -
    # "pasted" (real windows: 0-3%; a quilt of 8x8 training patches 7-9%, replayed training frames 91-100%).
    copying_max: float = 0.06
    # Contrast under 0.8 or above 1.25 times the clip's in some window: "faded" (washed out, greyed) or "garish"
    # (real windows 0.97-1.16).
    contrast_min: float = 0.8
    contrast_max: float = 1.25
    # Sharpness below 0.6 of the clip's Laplacian variance in some window: detail is gone - "blur".
    sharpness_min: float = 0.6
    # Sharpness above twice the clip's in some window: high-frequency energy the clip never has - "noise".
    sharpness_max: float = 2.0
    # Realism in the last window above 1.3 times that of the reference window: the video degrades as it runs, even if
    # it has not yet reached "mush" - "drift".
    drift_max: float = 1.3
    # More than half the frames within replay_psnr_db of a source frame: the model replays the clip rather than
    # generating new frames - "replay".
    replay_max: float = 0.5
    # PSNR (dB) above which a generated frame counts as a copy of a source frame. 30 dB is RMS error 8/255: at that
    # level two frames differ only by faint compression-like noise.
    replay_psnr_db: float = 30.0


THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class PatchSettings:
    """How the patch measures sample (all draws come from the ``seed`` of :func:`score_video`)."""

    # Side of the square patches (RGB, so 7x7x3 = 147 values at the default) of realism, copying, completeness and
    # (over ``depth`` frames) spacetime.
    patch: int = 7
    # Training-frame patches in the bank that every realism query is matched against (the same bank for generated and
    # held-out queries).
    bank_size: int = 8192
    # Query patches drawn from every frame, generated and held-out alike, so both means weigh frames equally.
    patches_per_frame: int = 16
    # Space-time patches: frames per patch, bank size and queries per frame.
    depth: int = 3
    spacetime_bank: int = 4096
    spacetime_per_frame: int = 4
    # Weight of the frame-to-frame differences in a space-time patch (see _motion_weighted).
    motion_weight: float = 3.0
    # Coarse patches: the frame area-averaged to coarse_side px, patches of coarse_patch px (a third of the frame).
    coarse_side: int = 24
    coarse_patch: int = 8
    coarse_bank: int = 4096
    coarse_per_frame: int = 8
    # Completeness: training patches sought in every window, patches drawn from the window as the bank, and real
    # windows (of the training frames) it is compared with.
    completeness_queries: int = 512
    completeness_bank: int = 3200
    completeness_windows: int = 6
    # Completeness reports the mean of the queries' distances above this percentile (the farthest tenth), so that a
    # rare thing that went missing (a few moving objects on a large still background) shows.
    completeness_percentile: float = 90.0
    # Copying: queries per frame, matched against every patch of up to copy_frames training frames (evenly spaced;
    # on a grid of one pixel per 64 px of frame side); held-out patch distances under copy_percentile count as copies.
    copy_per_frame: int = 8
    copy_frames: int = 96
    copy_percentile: float = 1.0


# ---------------------------------------------------------------------------------------------------------- helpers


def _check_frames(name: str, frames: np.ndarray, min_frames: int = 1) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"{name} must be a uint8 array (T, S, S, 3), got {frames.dtype} {frames.shape}")
    if len(frames) < min_frames:
        raise ValueError(f"{name} has {len(frames)} frame(s); at least {min_frames} are needed")
    return frames


def window_bounds(num_frames: int, window: int = 100) -> list[tuple[int, int]]:
    """Half-open frame ranges of the windows: ``max(1, num_frames // window)`` of them, the last taking the rest."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    count = max(1, num_frames // window)
    return [(k * window, (k + 1) * window if k < count - 1 else num_frames) for k in range(count)]


def _sharpness(frames: np.ndarray) -> np.ndarray:
    return np.array([measures.sharpness(f) for f in frames], dtype=np.float64)


def _motion_weighted(patches: np.ndarray, depth: int, weight: float) -> np.ndarray:
    """Space-time patches ``(n, depth * P)`` (frames t .. t+depth-1) as the middle frame's values followed by the
    ``depth - 1`` frame-to-frame differences times ``weight``: a linear change of coordinates that makes how a patch
    moves count as much as how it looks (in plain coordinates the change between frames is small against the
    patch's own contrast, and a frozen video would pass for real motion)."""
    if depth == 1:
        return patches
    frames = patches.reshape(len(patches), depth, -1)
    steps = np.diff(frames, axis=1) * weight
    return np.concatenate([frames[:, depth // 2], steps.reshape(len(patches), -1)], axis=1)


def _per_frame(frames: np.ndarray, bank: np.ndarray, per_frame: int, patch: int, rng: np.random.Generator,
               depth: int = 1, motion_weight: float = 1.0) -> np.ndarray:
    """RMS distance (0-255 scale) of ``per_frame`` random patches at each frame position (``len - depth + 1`` of
    them) to their nearest bank patch; shape ``(positions, per_frame)``. Space-time patches (``depth`` > 1) are
    compared in :func:`_motion_weighted` coordinates (the bank's must be too)."""
    positions = len(frames) - depth + 1
    frame_index = np.repeat(np.arange(positions), per_frame)
    queries = _motion_weighted(sample_patches(frames, frame_index, patch, rng, depth), depth, motion_weight)
    return nearest_rms(queries, bank).reshape(positions, per_frame)


def _bank(frames: np.ndarray, size: int, patch: int, rng: np.random.Generator, depth: int = 1,
          motion_weight: float = 1.0) -> np.ndarray:
    """``size`` random patches of the frames (space-time ones over ``depth`` consecutive frames, in
    :func:`_motion_weighted` coordinates)."""
    patches = sample_patches(frames, rng.integers(0, len(frames) - depth + 1, size=size), patch, rng, depth)
    return _motion_weighted(patches, depth, motion_weight)


def _frame_sq_distance_blocks(a: np.ndarray, b: np.ndarray):
    """Squared Euclidean distances between the frames of ``a`` and of ``b`` (centred float32, matrix trick), as blocks
    ``(a_start, b_start, block)`` over chunks of frames sized so that each converted chunk stays near
    ``_BLOCK_BYTES`` (many frames at 64 px, a few dozen at 256 px)."""
    dims = int(np.prod(a.shape[1:]))
    rows = max(1, _BLOCK_BYTES // (4 * dims))
    flat_a, flat_b = a.reshape(len(a), dims), b.reshape(len(b), dims)
    b_chunks = [(j, flat_b[j:j + rows]) for j in range(0, len(b), rows)]
    for i in range(0, len(a), rows):
        fa = flat_a[i:i + rows].astype(np.float32) - 127.5
        sq_a = np.einsum("ij,ij->i", fa, fa)
        for j, chunk in b_chunks:
            fb = chunk.astype(np.float32) - 127.5
            block = fa @ fb.T
            block *= -2.0
            block += sq_a[:, None]
            block += np.einsum("ij,ij->i", fb, fb)[None, :]
            yield i, j, np.maximum(block, 0.0)


def _best_psnr(frames: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """PSNR (dB) of each frame against its closest reference frame (smallest MSE over all reference frames, brute
    force)."""
    if frames.shape[1:] != reference.shape[1:]:
        raise ValueError(f"frames {frames.shape[1:]} and source frames {reference.shape[1:]} differ in size")
    dims = int(np.prod(frames.shape[1:]))
    best = np.full(len(frames), np.inf)
    for i, _, block in _frame_sq_distance_blocks(frames, reference):
        best[i:i + len(block)] = np.minimum(best[i:i + len(block)], block.min(axis=1))
    mse = best / dims
    with np.errstate(divide="ignore"):
        return np.where(mse > 0, 10.0 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-12)), math.inf)


def _segments(*arrays: np.ndarray) -> list[np.ndarray]:
    return [a for a in arrays if a is not None and len(a)]


def _ratio(value: float, reference: float) -> float | None:
    if reference is None or not np.isfinite(reference) or reference <= 0 or not np.isfinite(value):
        return None
    return float(value / reference)


def _finite(values: list[float]) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in values]


def _window_means(per_frame: np.ndarray, bounds: list[tuple[int, int]]) -> list[float]:
    """Mean of each window's entries (entries past the array's end, as for pair or space-time measures, are left
    out; a window with none is NaN)."""
    return [float(np.mean(per_frame[a:b])) if min(b, len(per_frame)) > a else math.nan for a, b in bounds]


# ------------------------------------------------------------------------------------------------------------ score


@dataclass(frozen=True)
class Reference:
    """What every generated video is measured against, computed once by :func:`reference` (so that scoring several
    videos, the baselines and the controls against one clip costs the clip's flow, sharpness and patch banks once)."""

    frame_shape: tuple[int, ...]
    segments: tuple[np.ndarray, ...]  # the source clip in time order, as segments without flow across their bounds
    bank: np.ndarray  # training-frame patches (float32) that realism queries are matched against
    spacetime_bank: np.ndarray  # training space-time patches
    coarse_bank: np.ndarray  # training patches at the coarse size
    completeness_queries: dict[str, np.ndarray]  # training patches sought in each window, per patch kind
    seed: int
    patches: PatchSettings
    motion_px: float  # mean flow magnitude of consecutive source frames
    warp_error: float  # mean warping error of consecutive source frames (0-255)
    realism_rms: float  # mean nearest-bank distance of held-out patches (0-255 scale)
    spacetime_rms: float  # the same for held-out space-time patches
    coarse_rms: float  # the same for held-out coarse patches
    completeness_rms: dict[str, float]  # the completeness distance of real windows of the training frames, per kind
    copy_index: measures.PatchIndex  # every patch of (up to copy_frames) training frames, for copying
    copy_rms: float  # held-out patch distances to copy_index under this count as copies (their copy_percentile)
    sharpness: float  # mean Laplacian variance of source frames
    contrast: float  # mean pixel std of source frames

    def values(self) -> dict:
        c = self.completeness_rms
        return {"motion_px": self.motion_px, "warp_error": self.warp_error, "realism_rms": self.realism_rms,
                "spacetime_rms": self.spacetime_rms, "spacetime_complete_rms": c["spacetime"],
                "coarse_rms": self.coarse_rms, "coarse_complete_rms": c["coarse"],
                "completeness_rms": c["completeness"], "copy_rms": self.copy_rms, "sharpness": self.sharpness,
                "contrast": self.contrast}


def _rngs(seed: int) -> list[np.random.Generator]:
    """Separate streams for the banks, the generated queries and the held-out queries."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)]


def _copy_index(train: np.ndarray, patches: PatchSettings, seed: int) -> measures.PatchIndex:
    """Every patch of up to ``copy_frames`` evenly spaced training frames (one pixel apart per 64 px of side)."""
    keep = np.unique(np.linspace(0, len(train) - 1, min(patches.copy_frames, len(train))).round().astype(int))
    return measures.PatchIndex(np.ascontiguousarray(train[keep]), patches.patch,
                               stride=max(1, train.shape[1] // 64), seed=seed)


def _copy_distances(frames: np.ndarray, index: measures.PatchIndex, per_frame: int, patches: PatchSettings,
                    rng: np.random.Generator) -> np.ndarray:
    """Distance of ``per_frame`` random patches of each frame to the nearest training patch; ``(frames, per_frame)``."""
    frame_index = np.repeat(np.arange(len(frames)), per_frame)
    found = index.nearest_rms(sample_patches(frames, frame_index, patches.patch, rng))
    return found.reshape(len(frames), per_frame)


@dataclass(frozen=True)
class _Kind:
    """A kind of patch the completeness-style measures draw: ``patch`` px squares over ``depth`` frames (compared in
    :func:`_motion_weighted` coordinates with ``weight``), on frames area-averaged to ``side`` px (None: as they
    are)."""

    patch: int
    depth: int = 1
    weight: float = 1.0
    side: int | None = None

    def frames(self, frames: np.ndarray) -> np.ndarray:
        return frames if self.side is None else measures.resize(frames, self.side)


def _kinds(p: PatchSettings) -> dict[str, _Kind]:
    """The patch kinds of completeness, and of the completeness halves of spacetime and coarse."""
    return {"completeness": _Kind(p.patch), "spacetime": _Kind(p.patch, p.depth, p.motion_weight),
            "coarse": _Kind(p.coarse_patch, side=p.coarse_side)}


def _completeness(window_frames: np.ndarray, queries: np.ndarray, kind: _Kind, patches: PatchSettings,
                  rng: np.random.Generator) -> float:
    """The mean of the RMS distances above their ``completeness_percentile`` of the ``queries`` (training patches of
    the ``kind``) to their nearest patch among ``completeness_bank`` patches drawn from the window's frames (already
    in the kind's size; a fixed count, so a longer window is not favoured)."""
    bank = _bank(window_frames, patches.completeness_bank, kind.patch, rng, kind.depth, kind.weight)
    distances = np.sort(nearest_rms(queries, bank))
    return float(distances[int(len(distances) * patches.completeness_percentile / 100):].mean())


def _completeness_queries(train: np.ndarray, allowed: np.ndarray, kind: _Kind, patches: PatchSettings,
                          rng: np.random.Generator) -> np.ndarray:
    """``completeness_queries`` training patches of the ``kind`` starting at the ``allowed`` frames (of ``train``,
    already in the kind's size): half at uniformly random places, half where the clip moves (drawn in proportion to
    the patch's mean absolute change from the frame before), so that what moves in a clip with a large still
    background weighs in."""
    p, depth = kind.patch, kind.depth
    allowed = allowed[allowed <= len(train) - depth]
    half = patches.completeness_queries // 2
    uniform = sample_patches(train, allowed[rng.integers(0, len(allowed), size=half)], p, rng, depth)
    previous = np.maximum(allowed - 1, 0)
    change = np.stack([np.abs(measures.gray(train[f]).astype(np.float32) - measures.gray(train[g]).astype(np.float32))
                       for f, g in zip(allowed, previous)])
    # Mean change over every p x p patch (a box filter, anchored at the patch's top-left corner).
    summed = np.cumsum(np.cumsum(np.pad(change, ((0, 0), (1, 0), (1, 0))), axis=1), axis=2)
    boxes = summed[:, p:, p:] - summed[:, :-p, p:] - summed[:, p:, :-p] + summed[:, :-p, :-p]
    weights = boxes.ravel() + 1e-6
    pick = rng.choice(len(weights), size=patches.completeness_queries - half, p=weights / weights.sum())
    frame, y, x = np.unravel_index(pick, boxes.shape)
    offsets = np.arange(p)
    times = (allowed[frame][:, None] + np.arange(depth))[:, :, None, None]
    moving = train[times, (y[:, None] + offsets)[:, None, :, None], (x[:, None] + offsets)[:, None, None, :]]
    both = np.concatenate([uniform, moving.reshape(len(pick), -1).astype(np.float32)])
    return _motion_weighted(both, depth, kind.weight)


def _real_completeness(train: np.ndarray, window: int, kind: _Kind, patches: PatchSettings,
                       rng: np.random.Generator) -> float:
    """Completeness of real windows: up to ``completeness_windows`` windows of ``window`` frames (at most a third of
    the training frames) evenly spread over the training frames (in the kind's size), each against training patches
    from outside it (two frames of margin), averaged."""
    length = max(kind.depth + 1, min(window, len(train) // 3))
    starts = np.unique(np.linspace(0, len(train) - length, patches.completeness_windows).round().astype(int))
    values = []
    for a in starts:
        outside = np.concatenate([np.arange(0, max(0, a - 2)), np.arange(min(len(train), a + length + 2), len(train))])
        if len(outside[outside <= len(train) - kind.depth]) == 0:
            continue
        queries = _completeness_queries(train, outside, kind, patches, rng)
        values.append(_completeness(train[a:a + length], queries, kind, patches, rng))
    return float(np.mean(values)) if values else math.nan


def reference(train_frames: np.ndarray, heldout_frames: np.ndarray, source_frames: np.ndarray | None = None,
              seed: int = 0, patches: PatchSettings = PatchSettings(), window: int = 100) -> Reference:
    """The real clip's side of :func:`score_video` (arguments as there; ``window`` sets the real windows that
    completeness is compared with). With fewer held-out frames than ``patches.depth`` space-time realism is None."""
    train_frames = _check_frames("train_frames", train_frames, min_frames=patches.depth)
    heldout_frames = _check_frames("heldout_frames", heldout_frames)
    segments = (_segments(_check_frames("source_frames", source_frames, min_frames=2)) if source_frames is not None
                else _segments(train_frames, heldout_frames))
    shape = train_frames.shape[1:]
    for name, arr in (("heldout_frames", heldout_frames), ("source_frames", segments[0])):
        if arr.shape[1:] != shape:
            raise ValueError(f"{name} frames are {arr.shape[1:]}, train_frames are {shape}")
    source_flow = [measures.flow_and_warp(s) for s in segments]
    bank_rng, _, held_rng = _rngs(seed)
    p = patches
    bank = _bank(train_frames, p.bank_size, p.patch, bank_rng)
    spacetime_bank = _bank(train_frames, p.spacetime_bank, p.patch, bank_rng, p.depth, p.motion_weight)
    coarse_train, coarse_held = (measures.resize(f, p.coarse_side) for f in (train_frames, heldout_frames))
    coarse_bank = _bank(coarse_train, p.coarse_bank, p.coarse_patch, bank_rng)
    kinds = _kinds(p)
    kind_train = {name: kind.frames(train_frames) for name, kind in kinds.items()}
    completeness_queries = {name: _completeness_queries(kind_train[name], np.arange(len(train_frames)), kind, p,
                                                        bank_rng) for name, kind in kinds.items()}
    held = _per_frame(heldout_frames, bank, p.patches_per_frame, p.patch, held_rng).ravel()
    copy_index = _copy_index(train_frames, p, seed)
    # The copy radius is a low percentile: it takes more held-out patches than a mean does.
    held_copy = _copy_distances(heldout_frames, copy_index, max(1, 4096 // len(heldout_frames)), p, held_rng)
    # A validation block shorter than a space-time patch leaves space-time realism unmeasured (None), not failed.
    st_held = (_per_frame(heldout_frames, spacetime_bank, max(p.spacetime_per_frame, 1024 // len(heldout_frames)),
                          p.patch, held_rng, p.depth, p.motion_weight) if len(heldout_frames) >= p.depth
               else np.full(1, math.nan))
    coarse_held_d = _per_frame(coarse_held, coarse_bank, max(p.coarse_per_frame, 1024 // len(heldout_frames)),
                               p.coarse_patch, held_rng)
    flows = np.concatenate([m for m, _ in source_flow])
    warps = np.concatenate([w for _, w in source_flow])
    return Reference(
        frame_shape=tuple(shape), segments=tuple(segments), bank=bank, spacetime_bank=spacetime_bank,
        coarse_bank=coarse_bank, completeness_queries=completeness_queries, seed=seed, patches=patches,
        motion_px=float(flows.mean()) if len(flows) else math.nan,
        warp_error=float(warps.mean()) if len(warps) else math.nan,
        realism_rms=float(held.mean()), spacetime_rms=float(st_held.mean()), coarse_rms=float(coarse_held_d.mean()),
        completeness_rms={name: _real_completeness(kind_train[name], window, kind, p, bank_rng)
                          for name, kind in kinds.items()},
        copy_index=copy_index, copy_rms=float(np.percentile(held_copy, p.copy_percentile)),
        sharpness=float(np.concatenate([_sharpness(s) for s in segments]).mean()),
        contrast=float(np.concatenate([measures.contrast(s) for s in segments]).mean()))


def _absolute(generated: np.ndarray, ref: Reference, bounds: list[tuple[int, int]]) -> dict[str, list[float]]:
    """The generated video's per-window absolute values (units of :meth:`Reference.values`; ``copying`` is a share)."""
    p = ref.patches
    magnitude, warp = measures.flow_and_warp(generated)
    pairs = [(max(a, 1) - 1, b - 1) for a, b in bounds]  # pair t-1 is (t-1, t)
    _, rng, _ = _rngs(ref.seed)
    dist = _per_frame(generated, ref.bank, p.patches_per_frame, p.patch, rng)
    spacetime = (_per_frame(generated, ref.spacetime_bank, p.spacetime_per_frame, p.patch, rng, p.depth,
                            p.motion_weight).mean(axis=1) if len(generated) >= p.depth else np.full(0, math.nan))
    coarse = _per_frame(measures.resize(generated, p.coarse_side), ref.coarse_bank, p.coarse_per_frame,
                        p.coarse_patch, rng).mean(axis=1)
    # A space-time patch at t spans frames t .. t+depth-1: the last window keeps the positions that start in it.
    return {
        "motion_px": [float(np.mean(magnitude[a:b])) if b > a else math.nan for a, b in pairs],
        "warp_error": [float(np.mean(warp[a:b])) if b > a else math.nan for a, b in pairs],
        "realism_rms": _window_means(dist.mean(axis=1), bounds),
        "spacetime_rms": _window_means(spacetime, bounds),
        "coarse_rms": _window_means(coarse, bounds),
        **{f"{name}_rms" if name == "completeness" else f"{name}_complete_rms":
           [_completeness(kind.frames(generated[a:b]), ref.completeness_queries[name], kind, p, rng)
            for a, b in bounds] for name, kind in _kinds(p).items()},
        "copying": _window_means((_copy_distances(generated, ref.copy_index, p.copy_per_frame, p, rng)
                                  < ref.copy_rms).mean(axis=1), bounds),
        "sharpness": _window_means(_sharpness(generated), bounds),
        "contrast": _window_means(measures.contrast(generated), bounds)}


# Each ratio curve of score_video and the Reference value it is relative to.
_CURVES = (("motion", "motion_px"), ("coherence", "warp_error"), ("realism", "realism_rms"),
           ("spacetime", "spacetime_rms"), ("coarse", "coarse_rms"), ("completeness", "completeness_rms"),
           ("sharpness", "sharpness"), ("contrast", "contrast"))


def _curves(absolute: dict[str, list[float]], reference_values: dict[str, float]) -> dict[str, list[float | None]]:
    """The per-window ratio curves: each absolute value over the real clip's; spacetime and coarse bidirectional
    (their coherence plus completeness distance over the real clip's sum)."""
    curves = {name: [_ratio(v, reference_values[key]) for v in absolute[key]] for name, key in _CURVES}
    for name in ("spacetime", "coarse"):
        real = reference_values[f"{name}_rms"] + reference_values[f"{name}_complete_rms"]
        curves[name] = [_ratio(a + b, real) for a, b in zip(absolute[f"{name}_rms"],
                                                             absolute[f"{name}_complete_rms"])]
    return curves


def _drift(curves: dict[str, list], windows: int) -> tuple[dict | None, int | None]:
    """Last-window over reference-window ratios of each curve, and the reference window's index."""
    ref_window = 1 if windows >= 3 else (0 if windows == 2 else None)
    if ref_window is None:
        return None, None
    return ({name: (_ratio(values[-1], values[ref_window])
                    if values[-1] is not None and values[ref_window] is not None else None)
             for name, values in curves.items()}, ref_window)


def score_video(generated: np.ndarray, train_frames: np.ndarray | None = None,
                heldout_frames: np.ndarray | None = None, source_frames: np.ndarray | None = None, window: int = 100,
                seed: int = 0, thresholds: Thresholds = THRESHOLDS, patches: PatchSettings = PatchSettings(),
                ref: Reference | None = None) -> dict:
    """Measure a generated video against the real clip.

    Args:
        generated: uint8 ``(T, S, S, 3)``, the generated video (at least 2 frames).
        train_frames: uint8 ``(N, S, S, 3)``, the frames the model trained on, in time order: source of the patch
            banks and of the real windows of completeness.
        heldout_frames: uint8 ``(M, S, S, 3)``, real frames the model never trained on (in time order; space-time
            realism needs at least ``patches.depth``): the reference of the patch measures.
        source_frames: uint8 ``(K, S, S, 3)``, the real clip in time order: reference for motion, coherence,
            sharpness and contrast, and the frames that count as replayed. Default: ``train_frames`` and
            ``heldout_frames`` as two segments (no flow is taken across the boundary between them).
        window: Frames per window (see the module docstring for the windowing).
        seed: Seed of the patch sampling (banks, generated queries and held-out queries use separate streams).
        thresholds: Only ``replay_psnr_db`` is used here (the rest by :func:`verdict`).
        patches: Patch sampling of the patch measures.
        ref: The clip's side computed once by :func:`reference`; then the frames, ``seed`` and ``patches`` are not
            needed (those of ``ref`` are used).

    Returns:
        A JSON-ready dict. Per-window lists (one value per window, ratios against the real clip): ``motion``,
        ``coherence``, ``realism``, ``spacetime``, ``coarse``, ``completeness``, ``sharpness``, ``contrast``;
        shares: ``copying`` and ``replay`` (share of the window's frames within ``replay_psnr_db`` of a source frame).
        Scalars: ``num_frames``, ``window``, ``window_starts`` (first frame of each window), ``replay_share`` (over
        all frames), ``replay_psnr_db``, ``drift`` (dict with each ratio curve's last-window / reference-window ratio,
        or None), ``drift_reference_window`` (index of the reference window: 1 when there are at least 3 windows, 0
        when there are 2, None for one window; drift is None then), ``reference`` (the real clip's absolute values,
        :meth:`Reference.values`) and ``absolute`` (the generated video's per-window absolute values in the same
        units). A ratio whose reference is zero is None.
    """
    generated = _check_frames("generated", generated, min_frames=2)
    ref = ref or reference(train_frames, heldout_frames, source_frames, seed=seed, patches=patches, window=window)
    if generated.shape[1:] != ref.frame_shape:
        raise ValueError(f"the real frames are {ref.frame_shape}, generated frames are {generated.shape[1:]}")
    bounds = window_bounds(len(generated), window)
    absolute = _absolute(generated, ref, bounds)
    copied = _best_psnr(generated, np.concatenate(ref.segments)) >= thresholds.replay_psnr_db
    reference_values = ref.values()
    curves = _curves(absolute, reference_values)
    drift, ref_window = _drift(curves, len(bounds))
    return {
        "num_frames": int(len(generated)),
        "window": int(window),
        "window_starts": [a for a, _ in bounds],
        **curves,
        "copying": _finite(absolute["copying"]),
        "replay": _window_means(copied.astype(np.float64), bounds),
        "replay_share": float(copied.mean()),
        "replay_psnr_db": float(thresholds.replay_psnr_db),
        "drift": drift,
        "drift_reference_window": ref_window,
        "reference": reference_values,
        "absolute": {key: _finite(values) for key, values in absolute.items()},
    }


# ---------------------------------------------------------------------------------------------------------- verdict


def _first_window(values: list[float | None], fails) -> int | None:
    for k, v in enumerate(values):
        if v is not None and fails(v):
            return k
    return None


# Per-window bounds: (measure, name below the low bound, Thresholds field, name above the high bound, field).
_RANGES = (("motion", "frozen", "motion_min", "jitter", "motion_max"),
           ("coherence", "still", "coherence_min", "flicker", "coherence_max"),
           ("spacetime", None, None, "unreal motion", "spacetime_max"),
           ("coarse", None, None, "layout", "coarse_max"),
           ("completeness", None, None, "incomplete", "completeness_max"),
           ("copying", None, None, "pasted", "copying_max"),
           ("contrast", "faded", "contrast_min", "garish", "contrast_max"),
           ("sharpness", "blur", "sharpness_min", "noise", "sharpness_max"))


def _range_checks(scores: dict, t: Thresholds):
    """``(name, measure, value, limit, window)`` of the per-window bounds that fail."""
    for measure, low_name, low_field, high_name, high_field in _RANGES:
        values = scores.get(measure)
        if values is None:
            continue
        valid = [v for v in values if v is not None]
        for name, field, fails, worst in ((low_name, low_field, lambda v, x: v < x, min),
                                          (high_name, high_field, lambda v, x: v > x, max)):
            if name is None:
                continue
            limit = getattr(t, field)
            k = _first_window(values, lambda v, limit=limit, fails=fails: fails(v, limit))
            if k is not None:
                yield name, measure, worst(valid), limit, k


def _trend_checks(scores: dict, t: Thresholds):
    """``(name, measure, value, limit, window)`` of the failing mush, drift and replay checks."""
    realism = scores["realism"]
    if realism[-1] is not None and realism[-1] > t.realism_max:
        yield "mush", "realism", realism[-1], t.realism_max, _first_window(realism, lambda v: v > t.realism_max)
    drift = (scores.get("drift") or {}).get("realism")
    ref = scores.get("drift_reference_window")
    if drift is not None and drift > t.drift_max:
        base = realism[ref]
        later = [(v / base if v is not None else None) for v in realism[ref + 1:]]
        k = _first_window(later, lambda v: v > t.drift_max)
        yield "drift", "realism drift", drift, t.drift_max, ref + 1 + k if k is not None else len(realism) - 1
    if scores["replay_share"] > t.replay_max:
        k = _first_window(scores["replay"], lambda v: v > t.replay_max)
        yield "replay", "replay share", scores["replay_share"], t.replay_max, k if k is not None else 0


# The order failures are reported in (and :func:`verdict`'s ``failed`` list follows).
CHECKS = ("frozen", "jitter", "still", "flicker", "mush", "unreal motion", "layout", "incomplete", "pasted", "faded",
          "garish", "blur", "noise", "drift", "replay")


def verdict(scores: dict, thresholds: Thresholds = THRESHOLDS) -> dict:
    """Pass/fail checks on the result of :func:`score_video`.

    Checks (a failure is reported under its name), per window unless said:

    - ``frozen`` / ``jitter``: motion below ``motion_min`` / above ``motion_max``.
    - ``still`` / ``flicker``: coherence (warping error) below ``coherence_min`` / above ``coherence_max``.
    - ``mush``: realism above ``realism_max`` in the last window.
    - ``unreal motion``: spacetime above ``spacetime_max``.
    - ``layout``: coarse above ``coarse_max``.
    - ``incomplete``: completeness above ``completeness_max``.
    - ``pasted``: copying above ``copying_max``.
    - ``faded`` / ``garish``: contrast below ``contrast_min`` / above ``contrast_max``.
    - ``blur`` / ``noise``: sharpness below ``sharpness_min`` / above ``sharpness_max``.
    - ``drift``: realism drift (last window / reference window) above ``drift_max``.
    - ``replay``: ``replay_share`` above ``replay_max``.

    Returns:
        JSON-ready ``{"ok": bool, "failed": [names], "failures": {name: {"measure", "value", "limit", "window",
        "frame"}}, "thresholds": {...}}``. ``frame`` is where the failure starts: the first frame of the first window
        that fails the limit (for ``mush`` the first window above ``realism_max``; for ``drift`` the first window after
        the reference window whose realism exceeds ``drift_max`` times the reference's, else the last window; for
        ``replay`` the first window with more than ``replay_max`` of its frames replayed). ``value`` is the failing
        measure (the worst window's value for per-window checks).
    """
    starts = scores["window_starts"]
    found = {name: {"measure": measure, "value": float(value), "limit": float(limit), "window": int(window),
                    "frame": int(starts[window])}
             for checks in (_range_checks, _trend_checks)
             for name, measure, value, limit, window in checks(scores, thresholds)}
    failures = {name: found[name] for name in CHECKS if name in found}
    return {"ok": not failures, "failed": list(failures), "failures": failures, "thresholds": asdict(thresholds)}


def judge(generated: np.ndarray, train_frames: np.ndarray | None = None, heldout_frames: np.ndarray | None = None,
          source_frames: np.ndarray | None = None, window: int = 100, seed: int = 0,
          thresholds: Thresholds = THRESHOLDS, patches: PatchSettings = PatchSettings(),
          ref: Reference | None = None) -> dict:
    """:func:`score_video` and its :func:`verdict` in one dict: the scores plus a ``verdict`` key."""
    scores = score_video(generated, train_frames, heldout_frames, source_frames=source_frames, window=window,
                         seed=seed, thresholds=thresholds, patches=patches, ref=ref)
    scores["verdict"] = verdict(scores, thresholds)
    return scores


def combine_verdicts(verdicts: list[dict]) -> dict:
    """The verdicts of several videos as one: ``{"ok", "failed", "failures": {name: {"measure", "limit", "frame",
    "videos": [{"video", "frame", "value"}]}}}``, ``frame`` the earliest start over the videos that fail ``name``
    (videos numbered by their position in ``verdicts``)."""
    failures: dict[str, dict] = {}
    for name in CHECKS:
        hits = [(v, verdict_["failures"][name]) for v, verdict_ in enumerate(verdicts) if name in verdict_["failures"]]
        if hits:
            failures[name] = {"measure": hits[0][1]["measure"], "limit": hits[0][1]["limit"],
                              "frame": min(f["frame"] for _, f in hits),
                              "videos": [{"video": v, "frame": f["frame"], "value": f["value"]} for v, f in hits]}
    return {"ok": not failures, "failed": list(failures), "failures": failures}


def _mean_valid(values: list[float | None]) -> float | None:
    valid = [v for v in values if v is not None]
    return float(np.mean(valid)) if valid else None


def placement(videos: list[dict], copy: dict, textures: dict) -> dict:
    """Where generated videos sit between the two baselines (results of :func:`score_video`).

    ``motion``: mean motion ratio over windows (and videos) of the model, of copy-last-frame ("frozen") and of Video
    Textures ("replay"), and ``position`` = (model - copy) / (textures - copy): 0 = as still as copying the start
    frame, 1 = moves like the replayed clip (None when the baselines' motion is equal). ``replay_share`` and
    ``realism_last`` (last-window realism) of the three, the model's as the mean over its videos.
    """
    def mean_of(key, pick):
        return _mean_valid([pick(s[key]) for s in videos])

    motion = {"model": mean_of("motion", _mean_valid), "copy_last_frame": _mean_valid(copy["motion"]),
              "video_textures": _mean_valid(textures["motion"])}
    low, high, model = motion["copy_last_frame"], motion["video_textures"], motion["model"]
    usable = None not in (low, high, model) and abs(high - low) > 1e-9
    motion["position"] = float((model - low) / (high - low)) if usable else None
    return {"motion": motion,
            "replay_share": {"model": mean_of("replay_share", float), "copy_last_frame": copy["replay_share"],
                             "video_textures": textures["replay_share"]},
            "realism_last": {"model": mean_of("realism", lambda r: r[-1]), "copy_last_frame": copy["realism"][-1],
                             "video_textures": textures["realism"][-1]}}


# -------------------------------------------------------------------------------------------------------- baselines


def copy_last_frame(start_frame: np.ndarray, length: int) -> np.ndarray:
    """The "copy-last-frame" baseline: ``start_frame`` (uint8 ``(S, S, 3)``) repeated ``length`` times."""
    return np.repeat(np.asarray(start_frame, dtype=np.uint8)[None], length, axis=0)


def _frame_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RMS pixel distance between every frame of ``a`` and every frame of ``b``, shape ``(len(a), len(b))``."""
    dims = int(np.prod(a.shape[1:]))
    out = np.empty((len(a), len(b)), dtype=np.float32)
    for i, j, block in _frame_sq_distance_blocks(a, b):
        out[i:i + block.shape[0], j:j + block.shape[1]] = np.sqrt(block / dims)
    return out


def video_textures(train_frames: np.ndarray, start_frame: np.ndarray, length: int, seed: int = 0,
                   sigma_scale: float = 0.05, min_jump: int = 10) -> np.ndarray:
    """The "replay" baseline, after Video Textures (A. Schodl, R. Szeliski, D. Salesin, I. Essa, "Video Textures",
    SIGGRAPH 2000): play real training frames forward, jumping now and then to a frame whose predecessor looks like
    the current frame.

    From the current frame ``c`` the next frame is a training frame ``j`` in ``[1, N)`` drawn with probability
    proportional to ``exp(-D(c, frames[j-1]) / sigma)``, ``D`` the RMS pixel distance. ``j`` whose predecessor is
    ``c`` itself has ``D = 0`` and the highest weight, so the clip mostly plays on. ``sigma`` is ``sigma_scale`` times
    the mean distance between distinct training frames (the paper: "a small multiple of the average (nonzero)
    D_ij"). When ``c`` is training frame ``i``, the only candidates are ``j = i + 1`` (play on) and jumps of at least
    ``min_jump`` frames (``|j - (i + 1)| >= min_jump``): short jumps would stutter (repeat or skip a frame) and, at
    the last training frame, which has no successor, would repeat it forever; with them excluded the last frame
    loops back to a similar earlier one (the paper's "dead end" problem, which it solves with future costs). The
    video starts with ``start_frame`` (which may lie outside the training block: then every ``j`` is a candidate);
    every later frame is a training frame.

    Args:
        train_frames: uint8 ``(N, S, S, 3)``, N >= 2.
        start_frame: uint8 ``(S, S, 3)``.
        length: Frames to return (including the start frame).
        seed: Seed of the random jumps.
        sigma_scale: ``sigma`` over the mean nonzero frame distance.
        min_jump: Shortest jump allowed besides playing on (reduced for short clips so that some jump exists).

    Returns:
        uint8 ``(length, S, S, 3)``.
    """
    train_frames = _check_frames("train_frames", train_frames, min_frames=2)
    rng = np.random.default_rng(seed)
    preds = train_frames[:-1]  # predecessor of candidate j is frame j-1
    dist = _frame_distances(train_frames, preds)  # dist[i, j-1]: training frame i vs predecessor of j
    nonzero = dist[dist > 0]
    sigma = sigma_scale * (float(nonzero.mean()) if len(nonzero) else 1.0)
    start_dist = _frame_distances(np.asarray(start_frame, dtype=np.uint8)[None], preds)[0]

    count = len(train_frames)
    min_jump = max(1, min(min_jump, (count - 1) // 2))
    candidates = np.arange(1, count)

    out = np.empty((length, *train_frames.shape[1:]), dtype=np.uint8)
    out[0] = start_frame
    row, allowed = start_dist, np.ones(count - 1, dtype=bool)
    for t in range(1, length):
        d = np.where(allowed, row, np.inf)
        weights = np.exp(-(d - d.min()) / sigma)
        j = int(rng.choice(candidates, p=weights / weights.sum()))
        out[t] = train_frames[j]
        row = dist[j]
        allowed = (candidates == j + 1) | (np.abs(candidates - (j + 1)) >= min_jump)
    return out


def baseline_videos(train_frames: np.ndarray, start_frame: np.ndarray, length: int, seed: int = 0) -> dict:
    """The two baselines to score like a generated video.

    Returns:
        ``{"copy_last_frame": ..., "video_textures": ...}``, uint8 ``(length, S, S, 3)`` each.
    """
    return {"copy_last_frame": copy_last_frame(start_frame, length),
            "video_textures": video_textures(train_frames, start_frame, length, seed=seed)}


# -------------------------------------------------------------------------------------------------------- diversity


def diversity(videos: list[np.ndarray] | np.ndarray, source_frames: np.ndarray) -> dict:
    """How different several videos generated from one start frame are, against how much the clip itself varies.

    ``spread``: the standard deviation across the videos of each pixel value (per frame index, row, column and
    channel), averaged over pixels and frames (the shared start frame, if included, contributes zeros). ``source``:
    the standard deviation over time of each pixel value of the source clip, averaged over pixels. ``diversity`` =
    ``spread / source``: 0 = the videos are identical; about 1 = they differ from each other as much as the clip's
    frames differ over time.

    Args:
        videos: At least two uint8 ``(T, S, S, 3)`` videos of equal shape (or one ``(V, T, S, S, 3)`` array).
        source_frames: uint8 ``(K, S, S, 3)``, the real clip.

    Returns:
        ``{"diversity": float | None, "spread": float, "source": float, "num_videos": int}``.
    """
    stack = np.stack([_check_frames("video", v) for v in videos])
    if len(stack) < 2:
        raise ValueError("diversity needs at least two videos")
    source_frames = _check_frames("source_frames", source_frames, min_frames=2)
    spread = float(np.mean([stack[:, t].astype(np.float32).std(axis=0).mean() for t in range(stack.shape[1])]))
    source = float(source_frames.astype(np.float32).std(axis=0).mean())
    return {"diversity": _ratio(spread, source), "spread": spread, "source": source, "num_videos": int(len(stack))}


# ---------------------------------------------------------------------------------------------------------- wording


def _video_list(videos: list[dict]) -> str:
    numbers = [str(v["video"]) for v in videos]
    return f"video {numbers[0]}" if len(numbers) == 1 else f"videos {', '.join(numbers)}"


def verdict_line(combined: dict, place: dict | None = None, videos: int = 1) -> str:
    """One sentence from :func:`combine_verdicts` (of ``videos`` scored videos) and :func:`placement`: what failed and
    from which frame, and where the model sits between copying the last frame ("frozen") and replaying the clip."""
    if combined["ok"]:
        text = (f"Video quality ({videos} video{'s' if videos > 1 else ''} scored): every check passes ("
                f"{', '.join(CHECKS)}).")
    else:
        failed = [f"{name} from frame {f['frame']} ({_video_list(f['videos'])})"
                  for name, f in combined["failures"].items()]
        text = f"Video quality ({videos} video{'s' if videos > 1 else ''} scored): {'; '.join(failed)}."
    if place:
        motion, replay = place["motion"], place["replay_share"]
        if motion["position"] is not None:
            text += (f" Between the baselines it moves {motion['position']:.2f} of the way from copying the last frame"
                     f" (frozen, motion {motion['copy_last_frame']:.2f}) to replaying the clip (Video Textures, "
                     f"motion {motion['video_textures']:.2f}),")
        else:
            text += " Against the baselines it"
        text += (f" replays {replay['model']:.0%} of its frames (copying {replay['copy_last_frame']:.0%}, Video "
                 f"Textures {replay['video_textures']:.0%}).")
    return text
