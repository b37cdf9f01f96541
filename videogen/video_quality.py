"""Judge a generated video against the real clip it was learned from, with distribution measures that need no
downloaded weights (pure numpy and OpenCV).

Reads uint8 frame arrays ``(T, S, S, 3)`` (RGB): the generated video, the training frames of the clip, its held-out
(validation) frames and optionally the whole source clip. Computes, per window of ``window`` generated frames
(default 100), ratios against the real footage, so that 1 means "like the real clip":

- **motion**: mean optical-flow magnitude (Farneback) between consecutive generated frames, over the same mean for
  consecutive source frames. 0 = frozen.
- **realism**: mean distance of small patches of generated frames to their nearest patch in a seeded bank of
  training-frame patches, over the same mean for patches of the held-out real frames. 1 = as close to the clip's look
  as real frames the model never saw; above 1 = farther (mush, blotches, artefacts).
- **sharpness**: mean variance of the Laplacian of grayscale frames, over the source frames' mean.
- **contrast**: mean per-frame standard deviation of the pixel values, over the source frames' mean.
- **replay**: share of generated frames within ``replay_psnr_db`` (30 dB) PSNR of some source frame.
- **drift**: each of motion, realism, sharpness and contrast in the last window over the same in the reference window
  (the second window, frames ``[window, 2*window)``; the first window still starts from a real frame).

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

import cv2
import numpy as np

# Farneback parameters (OpenCV's usual set): pyramid scale 0.5, 3 levels, 15 px averaging window, 3 iterations,
# polynomial neighbourhood 5 px with Gaussian sigma 1.2.
FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
# Query patches per block in the brute-force nearest-neighbour search (bounds the distance matrix held in memory).
_CHUNK = 2048
# Bytes of float32 frames converted at a time in the frame-to-frame distances (replay, Video Textures).
_BLOCK_BYTES = 64 << 20


@dataclass(frozen=True)
class Thresholds:
    """The project's pass criteria for a generated video; every ratio is against the real clip (1 = like it)."""

    # Motion below half the clip's in some window: the video has (nearly) stopped moving - "frozen".
    motion_min: float = 0.5
    # Motion above twice the clip's in some window: frames change far more than the clip ever does - boiling noise,
    # flicker or cuts every frame ("jitter").
    motion_max: float = 2.0
    # Realism above 1.5 in the last window: its patches are half again farther from the clip's patches than real
    # unseen frames are - the video has dissolved into "mush" (blur, blotches, texture soup).
    realism_max: float = 1.5
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
    """How the realism measure samples patches (all draws come from the ``seed`` of :func:`score_video`)."""

    # Side of the square patches (RGB, so 7x7x3 = 147 values at the default).
    patch: int = 7
    # Training-frame patches in the bank that every query is matched against (the same bank for generated and
    # held-out queries).
    bank_size: int = 8192
    # Query patches drawn from every frame, generated and held-out alike, so both means weigh frames equally.
    patches_per_frame: int = 16


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


def _gray(frames: np.ndarray) -> np.ndarray:
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])


def _flow_magnitudes(frames: np.ndarray) -> np.ndarray:
    """Mean optical-flow magnitude (px) of each consecutive pair; element ``t-1`` is the pair ``(t-1, t)``.

    Dense flow by Farneback's polynomial-expansion method (G. Farneback, "Two-frame motion estimation based on
    polynomial expansion", SCIA 2003), as implemented by OpenCV, on grayscale frames.
    """
    gray = _gray(frames)
    out = np.empty(max(len(gray) - 1, 0), dtype=np.float64)
    for t in range(1, len(gray)):
        flow = cv2.calcOpticalFlowFarneback(gray[t - 1], gray[t], None, **FARNEBACK)
        out[t - 1] = float(np.sqrt(flow[..., 0] ** 2 + flow[..., 1] ** 2).mean())
    return out


def _sharpness(frames: np.ndarray) -> np.ndarray:
    """Variance of the Laplacian of each grayscale frame: the focus measure of Pech-Pacheco et al., "Diatom
    autofocusing in brightfield microscopy: a comparative study", ICPR 2000 (3x3 Laplacian, OpenCV's ksize=1)."""
    return np.array([cv2.Laplacian(g, cv2.CV_64F).var() for g in _gray(frames)], dtype=np.float64)


def _contrast(frames: np.ndarray) -> np.ndarray:
    """Standard deviation of all pixel values (RGB) of each frame (converted a few hundred frames at a time)."""
    out = np.empty(len(frames), dtype=np.float64)
    for i in range(0, len(frames), 256):
        flat = np.asarray(frames[i:i + 256]).reshape(-1, int(np.prod(frames.shape[1:]))).astype(np.float32)
        out[i:i + len(flat)] = flat.std(axis=1)
    return out


def sample_patches(frames: np.ndarray, frame_index: np.ndarray, patch: int, rng: np.random.Generator) -> np.ndarray:
    """Patches ``(n, patch*patch*3)`` float32 at uniformly random positions of the given frames."""
    size_y, size_x = frames.shape[1], frames.shape[2]
    if patch > min(size_y, size_x):
        raise ValueError(f"patch {patch} is larger than the frames ({size_y}x{size_x})")
    ys = rng.integers(0, size_y - patch + 1, size=len(frame_index))
    xs = rng.integers(0, size_x - patch + 1, size=len(frame_index))
    offsets = np.arange(patch)
    rows = (ys[:, None] + offsets)[:, :, None]
    cols = (xs[:, None] + offsets)[:, None, :]
    patches = frames[frame_index[:, None, None], rows, cols]  # (n, patch, patch, 3)
    return patches.reshape(len(frame_index), -1).astype(np.float32)


def _nearest_sq_distances(queries: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance of every query row to its nearest bank row, by brute force with
    ``||q||^2 + ||b||^2 - 2 q.b`` in float32, ``_CHUNK`` queries at a time."""
    bank = np.ascontiguousarray(bank, dtype=np.float32)
    bank_sq = np.einsum("ij,ij->i", bank, bank)
    out = np.empty(len(queries), dtype=np.float64)
    for start in range(0, len(queries), _CHUNK):
        q = np.ascontiguousarray(queries[start:start + _CHUNK], dtype=np.float32)
        d2 = q @ bank.T
        d2 *= -2.0
        d2 += bank_sq[None, :]
        d2 += np.einsum("ij,ij->i", q, q)[:, None]
        out[start:start + len(q)] = np.maximum(d2.min(axis=1), 0.0)
    return out


def _patch_distances(frames: np.ndarray, bank: np.ndarray, settings: PatchSettings,
                     rng: np.random.Generator) -> np.ndarray:
    """RMS pixel distance (0-255 scale) of ``patches_per_frame`` random patches of each frame to their nearest bank
    patch; shape ``(len(frames), patches_per_frame)``."""
    frame_index = np.repeat(np.arange(len(frames)), settings.patches_per_frame)
    queries = sample_patches(frames, frame_index, settings.patch, rng)
    # Centre the values so that the float32 matrix trick cancels less.
    d2 = _nearest_sq_distances(queries - 127.5, bank - 127.5)
    return np.sqrt(d2 / queries.shape[1]).reshape(len(frames), settings.patches_per_frame)


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
    return [float(np.mean(per_frame[a:b])) if b > a else math.nan for a, b in bounds]


# ------------------------------------------------------------------------------------------------------------ score


@dataclass(frozen=True)
class Reference:
    """What every generated video is measured against, computed once by :func:`reference` (so that scoring several
    videos and the baselines against one clip costs the clip's flow, sharpness and patch bank once)."""

    frame_shape: tuple[int, ...]
    segments: tuple[np.ndarray, ...]  # the source clip in time order, as segments without flow across their bounds
    bank: np.ndarray  # training-frame patches (float32) that realism queries are matched against
    seed: int
    patches: PatchSettings
    motion_px: float  # mean flow magnitude of consecutive source frames
    realism_rms: float  # mean nearest-bank distance of held-out patches (0-255 scale)
    sharpness: float  # mean Laplacian variance of source frames
    contrast: float  # mean pixel std of source frames

    def values(self) -> dict:
        return {"motion_px": self.motion_px, "realism_rms": self.realism_rms, "sharpness": self.sharpness,
                "contrast": self.contrast}


def _rngs(seed: int) -> list[np.random.Generator]:
    """Separate streams for the bank, the generated queries and the held-out queries."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)]


def reference(train_frames: np.ndarray, heldout_frames: np.ndarray, source_frames: np.ndarray | None = None,
              seed: int = 0, patches: PatchSettings = PatchSettings()) -> Reference:
    """The real clip's side of :func:`score_video` (arguments as there)."""
    train_frames = _check_frames("train_frames", train_frames)
    heldout_frames = _check_frames("heldout_frames", heldout_frames)
    segments = (_segments(_check_frames("source_frames", source_frames, min_frames=2)) if source_frames is not None
                else _segments(train_frames, heldout_frames))
    shape = train_frames.shape[1:]
    for name, arr in (("heldout_frames", heldout_frames), ("source_frames", segments[0])):
        if arr.shape[1:] != shape:
            raise ValueError(f"{name} frames are {arr.shape[1:]}, train_frames are {shape}")
    source_flow = np.concatenate([_flow_magnitudes(s) for s in segments])
    bank_rng, _, held_rng = _rngs(seed)
    bank_index = bank_rng.integers(0, len(train_frames), size=patches.bank_size)
    bank = sample_patches(train_frames, bank_index, patches.patch, bank_rng)
    return Reference(
        frame_shape=tuple(shape), segments=tuple(segments), bank=bank, seed=seed, patches=patches,
        motion_px=float(source_flow.mean()) if len(source_flow) else math.nan,
        realism_rms=float(_patch_distances(heldout_frames, bank, patches, held_rng).mean()),
        sharpness=float(np.concatenate([_sharpness(s) for s in segments]).mean()),
        contrast=float(np.concatenate([_contrast(s) for s in segments]).mean()))


def _absolute(generated: np.ndarray, ref: Reference, bounds: list[tuple[int, int]]) -> dict[str, list[float]]:
    """The generated video's per-window absolute values (units of :meth:`Reference.values`)."""
    flow = _flow_magnitudes(generated)
    motion = [float(np.mean(flow[max(a, 1) - 1:b - 1])) if b - 1 > max(a, 1) - 1 else math.nan for a, b in bounds]
    gen_dist = _patch_distances(generated, ref.bank, ref.patches, _rngs(ref.seed)[1]).mean(axis=1)
    return {"motion_px": motion, "realism_rms": _window_means(gen_dist, bounds),
            "sharpness": _window_means(_sharpness(generated), bounds),
            "contrast": _window_means(_contrast(generated), bounds)}


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
        train_frames: uint8 ``(N, S, S, 3)``, the frames the model trained on: source of the realism patch bank.
        heldout_frames: uint8 ``(M, S, S, 3)``, real frames the model never trained on: the realism reference.
        source_frames: uint8 ``(K, S, S, 3)``, the real clip in time order: reference for motion, sharpness and
            contrast, and the frames that count as replayed. Default: ``train_frames`` and ``heldout_frames`` as two
            segments (no flow is taken across the boundary between them).
        window: Frames per window (see the module docstring for the windowing).
        seed: Seed of the patch sampling (bank, generated queries and held-out queries use separate streams).
        thresholds: Only ``replay_psnr_db`` is used here (the rest by :func:`verdict`).
        patches: Patch sampling of the realism measure.
        ref: The clip's side computed once by :func:`reference`; then the frames, ``seed`` and ``patches`` are not
            needed (those of ``ref`` are used).

    Returns:
        A JSON-ready dict. Per-window lists (one value per window, ratios against the real clip):
        ``motion``, ``realism``, ``sharpness``, ``contrast`` and ``replay`` (share of the window's frames within
        ``replay_psnr_db`` of a source frame). Scalars: ``num_frames``, ``window``, ``window_starts`` (first frame of
        each window), ``replay_share`` (over all frames), ``replay_psnr_db``, ``drift`` (dict with the four measures'
        last-window / reference-window ratios, or None), ``drift_reference_window`` (index of the reference window:
        1 when there are at least 3 windows, 0 when there are 2, None for one window; drift is None then),
        ``reference`` (the real clip's absolute values: ``motion_px`` flow magnitude per frame, ``realism_rms``
        held-out patch distance on the 0-255 scale, ``sharpness`` Laplacian variance, ``contrast`` pixel std) and
        ``absolute`` (the generated video's per-window absolute values in the same units). A ratio whose reference
        is zero is None.
    """
    generated = _check_frames("generated", generated, min_frames=2)
    ref = ref or reference(train_frames, heldout_frames, source_frames, seed=seed, patches=patches)
    if generated.shape[1:] != ref.frame_shape:
        raise ValueError(f"the real frames are {ref.frame_shape}, generated frames are {generated.shape[1:]}")
    bounds = window_bounds(len(generated), window)
    absolute = _absolute(generated, ref, bounds)
    copied = _best_psnr(generated, np.concatenate(ref.segments)) >= thresholds.replay_psnr_db
    reference_values = ref.values()
    curves = {name: [_ratio(v, reference_values[key]) for v in absolute[key]]
              for name, key in (("motion", "motion_px"), ("realism", "realism_rms"), ("sharpness", "sharpness"),
                                ("contrast", "contrast"))}
    drift, ref_window = _drift(curves, len(bounds))
    return {
        "num_frames": int(len(generated)),
        "window": int(window),
        "window_starts": [a for a, _ in bounds],
        **curves,
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


def _range_checks(scores: dict, t: Thresholds):
    """``(name, measure, value, limit, window)`` of the per-window bounds that fail: frozen, jitter, blur, noise."""
    for measure, low_name, low, high_name, high in (("motion", "frozen", t.motion_min, "jitter", t.motion_max),
                                                    ("sharpness", "blur", t.sharpness_min, "noise", t.sharpness_max)):
        values = scores[measure]
        valid = [v for v in values if v is not None]
        k = _first_window(values, lambda v, low=low: v < low)
        if k is not None:
            yield low_name, measure, min(valid), low, k
        k = _first_window(values, lambda v, high=high: v > high)
        if k is not None:
            yield high_name, measure, max(valid), high, k


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
CHECKS = ("frozen", "jitter", "mush", "blur", "noise", "drift", "replay")


def verdict(scores: dict, thresholds: Thresholds = THRESHOLDS) -> dict:
    """Pass/fail checks on the result of :func:`score_video`.

    Checks (a failure is reported under its name):

    - ``frozen``: motion below ``motion_min`` in some window.
    - ``jitter``: motion above ``motion_max`` in some window.
    - ``mush``: realism above ``realism_max`` in the last window.
    - ``blur``: sharpness below ``sharpness_min`` in some window.
    - ``noise``: sharpness above ``sharpness_max`` in some window.
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
        text = (f"Video quality ({videos} video{'s' if videos > 1 else ''} scored): every check passes (not frozen, "
                "jitter, mush, blur, noise, drift or replay).")
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
