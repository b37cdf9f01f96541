"""Videos to prove the video judge with (videogen.video_quality): real footage cut into training, held-out and test
frames, and made-up failures of it, each built to fail one measure. Used by the judge's tests and by
``bench/quality/calibrate_judge.py``, which calibrates the judge's thresholds on the same cuts."""

from __future__ import annotations

import cv2
import numpy as np


def folds(frames: np.ndarray):
    """``(fold, train, heldout, test)``: the first 60% of the clip trains; of the rest, 60-70% and 90-100% are held
    out and 70-90% is the test segment (so that held-out and test frames lie as far from the training frames); the
    same on the clip played backwards."""
    n = len(frames)
    a, b, c = int(0.6 * n), int(0.7 * n), int(0.9 * n)
    for fold, clip in (("forward", frames), ("backward", frames[::-1])):
        yield (fold, np.ascontiguousarray(clip[:a]), np.ascontiguousarray(np.concatenate([clip[a:b], clip[c:]])),
               np.ascontiguousarray(clip[b:c]))


def ping_pong(test: np.ndarray, length: int) -> np.ndarray:
    """The test frames played forwards, backwards, forwards ... to ``length`` frames (real motion all along)."""
    cycle = np.concatenate([np.arange(len(test)), np.arange(len(test) - 2, 0, -1)])
    return test[cycle[np.arange(length) % len(cycle)]]


def quilt(train: np.ndarray, length: int, rng: np.random.Generator, patch: int = 8) -> np.ndarray:
    """Frames tiled from random ``patch`` x ``patch`` training patches, new ones every frame."""
    side = train.shape[1]
    out = np.empty((length, side, side, 3), np.uint8)
    for t in range(length):
        for y in range(0, side, patch):
            for x in range(0, side, patch):
                f, yy, xx = rng.integers(len(train)), rng.integers(side - patch + 1), rng.integers(side - patch + 1)
                out[t, y:y + patch, x:x + patch] = train[f, yy:yy + patch, xx:xx + patch]
    return out


# What each made-up video is meant to fail: it must fail at least one of these checks.
MEANT_TO_FAIL = {"frozen": {"frozen", "still"}, "noise": {"flicker", "unreal motion", "noise", "mush"},
                 "shuffled": {"jitter", "flicker", "unreal motion"}, "quilt": {"layout", "unreal motion", "mush", "pasted"},
                 "replay": {"replay", "pasted"}, "fade": {"faded", "incomplete", "still"}}


def fakes(train: np.ndarray, test: np.ndarray, clip: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Three windows' worth of the test segment (played to and fro: ``real (to and fro)``) and made-up failures of it:
    ``frozen`` (its first frame repeated), ``noise`` (Gaussian noise, sigma 12), ``shuffled`` (frames in random
    order), ``quilt`` (:func:`quilt` of the training frames), ``replay`` (training frames played from the start) and
    ``fade`` (fading to the clip's mean frame)."""
    rng = np.random.default_rng(seed)
    video = ping_pong(test, 3 * len(test))
    n = len(video)
    alpha = np.linspace(0, 1, n)[:, None, None, None]
    return {"real (to and fro)": video, "frozen": np.repeat(video[:1], n, axis=0),
            "noise": np.clip(video.astype(np.float32) + rng.normal(0, 12, video.shape), 0, 255).astype(np.uint8),
            "shuffled": video[rng.permutation(n)], "quilt": quilt(train, n, rng),
            "replay": train[np.arange(n) % len(train)],
            "fade": ((1 - alpha) * video + alpha * clip.astype(np.float32).mean(axis=0)).round().astype(np.uint8)}


def balls_clip(num_frames: int = 240, size: int = 64, balls: int = 6, seed: int = 0,
               vanish_from: int | None = None) -> np.ndarray:
    """Several moving objects on a still, textured background: ``balls`` coloured discs (radius 5 px at 64 px)
    bouncing off the borders at 1-2 px per frame over smooth coloured noise. With ``vanish_from`` the discs are gone
    from that frame on (the background alone): a scene whose moving objects vanish."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1, (size // 8, size // 8, 3)).astype(np.float32)
    background = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    background = np.clip(110 + 35 * background, 0, 255)
    radius = max(2, size // 13)
    pos = rng.uniform(radius, size - radius, (balls, 2))
    vel = rng.uniform(1.0, 2.0, (balls, 2)) * rng.choice([-1, 1], (balls, 2))
    colours = rng.uniform(20, 250, (balls, 3))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    for t in range(num_frames):
        img = background.copy()
        if vanish_from is None or t < vanish_from:
            for (y, x), colour in zip(pos, colours):
                cover = np.clip(radius + 0.5 - np.hypot(yy - y, xx - x), 0, 1)[..., None]  # anti-aliased disc
                img = (1 - cover) * img + cover * colour
        frames[t] = np.round(img).astype(np.uint8)
        pos += vel
        for axis in range(2):
            low, high = pos[:, axis] < radius, pos[:, axis] > size - radius
            vel[low | high, axis] *= -1
            pos[:, axis] = np.clip(pos[:, axis], radius, size - radius)
    return frames


def vanish_video(num_frames: int, window: int) -> np.ndarray:
    """Three windows of :func:`balls_clip` (of ``num_frames`` frames) from its test segment on (70%): the discs move
    through the first window and are gone from the second on."""
    start = int(0.7 * num_frames)
    return balls_clip(start + 3 * window, vanish_from=start + window)[start:]
