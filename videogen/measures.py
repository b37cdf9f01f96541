"""The measurements of frames and videos that the video judge, the evaluate stage, steering and the benchmarks share:
optical flow and the warping error along it, sharpness, contrast, frame change, the one definition of a stalled
video, patch sampling (spatial, space-time and coarse) and nearest-neighbour distances.

Pure numpy and OpenCV on uint8 RGB frames ``(S, S, 3)`` / videos ``(T, S, S, 3)``. No thresholds of the judge live
here (they are :class:`videogen.video_quality.Thresholds`), so that a controller that imports this module cannot aim
at what the judge checks.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Farneback parameters (OpenCV's usual set): pyramid scale 0.5, 3 levels, 15 px averaging window, 3 iterations,
# polynomial neighbourhood 5 px with Gaussian sigma 1.2.
FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)
# Query patches per block in the brute-force nearest-neighbour search (bounds the distance matrix held in memory).
_CHUNK = 2048
# Still video, by frame-to-frame change against the clip's median change (mean absolute difference, 0-255), two
# thresholds on one scale. A video stalls while two changes in a row are under STALL_CHANGE of the median (a clip's
# own calm shots often change less than half its median; steering eases its look correction on a stall). It is
# frozen, the evaluate stage's health flag, once consecutive frames (five, its SUSTAIN_FRAMES) change under
# FROZEN_CHANGE of the median, if the clip moves at all (median change at least MOVING_CHANGE levels). The video
# judge's "frozen" check is by optical flow instead (videogen.video_quality.Thresholds.motion_min).
# A scene cut (a new shot) where FFmpeg's scene-change score reaches this: the default threshold of its scdet filter
# (FFmpeg's filter documentation: "Good values are in the [8.0, 14.0] range").
SCENE_CUT_SCORE = 10.0
STALL_CHANGE = 0.25
FROZEN_CHANGE = 0.1
MOVING_CHANGE = 0.5


# PSNR of identical images is infinite; JSON and KFP metrics cannot hold that, so it is reported as this value.
PSNR_CAP_DB = 100.0

# SSIM as in Wang et al. 2004 (and skimage with gaussian_weights=True, tf.image.ssim): 11x11 Gaussian, sigma 1.5.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
DATA_RANGE = 255.0
_SSIM_CHUNK = 32  # images per SSIM batch


def gray(frame: np.ndarray) -> np.ndarray:
    """Grayscale (BT.601 luma, OpenCV's RGB2GRAY) of a uint8 RGB frame."""
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense optical flow ``(S, S, 2)`` (px) from frame ``a`` to frame ``b`` (uint8 RGB): Farneback's polynomial-
    expansion method (G. Farneback, "Two-frame motion estimation based on polynomial expansion", SCIA 2003), as
    implemented by OpenCV, on grayscale frames."""
    return cv2.calcOpticalFlowFarneback(gray(a), gray(b), None, **FARNEBACK)


def warp_error(a: np.ndarray, b: np.ndarray, flow_ab: np.ndarray) -> float:
    """Mean absolute difference (0-255, RGB) between frame ``a`` and frame ``b`` warped back onto it along the flow
    ``a -> b``: the temporal warping error of Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018
    (without their occlusion mask; the judge compares it with the same error of the real clip, which has the same
    occlusions). Near 0 for a frozen video; high for flicker and for content that appears from nowhere."""
    height, width = flow_ab.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    warped = cv2.remap(b, grid_x + flow_ab[..., 0], grid_y + flow_ab[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    return float(np.abs(warped.astype(np.float32) - a.astype(np.float32)).mean())


def flow_and_warp(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean flow magnitude (px) and warping error (0-255) of each consecutive pair; element ``t-1`` is the pair
    ``(t-1, t)``. One flow per pair serves both."""
    count = max(len(frames) - 1, 0)
    magnitude, error = np.empty(count, np.float64), np.empty(count, np.float64)
    for t in range(1, len(frames)):
        a, b = np.asarray(frames[t - 1]), np.asarray(frames[t])
        f = flow(a, b)
        magnitude[t - 1] = float(np.sqrt(f[..., 0] ** 2 + f[..., 1] ** 2).mean())
        error[t - 1] = warp_error(a, b, f)
    return magnitude, error


def flow_magnitude(a: np.ndarray, b: np.ndarray) -> float:
    """Mean optical-flow magnitude (px) from frame ``a`` to ``b``."""
    return float(np.linalg.norm(flow(a, b), axis=-1).mean())


def sharpness(frame: np.ndarray) -> float:
    """Variance of the Laplacian of the grayscale frame: the focus measure of Pech-Pacheco et al., "Diatom
    autofocusing in brightfield microscopy: a comparative study", ICPR 2000 (3x3 Laplacian, OpenCV's ksize=1)."""
    return float(cv2.Laplacian(gray(frame), cv2.CV_64F).var())


def contrast(frames: np.ndarray) -> np.ndarray:
    """Standard deviation of all pixel values (RGB) of each frame (converted a few hundred frames at a time)."""
    out = np.empty(len(frames), dtype=np.float64)
    for i in range(0, len(frames), 256):
        flat = np.asarray(frames[i:i + 256]).reshape(-1, int(np.prod(frames.shape[1:]))).astype(np.float32)
        out[i:i + len(flat)] = flat.std(axis=1)
    return out


def frame_change(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference (0-255) of two frames."""
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def shot_ids(frames: np.ndarray) -> np.ndarray:
    """The shot each frame of ``frames`` (T, S, S, 3) belongs to, counted from 0: a new shot starts at frame t where
    the scene-change score of frames t - 1 and t reaches :data:`SCENE_CUT_SCORE`.

    The score is FFmpeg's (``get_scene_score`` in libavfilter/f_select.c and vf_scdet.c): the mean absolute difference
    of the two frames in percent of full scale (``mafd``), and the score ``min(mafd, |mafd - previous mafd|)``, so a
    steady fast motion is not a cut but a sudden jump is. FFmpeg scores the frames' planes as stored; here the RGB
    values. The first pair is compared with a previous ``mafd`` of 0, as FFmpeg does.
    """
    frames = np.asarray(frames)
    mafd = np.array([frame_change(frames[t - 1], frames[t]) for t in range(1, len(frames))], np.float64) * 100 / 256
    score = np.minimum(mafd, np.abs(np.diff(mafd, prepend=0.0)))
    return np.concatenate([[0], np.cumsum(score >= SCENE_CUT_SCORE)]).astype(np.int64)


def one_shot(frames: np.ndarray, starts: np.ndarray, before: int, horizons: tuple[int, ...]) -> dict[int, np.ndarray]:
    """For each ``k`` in ``horizons``, which ``starts`` (frame indices) have frames ``s - before`` to ``s + k`` inside
    ``frames`` and in one shot (:func:`shot_ids`): a rollout from a context of ``before + 1`` frames ending at ``s`` is
    scored ``k`` steps ahead only where the real continuation is the same shot. Reads only the frames it needs."""
    starts = np.asarray(starts, dtype=np.int64)
    inside = {k: (starts - before >= 0) & (starts + k <= len(frames) - 1) for k in horizons}
    reach = [starts[m] for m in inside.values() if m.any()]
    if not reach:
        return inside
    first = max(0, int(min(r.min() for r in reach)) - before - 1)  # one frame more: the first pair's previous mafd
    last = int(max(r.max() for r in reach)) + max(horizons)
    shots = shot_ids(np.asarray(frames[first:min(last, len(frames) - 1) + 1]))
    out = {}
    for k, mask in inside.items():
        ok = mask.copy()
        idx = np.flatnonzero(ok)
        ok[idx] = shots[starts[idx] - before - first] == shots[starts[idx] + k - first]
        out[k] = ok
    return out


def stalled(change: float, previous_change: float, clip_change: float) -> bool:
    """Whether a video stalls: its last two frame-to-frame changes are both under :data:`STALL_CHANGE` of the clip's
    median change."""
    return change < STALL_CHANGE * clip_change and previous_change < STALL_CHANGE * clip_change


def resize(frames: np.ndarray, side: int) -> np.ndarray:
    """uint8 frames ``(N, S, S, 3)`` at ``side`` px (area averaging, one frame read at a time); unchanged (a memmap
    stays a memmap) when they already are."""
    if frames.shape[1] == side:
        return frames
    out = np.empty((len(frames), side, side, 3), np.uint8)
    for i in range(len(frames)):
        out[i] = cv2.resize(np.asarray(frames[i]), (side, side), interpolation=cv2.INTER_AREA)
    return out


# ---------------------------------------------------------------------------------------------------------- patches


def sample_patches(frames: np.ndarray, frame_index: np.ndarray, patch: int, rng: np.random.Generator,
                   depth: int = 1) -> np.ndarray:
    """Patches ``(n, depth*patch*patch*3)`` float32 at uniformly random positions: for each ``frame_index`` the
    ``patch`` x ``patch`` square of frames ``frame_index .. frame_index + depth - 1`` (a space-time patch when
    ``depth`` > 1; the caller keeps the indices ``depth - 1`` frames from the end)."""
    size_y, size_x = frames.shape[1], frames.shape[2]
    if patch > min(size_y, size_x):
        raise ValueError(f"patch {patch} is larger than the frames ({size_y}x{size_x})")
    ys = rng.integers(0, size_y - patch + 1, size=len(frame_index))
    xs = rng.integers(0, size_x - patch + 1, size=len(frame_index))
    offsets = np.arange(patch)
    rows = (ys[:, None] + offsets)[:, None, :, None]
    cols = (xs[:, None] + offsets)[:, None, None, :]
    times = (np.asarray(frame_index)[:, None] + np.arange(depth))[:, :, None, None]
    patches = frames[times, rows, cols]  # (n, depth, patch, patch, 3)
    return patches.reshape(len(frame_index), -1).astype(np.float32)


def nearest_sq_distances(queries: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """Squared Euclidean distance of every query row to its nearest bank row, by brute force with
    ``||q||^2 + ||b||^2 - 2 q.b`` in float32, ``_CHUNK`` queries at a time (centre the values first, so that the
    float32 trick cancels less)."""
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


def nearest_rms(queries: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """RMS pixel distance (0-255 scale) of each query patch (uint8-valued floats) to its nearest bank patch."""
    d2 = nearest_sq_distances(queries - 127.5, bank - 127.5)
    return np.sqrt(d2 / queries.shape[1])


# ---------------------------------------------------------------------------------------------- image similarity
def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return a, b


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (any equal shape, taken as one image): ``10 log10(255^2 / MSE)``.

    Identical images have infinite PSNR; it is reported as :data:`PSNR_CAP_DB` (100 dB), and every value is capped
    there so a mean stays finite.
    """
    a, b = _check_pair(a, b)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10.0 * math.log10(DATA_RANGE**2 / mse))


def psnr_per_image(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """PSNR (dB, capped at 100) of each image in two uint8 batches ``(N, H, W, C)``: shape ``(N,)``."""
    a, b = _check_pair(a, b)
    return np.array([psnr(x, y) for x, y in zip(a, b, strict=True)], dtype=np.float64)


def _gaussian_window() -> np.ndarray:
    x = np.arange(SSIM_WINDOW, dtype=np.float64) - (SSIM_WINDOW - 1) / 2.0
    w = np.exp(-(x**2) / (2.0 * SSIM_SIGMA**2))
    return w / w.sum()


def _filter_valid(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Separable 2-D 'valid' filtering of (N, H, W, C) over H and W."""
    n = len(w)
    h = x.shape[1] - n + 1
    out = sum(w[k] * x[:, k:k + h] for k in range(n))
    wd = x.shape[2] - n + 1
    return sum(w[k] * out[:, :, k:k + wd] for k in range(n))


def ssim_per_image(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM of each image in two uint8 batches ``(N, H, W, C)``: shape ``(N,)``.

    Wang et al. 2004: 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, data range 255, no sample-covariance
    correction, the SSIM map over the 'valid' window positions, averaged over positions and channels (what
    ``tf.image.ssim(a, b, 255)`` and skimage with ``gaussian_weights=True`` compute). Images need H, W >= 11.
    """
    a, b = _check_pair(a, b)
    if a.ndim != 4 or min(a.shape[1:3]) < SSIM_WINDOW:
        raise ValueError(f"ssim needs (N, H, W, C) images at least {SSIM_WINDOW} px, got {a.shape}")
    w = _gaussian_window()
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    scores = []
    for i in range(0, len(a), _SSIM_CHUNK):
        x = a[i:i + _SSIM_CHUNK].astype(np.float64)
        y = b[i:i + _SSIM_CHUNK].astype(np.float64)
        mx, my = _filter_valid(x, w), _filter_valid(y, w)
        sxx = _filter_valid(x * x, w) - mx * mx
        syy = _filter_valid(y * y, w) - my * my
        sxy = _filter_valid(x * y, w) - mx * my
        ssim_map = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
        scores.append(ssim_map.mean(axis=(1, 2, 3)))
    return np.concatenate(scores) if scores else np.zeros(0)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two uint8 images ``(H, W, C)`` (or the mean over two batches ``(N, H, W, C)``); see ssim_per_image."""
    a, b = _check_pair(a, b)
    if a.ndim == 3:
        a, b = a[None], b[None]
    return float(np.mean(ssim_per_image(a, b)))


class PatchIndex:
    """Every ``patch`` x ``patch`` patch of a set of frames (on a grid of ``stride`` px), searchable for the nearest
    one to a query patch: an approximate search (FLANN randomized k-d trees, Muja and Lowe, VISAPP 2009, as OpenCV
    ships it) on the patches' first ``dims`` principal components finds ``candidates`` per query, and the exact RMS
    distance over all values picks among them. Near-duplicates, which are what copying means, are found reliably:
    they sit close in every projection."""

    def __init__(self, frames: np.ndarray, patch: int, stride: int = 1, dims: int = 16, candidates: int = 4,
                 seed: int = 0):
        self.frames, self.patch, self.candidates = frames, patch, candidates
        grid = np.arange(0, frames.shape[1] - patch + 1, stride)
        f, y, x = np.meshgrid(np.arange(len(frames)), grid, grid, indexing="ij")
        self.where = np.stack([f.ravel(), y.ravel(), x.ravel()], axis=1)
        rng = np.random.default_rng(seed)
        sample = self._gather(self.where[rng.integers(0, len(self.where), size=min(4096, len(self.where)))])
        self.mean = sample.mean(axis=0)
        _, _, vt = np.linalg.svd(sample - self.mean, full_matrices=False)
        self.basis = np.ascontiguousarray(vt[:dims].T)
        coords = np.concatenate([self._project(self._gather(self.where[i:i + 65536]))
                                 for i in range(0, len(self.where), 65536)])
        cv2.setRNGSeed(seed)  # FLANN draws its trees from OpenCV's generator: the same index for the same seed
        self.index = cv2.flann_Index(coords, dict(algorithm=1, trees=4))

    def _gather(self, where: np.ndarray) -> np.ndarray:
        offsets = np.arange(self.patch)
        rows = (where[:, 1, None] + offsets)[:, :, None]
        cols = (where[:, 2, None] + offsets)[:, None, :]
        return self.frames[where[:, 0, None, None], rows, cols].reshape(len(where), -1).astype(np.float32)

    def _project(self, patches: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray((patches - self.mean) @ self.basis, dtype=np.float32)

    def nearest_rms(self, queries: np.ndarray) -> np.ndarray:
        """RMS distance (0-255 scale) of each query patch to the nearest indexed patch found."""
        found, _ = self.index.knnSearch(self._project(queries), self.candidates, params=dict(checks=32))
        out = np.empty(len(queries), np.float64)
        for start in range(0, len(queries), 4096):
            rows = found[start:start + 4096]
            cand = self._gather(self.where[rows.ravel()]).reshape(len(rows), self.candidates, -1)
            diff = cand - queries[start:start + 4096, None, :]
            out[start:start + len(rows)] = np.sqrt((diff * diff).mean(axis=2)).min(axis=1)
        return out
