"""Stage "evaluate": how good is a trained next-frame model, in numbers, against the copy-last-frame baseline.

Reads a dataset dir (``frames.npy``, ``dataset.json``), a model dir (``generator.keras``, ``model.json``) and, when
given, a generated dir (``frames.npy`` (T, V, S, S, 3), ``generation.json``). Writes into ``output_dir``:
``metrics.json`` (full detail; :func:`evaluate` returns its flat ``scalars``; the verdict both as the sentence
``verdict`` and as fields, ``assessment``, see :func:`assess`), ``report.html`` and ``summary.md`` (see
``videogen.report``, which colours the verdict from ``assessment``).

What is measured (all on uint8 frames, data range 255):
- One-step quality on the validation pairs: PSNR/SSIM of the model's prediction of frame i+1 from frames
  i-K+1..i against the real frame i+1, and the same for the copy-last-frame baseline (predict frame i+1 = frame i).
  A model that does not beat copying has learned nothing about motion, and the verdict says so.
- Rollout quality: from ``num_starts`` validation start frames the model is fed its own (uint8-rounded) predictions;
  the k-th predicted frame is compared with the real frame start+k, for each k in ``rollout_steps``; the copy
  baseline repeats the start frame. Only starts with start+k inside the data count for k, and only where the real
  continuation is the same shot as the context (no scene cut between them, :func:`videogen.measures.one_shot`): no
  generator can predict a frame of the next shot, so those figures would score the cut, not the model. One-step
  pairs across a cut are left out the same way.
- Long-rollout health of the generated video against the training frames: per-frame mean, standard deviation,
  mean absolute change between consecutive frames and saturated fraction, and the flags "collapsed", "frozen" and
  "exploded" with the frame where each starts (see :func:`long_rollout_health` for the thresholds and why).
- Video quality of the generated videos against the clip (:mod:`videogen.video_quality`, section ``video_quality``
  of metrics.json, see :func:`video_quality`): per 100-frame window motion, realism, sharpness, contrast and replay,
  drift, and the verdict (frozen, jitter, mush, blur, noise, drift, replay, each with the frame it starts). The
  training frames are the train block's frames, the held-out frames the val block's, the source the whole clip. The
  copy-last-frame and Video Textures baselines (from video 0's start frame, as long as the videos) are scored the same
  way, and the videos' diversity is measured when there are several.

  Cost caps (scoring costs about 4 s per 2000 frames per video at 64 px, and grows with the pixels: ~67 s at 256 px):
  at most :data:`VQ_MAX_VIDEOS` (4) videos are scored (the first ones; the first :data:`VQ_MAX_DIVERSITY_VIDEOS` (8)
  count for diversity); all frames, clip included, are halved in size (area averaging) while the scored videos and
  the two baselines hold more than :data:`VQ_PIXEL_BUDGET` pixels (3 videos of 2000 frames at 64 px), but not below
  64 px: the default 2000-frame video of 256 px frames is scored at 64 px, a 200-frame one at 128 px. Past that the
  time grows with the length (about 2 s per 1000 frames per video at 64 px, plus the replay search against the
  clip). Video Textures plays the last :data:`VQ_TEXTURES_MAX_FRAMES` (1000) training frames (its frame-distance
  matrix is quadratic). What was applied is in ``video_quality``: ``scored_size``, ``videos_scored``, ``cost``,
  ``seconds``.

Evaluation is deterministic: dropout off and BatchNorm in inference mode (``model(x, training=False)``), start frames
drawn from ``settings.seed``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from videogen import artifacts, hardware, measures
from videogen import video_quality as vq
from videogen.errors import InputError
from videogen.frames import context_indices, make_step, rollout_all, stack_context
from videogen.measures import PSNR_CAP_DB, psnr, psnr_per_image, ssim, ssim_per_image  # noqa: F401 (names of this stage)
from videogen.verdict import BEATS_COPY_MARGIN_DB, assess, verdict  # noqa: F401 (names of this stage)

log = logging.getLogger("videogen.evaluate")

# Health thresholds, all relative to statistics of the training frames (documented in long_rollout_health).
COLLAPSE_STD_FACTOR = 0.25  # collapsed: frame std < 0.25 x the 5th percentile of training frame std
FROZEN_CHANGE_FACTOR = measures.FROZEN_CHANGE  # frozen: consecutive change < 0.1 x the median training change ...
MOVING_SOURCE_MIN_CHANGE = measures.MOVING_CHANGE  # ... and only if the source moves (median change >= 0.5 levels)
SATURATED_LOW, SATURATED_HIGH = 2, 253  # a channel value <= 2 or >= 253 counts as saturated
EXPLODED_MIN_FRACTION = 0.5  # exploded: saturated fraction > max(0.5, halfway from the training p99 to 1)
SUSTAIN_FRAMES = 5  # a flag needs its condition on this many consecutive frames (one bad frame is not a trend)


# Video quality (videogen.video_quality) and what caps its cost; see the module docstring.
VQ_WINDOW = 100  # frames per window of the per-window curves
VQ_MAX_VIDEOS = 4  # generated videos scored (the first ones); the rest only count for diversity
VQ_MAX_DIVERSITY_VIDEOS = 8  # videos compared for diversity (the first ones)
VQ_PIXEL_BUDGET = 3 * 2000 * 64 * 64  # frame pixels scored (videos + 2 baselines) before frames are halved ...
VQ_MIN_SIDE = 64  # ... down to this side at least
VQ_TEXTURES_MAX_FRAMES = 1000  # the Video Textures baseline plays the last this-many training frames

_TRAIN_STATS_MAX_FRAMES = 1000
_SERIES_MAX_VIDEOS = 8
_CHUNK = 32


def _parse_steps(value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        parts = [p for p in value.replace(" ", "").split(",") if p]
    else:
        parts = list(value)
    try:
        steps = tuple(sorted({int(p) for p in parts}))
    except (TypeError, ValueError):
        raise InputError(f"rollout_steps must be positive integers like 1,5,10,20, got {value!r}") from None
    if not steps or steps[0] < 1:
        raise InputError(f"rollout_steps must be positive integers like 1,5,10,20, got {value!r}")
    return steps


@dataclass(frozen=True)
class EvaluateSettings:
    """Settings of the evaluate stage (field names are the CLI flags and component parameters)."""

    rollout_steps: tuple[int, ...] = field(
        default=(1, 5, 10, 20),
        metadata={"help": "rollout lengths k to score (comma-separated, e.g. 1,5,10,20): the k-th fed-back "
                          "prediction against the real frame start+k"})
    num_starts: int = field(
        default=8, metadata={"help": "validation start frames to roll out from (preferring starts from which the "
                                     "longest k stays inside the data)"})
    seed: int = field(default=0, metadata={"help": "seed for drawing the rollout start frames"})
    max_pairs: int = field(
        default=256, metadata={"help": "at most this many validation pairs (evenly spaced) for one-step metrics"})
    batch_size: int = field(default=16, metadata={"help": "frames per generator call"})
    control_frames: int = field(
        default=500, metadata={"help": "frames of each null control (last frame + noise, untrained generator) and of "
                                       "the model alone, generated from video 0's start through the same path and "
                                       "steering and judged beside the model (0 = no controls)"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "rollout_steps", _parse_steps(self.rollout_steps))
        for name in ("num_starts", "max_pairs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
            object.__setattr__(self, name, int(getattr(self, name)))
        if int(self.control_frames) < 0:
            raise InputError(f"control_frames must be 0 (no controls) or more, got {self.control_frames}")
        object.__setattr__(self, "control_frames", int(self.control_frames))
        object.__setattr__(self, "seed", int(self.seed))


# ----------------------------------------------------------------------------------------------------------- health
def frame_statistics(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame statistics of a uint8 sequence ``(T, H, W, C)``.

    Returns:
        ``mean`` and ``std`` of pixel values (T,), ``saturated`` fraction of channel values <= 2 or >= 253 (T,), and
        ``change``: mean absolute difference between frame t and t+1 (T-1,), all in levels of 255.
    """
    t = len(frames)
    mean, std, sat = np.zeros(t), np.zeros(t), np.zeros(t)
    change = np.zeros(max(t - 1, 0))
    previous = None
    for i in range(0, t, _CHUNK):
        chunk = np.asarray(frames[i:i + _CHUNK]).astype(np.float32)
        flat = chunk.reshape(len(chunk), -1)
        mean[i:i + len(chunk)] = flat.mean(axis=1)
        std[i:i + len(chunk)] = flat.std(axis=1)
        sat[i:i + len(chunk)] = ((flat <= SATURATED_LOW) | (flat >= SATURATED_HIGH)).mean(axis=1)
        seq = chunk if previous is None else np.concatenate([previous, chunk])
        diffs = np.abs(np.diff(seq, axis=0)).reshape(len(seq) - 1, -1).mean(axis=1)
        start = i if previous is None else i - 1
        change[start:start + len(diffs)] = diffs
        previous = chunk[-1:]
    return {"mean": mean, "std": std, "saturated": sat, "change": change}


def training_reference(frames: np.ndarray, first_frame: int, end_frame: int) -> dict[str, float]:
    """Statistics of the training frames ``frames[first_frame:end_frame]`` that the health thresholds are relative to.

    At most 1000 evenly spaced frames (each with its successor, for the change) are read.
    """
    count = end_frame - first_frame
    if count < 2:
        raise InputError(f"the training block has {count} frames; health checks need at least 2")
    if count - 1 <= _TRAIN_STATS_MAX_FRAMES:
        idx = np.arange(first_frame, end_frame - 1)
    else:
        idx = np.unique(np.linspace(first_frame, end_frame - 2, _TRAIN_STATS_MAX_FRAMES).round().astype(int))
    std, mean, sat, change = [], [], [], []
    for i in range(0, len(idx), _CHUNK):
        sel = idx[i:i + _CHUNK]
        a = np.asarray(frames[sel]).astype(np.float32)
        b = np.asarray(frames[sel + 1]).astype(np.float32)
        flat = a.reshape(len(a), -1)
        mean.append(flat.mean(axis=1))
        std.append(flat.std(axis=1))
        sat.append(((flat <= SATURATED_LOW) | (flat >= SATURATED_HIGH)).mean(axis=1))
        change.append(np.abs(b - a).reshape(len(a), -1).mean(axis=1))
    std_a, mean_a, sat_a, change_a = (np.concatenate(x) for x in (std, mean, sat, change))
    return {
        "frames_used": int(len(idx)),
        "mean_median": float(np.median(mean_a)), "mean_p5": float(np.percentile(mean_a, 5)),
        "mean_p95": float(np.percentile(mean_a, 95)),
        "std_median": float(np.median(std_a)), "std_p5": float(np.percentile(std_a, 5)),
        "change_median": float(np.median(change_a)),
        "saturated_p99": float(np.percentile(sat_a, 99)),
    }


def _sustained_start(condition: np.ndarray, sustain: int) -> int | None:
    """First index t where ``condition`` holds on t..t+sustain-1 (or on all of a sequence shorter than sustain)."""
    n = len(condition)
    if n == 0:
        return None
    need = min(sustain, n)
    run = 0
    for t, bad in enumerate(condition):
        run = run + 1 if bad else 0
        if run >= need:
            return t - need + 1
    return None


def _flag(condition, per_video: list[dict], sustain: int) -> dict[str, Any]:
    """One health flag over the videos: where ``condition`` (None = not checked) first holds ``sustain`` frames."""
    starts = [] if condition is None else [_sustained_start(condition(s), sustain) for s in per_video]
    hit = [(v, t) for v, t in enumerate(starts) if t is not None]
    return {"flagged": bool(hit), "frame": min(t for _, t in hit) if hit else None,
            "videos": [{"video": v, "frame": int(t)} for v, t in hit], "checked": condition is not None}


def long_rollout_health(generated: np.ndarray, reference: dict[str, float],
                        sustain: int = SUSTAIN_FRAMES) -> dict[str, Any]:
    """Health flags of a generated video against the training frames' statistics.

    Thresholds (levels of 255; all relative to the training frames, so a dark or static source does not trip them):
    - collapsed (contrast gone): frame std < 0.25 x the 5th percentile of the training frames' std. A quarter of the
      contrast of the least contrasty normal frames: well above a pix2pix rollout gone to flat mush, well below any
      real footage.
    - frozen: mean absolute change between consecutive frames < 0.1 x the training frames' median change, checked only
      when the source moves (median change >= 0.5 levels); the change of frame t is to frame t+1, so the flag's frame
      is the last one that still differs.
    - exploded (saturated): fraction of channel values <= 2 or >= 253 above max(0.5, p99 + (1 - p99) / 2), p99 being
      the training frames' 99th percentile: most pixels pinned at 0/255, and well above what the footage itself has
      (a letterboxed or overexposed source raises the bar).
    Each flag needs its condition on ``sustain`` (5) consecutive frames: one dark or duplicated frame is not a trend.

    Args:
        generated: uint8 ``(T, V, S, S, 3)`` (time-major, V videos) or ``(T, S, S, 3)``.
        reference: from :func:`training_reference`.
        sustain: consecutive frames a condition must hold.

    Returns:
        ``thresholds``, per-frame ``series`` (``{"std": [per-frame list of video 0, of video 1, ...]}``, the first
        8 videos) and, per flag, ``{"flagged", "frame", "videos"}``
        where ``frame`` is the earliest start over the videos (0 = first generated frame) or None.
    """
    gen = np.asarray(generated)  # a memmap stays a view: frames are read per chunk below
    if gen.ndim == 4:
        gen = gen[:, None]
    if gen.ndim != 5 or gen.shape[-1] != 3:
        raise InputError(f"generated frames must be (T, V, S, S, 3), got shape {tuple(gen.shape)}")
    moving = reference["change_median"] >= MOVING_SOURCE_MIN_CHANGE
    thresholds = {
        "collapsed_std_below": COLLAPSE_STD_FACTOR * reference["std_p5"],
        "frozen_change_below": FROZEN_CHANGE_FACTOR * reference["change_median"] if moving else None,
        "exploded_saturated_above": max(EXPLODED_MIN_FRACTION,
                                        reference["saturated_p99"] + (1.0 - reference["saturated_p99"]) / 2.0),
        "sustain_frames": sustain,
    }
    per_video = [frame_statistics(gen[:, v]) for v in range(gen.shape[1])]
    flags: dict[str, dict[str, Any]] = {}
    conditions = {
        "collapsed": lambda s: s["std"] < thresholds["collapsed_std_below"],
        "frozen": (lambda s: s["change"] < thresholds["frozen_change_below"]) if moving else None,
        "exploded": lambda s: s["saturated"] > thresholds["exploded_saturated_above"],
    }
    for name, condition in conditions.items():
        flags[name] = _flag(condition, per_video, sustain)
    series = {key: [np.round(s[key], 4).tolist() for s in per_video[:_SERIES_MAX_VIDEOS]]
              for key in ("mean", "std", "saturated", "change")}
    return {"frames": int(gen.shape[0]), "videos": int(gen.shape[1]), "reference": reference,
            "thresholds": thresholds, "flags": flags, "series": series}


# ------------------------------------------------------------------------------------------------------- prediction
def rollout_frames(model, context: np.ndarray, steps: int, batch_size: int = 16, step_fn=None) -> np.ndarray:
    """Feed the model its own uint8-rounded predictions (dropout off): ``steps`` new frames (steps, B, S, S, 3) from
    contexts ``(B, K, S, S, 3)`` (oldest first), as a generated video would be stored."""
    return rollout_all(model, context, steps, batch_size, step_fn)


def _contexts(frames: np.ndarray, last_indices: np.ndarray, k: int) -> np.ndarray:
    return np.stack([np.asarray(frames[context_indices(int(i), 0, k)]) for i in last_indices])


def _summary(values: np.ndarray) -> float:
    return round(float(np.mean(values)), 4)


def _one_step(model, frames, pairs: np.ndarray, k: int, batch_size: int, step=None) -> tuple[dict, dict]:
    """One-step PSNR/SSIM of the model and of copying on ``pairs``, and up to 4 predictions for the report's strip."""
    psnr_model, psnr_copy, ssim_model, ssim_copy = [], [], [], []
    strip_predictions = {}
    step = step or make_step(model, k, deterministic=True)
    strip_at = set(pairs[np.unique(np.linspace(0, len(pairs) - 1, min(4, len(pairs))).round().astype(int))].tolist())
    for i in range(0, len(pairs), batch_size):
        sel = pairs[i:i + batch_size]
        pred = rollout_frames(model, _contexts(frames, sel, k), 1, batch_size, step)[0]
        real = np.asarray(frames[sel + 1])
        last = np.asarray(frames[sel])
        psnr_model.append(psnr_per_image(pred, real))
        psnr_copy.append(psnr_per_image(last, real))
        ssim_model.append(ssim_per_image(pred, real))
        ssim_copy.append(ssim_per_image(last, real))
        for j, p in enumerate(sel.tolist()):
            if p in strip_at:
                strip_predictions[p] = pred[j]
    result = {
        "pairs": int(len(pairs)), "first_pair": int(pairs[0]), "last_pair": int(pairs[-1]),
        "psnr_model": _summary(np.concatenate(psnr_model)), "psnr_copy": _summary(np.concatenate(psnr_copy)),
        "ssim_model": _summary(np.concatenate(ssim_model)), "ssim_copy": _summary(np.concatenate(ssim_copy)),
    }
    result["psnr_gain"] = round(result["psnr_model"] - result["psnr_copy"], 4)
    return result, strip_predictions


def _choose_starts(candidates: np.ndarray, reach: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` starts, preferring those from which the longest rollout is scored (``reach``: per candidate, the
    longest scored horizon), then the next longest, and so on; at random within each."""
    chosen = np.zeros(0, int)
    for horizon in sorted(set(reach.tolist()), reverse=True):
        tier = candidates[reach == horizon]
        take = min(count - len(chosen), len(tier))
        if take <= 0:
            break
        chosen = np.concatenate([chosen, rng.choice(tier, size=take, replace=False)])
    return np.sort(chosen.astype(int))


def _reach(frames, candidates: np.ndarray, k_context: int, steps: tuple[int, ...]) -> np.ndarray:
    """Per candidate start, the longest of ``steps`` whose real continuation is inside the data and in the start's
    shot (0: none)."""
    scored = measures.one_shot(frames, candidates, k_context - 1, steps)
    reach = np.zeros(len(candidates), int)
    for k in sorted(steps):
        reach[scored[k]] = k
    return reach


def _rollout_quality(model, frames, starts: np.ndarray, k_context: int, steps: tuple[int, ...],
                     batch_size: int, step=None) -> tuple[list[dict], np.ndarray]:
    longest = max(steps)
    rolled = rollout_frames(model, _contexts(frames, starts, k_context), longest, batch_size, step)  # (L,B,S,S,3)
    scored = measures.one_shot(frames, starts, k_context - 1, steps)
    rows = []
    for k in steps:
        ok = np.flatnonzero(scored[k])
        row: dict[str, Any] = {"k": int(k), "starts": int(len(ok))}
        if len(ok):
            real = np.asarray(frames[starts[ok] + k])
            copy = np.asarray(frames[starts[ok]])
            pred = rolled[k - 1, ok]
            row.update(psnr_model=_summary(psnr_per_image(pred, real)), psnr_copy=_summary(psnr_per_image(copy, real)),
                       ssim_model=_summary(ssim_per_image(pred, real)), ssim_copy=_summary(ssim_per_image(copy, real)))
        else:
            row.update(psnr_model=None, psnr_copy=None, ssim_model=None, ssim_copy=None)
        rows.append(row)
    return rows, rolled


def scalar_metrics(metrics: dict) -> dict[str, float]:
    """The flat ``{name: float}`` view of metrics.json for KFP ``Metrics.log_metric`` (also metrics["scalars"])."""
    out: dict[str, float] = {}
    one = metrics["one_step"]
    for key in ("psnr_model", "psnr_copy", "ssim_model", "ssim_copy", "psnr_gain"):
        out[f"one_step_{key}"] = float(one[key])
    for row in metrics["rollout"]:
        for key in ("psnr_model", "psnr_copy", "ssim_model", "ssim_copy"):
            if row[key] is not None:
                out[f"rollout{row['k']}_{key}"] = float(row[key])
    health = metrics.get("health")
    if health is not None:
        for name, flag in health["flags"].items():
            out[f"health_{name}"] = float(flag["flagged"])
            out[f"health_{name}_frame"] = float(flag["frame"]) if flag["frame"] is not None else -1.0
    out.update(video_quality_scalars(metrics.get("video_quality")))
    for key, value in metrics.get("final_losses", {}).items():
        out[f"final_{key}"] = float(value)
    model = metrics.get("model", {})
    if isinstance(model.get("train_images_per_s"), (int, float)):
        out["train_images_per_s"] = float(model["train_images_per_s"])
    generation = metrics.get("generation") or {}
    if isinstance(generation.get("frames_per_s"), (int, float)):
        out["generation_frames_per_s"] = float(generation["frames_per_s"])
    return out


def history_records(history: Any) -> list[dict]:
    """The loss history of model.json (``{"phases": [...], "points": [{step, gen_gan, ...}]}``, or the bare list
    of points) as a list of records; anything else gives an empty list."""
    points = history.get("points") if isinstance(history, dict) else history
    return [r for r in points if isinstance(r, dict)] if isinstance(points, list) else []


def _final_losses(records: list[dict]) -> dict[str, float]:
    final = {}
    for key in ("gen_gan", "gen_l1", "disc"):
        values = [r[key] for r in records if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        if values:
            final[key] = round(float(np.mean(values[-5:])), 6)  # mean of the last 5 records: less noisy
    return final


# ------------------------------------------------------------------------------------------------------------- stage
def evaluate(dataset_dir: Path, model_dir: Path, output_dir: Path, settings: EvaluateSettings | None = None,
             generated_dir: Path | None = None) -> dict[str, float]:
    """Score a next-frame model against the copy-last-frame baseline and write metrics.json, report.html, summary.md.

    Args:
        dataset_dir: the prepare stage's output; each source video's val block is scored (metrics.json ``videos``).
        model_dir: the train stage's output (``generator.keras``, ``model.json``).
        output_dir: where ``metrics.json``, ``report.html`` and ``summary.md`` go (created).
        settings: evaluation settings (defaults if None).
        generated_dir: optional generate stage output; its videos get the long-rollout health checks and the
            video-quality scores (with the baselines and diversity), and video 0 is previewed in the report.

    Returns:
        The flat ``{name: float}`` metrics for KFP ``Metrics.log_metric`` and the CLI (names like
        ``one_step_psnr_model``, ``rollout10_psnr_copy``, ``health_frozen_frame``, ``video_ok``, ``motion_min``;
        see :func:`scalar_metrics` and :func:`video_quality_scalars`).
        They are also ``metrics.json["scalars"]``; metrics.json holds the full detail (settings, per-k rows with
        start counts, health thresholds and per-frame series, verdict).

    Raises:
        InputError: a directory is missing its files, they are malformed, or image sizes do not match.
    """
    settings = settings or EvaluateSettings()
    started = time.monotonic()
    dataset = artifacts.open_dataset(Path(dataset_dir))
    videos = dataset.videos
    model, model_info, k_context = _open_model(Path(model_dir), dataset.image_size)

    scored = _score_videos(model, videos, k_context, settings)
    one_step, rollout = _totals(scored)
    first = scored[0]
    generated = _generated(generated_dir, dataset, _Subject(model, model_info, Path(model_dir), first, settings))

    records = history_records(model_info.get("history"))
    metrics: dict[str, Any] = {
        "settings": dataclasses.asdict(settings),
        "psnr_cap_db": PSNR_CAP_DB,
        "deterministic": True,
        "dataset": {"dir": str(dataset.dir), "image_size": dataset.image_size, "num_frames": len(dataset.frames),
                    "videos": len(videos), **{key: dataset.info.get(key) for key in ("fps", "train", "val", "source")}},
        "model": {"dir": str(model_dir), "context_frames": k_context, "steps": model_info.get("steps"),
                  "residual": model_info.get("residual"), "train_images_per_s": model_info.get("train_images_per_s")},
        "generation": generated.summary(),
        "one_step": one_step,
        "rollout_starts": first.starts.tolist(),
        "rollout": rollout,
        "videos": [score.row() for score in scored],
        "health": generated.health,
        "video_quality": generated.quality,
        "final_losses": _final_losses(records),
    }
    metrics["assessment"] = assess(one_step, rollout, generated.health, generated.quality)
    metrics["verdict"] = metrics["assessment"]["text"]
    metrics["eval_seconds"] = round(time.monotonic() - started, 3)
    metrics["scalars"] = scalar_metrics(metrics)
    _write(Path(output_dir), metrics, dataset, first, model_info, generated, records)
    log.info("%s (%.1f s)", metrics["verdict"], metrics["eval_seconds"])
    return dict(metrics["scalars"])


@dataclass
class _VideoScore:
    """The scores of one source video's validation block (indices counted from the video's first frame)."""

    video: artifacts.Dataset
    one_step: dict
    strip_predictions: dict
    starts: np.ndarray
    rollout: list[dict]
    rolled: np.ndarray

    def row(self) -> dict:
        """The video's row of metrics.json ``videos``: its name, frames, blocks and scores."""
        info = self.video.info
        return {"name": self.video.name, "source": info.get("source"), "num_frames": len(self.video.frames),
                "first_frame": self.video.first_frame, "fps": info.get("fps"), "train": info.get("train"),
                "val": info.get("val"), "one_step": self.one_step, "rollout_starts": self.starts.tolist(),
                "rollout": self.rollout}


def _score_videos(model, videos: list[artifacts.Dataset], k_context: int,
                  settings: EvaluateSettings) -> list[_VideoScore]:
    """Each source video's validation block scored on its own (a share of the pair and start budgets each)."""
    share = _share(settings, len(videos))
    return [_VideoScore(video, *_score(model, video, video.block("val"), k_context, share)) for video in videos]


def _share(settings: EvaluateSettings, videos: int) -> EvaluateSettings:
    """The settings one of ``videos`` source videos is scored with: the pair and start budgets split between them
    (at least one each), so evaluating many videos costs about as much as one."""
    if videos == 1:
        return settings
    return dataclasses.replace(settings, max_pairs=-(-settings.max_pairs // videos),
                               num_starts=-(-settings.num_starts // videos))


def _weighted_means(rows: list[dict], weight: str, keys: tuple[str, ...]) -> dict[str, float | None]:
    """Each of ``keys`` averaged over ``rows`` weighted by ``rows[weight]`` (a mean over all their images)."""
    out: dict[str, float | None] = {}
    for key in keys:
        pairs = [(row[key], row[weight]) for row in rows if row.get(key) is not None and row.get(weight)]
        total = sum(w for _, w in pairs)
        out[key] = round(sum(v * w for v, w in pairs) / total, 4) if total else None
    return out


def _totals(scored: list[_VideoScore]) -> tuple[dict, list[dict]]:
    """The one-step and per-k rollout scores over all videos (one video's own for a single video)."""
    if len(scored) == 1:
        return scored[0].one_step, scored[0].rollout
    keys = ("psnr_model", "psnr_copy", "ssim_model", "ssim_copy")
    rows = [s.one_step for s in scored]
    one_step = {"pairs": sum(r["pairs"] for r in rows), "videos": len(rows), **_weighted_means(rows, "pairs", keys)}
    one_step["psnr_gain"] = round(one_step["psnr_model"] - one_step["psnr_copy"], 4)
    rollout = []
    for i, first_row in enumerate(scored[0].rollout):
        per_k = [s.rollout[i] for s in scored]
        rollout.append({"k": first_row["k"], "starts": sum(r["starts"] for r in per_k),
                        **_weighted_means(per_k, "starts", keys)})
    return one_step, rollout


def _score(model, dataset: artifacts.Dataset, val_block: tuple[int, int], k_context: int,
           settings: EvaluateSettings) -> tuple[dict, dict, np.ndarray, list[dict], np.ndarray]:
    """One-step scores (and the strip's predictions), the rollout starts, the per-k rollout rows and the rollouts."""
    import keras

    keras.utils.set_random_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    step = make_step(model, k_context, deterministic=True)  # one compiled step for every prediction below
    pairs = _one_step_pairs(dataset.frames, val_block, k_context, settings.max_pairs)
    log.info("one-step: %d val pairs, context %d, image %d px", len(pairs), k_context, dataset.image_size)
    one_step, strip_predictions = _one_step(model, dataset.frames, pairs, k_context, settings.batch_size, step)
    # Rollouts: start frames are the last context frame, inside the val block (frames val[0]..val[1]).
    candidates = np.arange(max(val_block[0], k_context - 1), val_block[1])
    starts = _choose_starts(candidates, _reach(dataset.frames, candidates, k_context, settings.rollout_steps),
                            settings.num_starts, rng)
    log.info("rollouts: %d starts %s, k = %s", len(starts), starts.tolist(), list(settings.rollout_steps))
    rollout, rolled = _rollout_quality(model, dataset.frames, starts, k_context, settings.rollout_steps,
                                       settings.batch_size, step)
    return one_step, strip_predictions, starts, rollout, rolled


def _open_model(model_dir: Path, size: int):
    """``(model, model_info, K)`` of a model dir whose generator works on ``size`` px frames."""
    from videogen.generator_io import load_generator

    model, model_info = load_generator(model_dir)
    in_shape = tuple(model.input_shape)
    if len(in_shape) != 4 or in_shape[3] is None or in_shape[3] % 3:
        raise InputError(f"{artifacts.GENERATOR_FILE} takes {in_shape}; expected (B, S, S, 3K)")
    k_context = int(model_info.get("context_frames", in_shape[3] // 3))
    if 3 * k_context != in_shape[3]:
        raise InputError(f"{artifacts.MODEL_INFO_FILE} says context_frames {k_context} but the generator takes "
                         f"{in_shape[3]} channels")
    model_size = int(model_info.get("image_size", in_shape[1]))
    if model_size != size or in_shape[1] != size:
        raise InputError(f"the model works on {model_size} px frames but the dataset has {size} px frames; evaluate "
                         f"on a dataset prepared with --image-size {model_size}")
    return model, model_info, k_context


def _one_step_pairs(frames, val_block: tuple[int, int], k_context: int, max_pairs: int) -> np.ndarray:
    """Val pairs whose K-frame context lies inside the data, in one shot with the next frame, at most ``max_pairs``
    evenly spaced."""
    pairs = np.arange(max(val_block[0], k_context - 1), val_block[1])
    if len(pairs) == 0:
        raise InputError(f"the val block {list(val_block)} has no pair with {k_context} context frames before it")
    same_shot = measures.one_shot(frames, pairs, k_context - 1, (1,))[1]
    if same_shot.any():  # a val block that is all cuts keeps its pairs rather than scoring nothing
        pairs = pairs[same_shot]
    if len(pairs) > max_pairs:
        pairs = pairs[np.unique(np.linspace(0, len(pairs) - 1, max_pairs).round().astype(int))]
    return pairs


@dataclass
class _Generated:
    """The video the report previews and, for a generated dir, its info, health and video quality."""

    preview: np.ndarray
    label: str
    dir: Path | None = None
    info: dict | None = None
    health: dict | None = None
    quality: dict | None = None

    def summary(self) -> dict | None:
        if self.info is None:
            return None
        return {"dir": str(self.dir), **{key: self.info.get(key) for key in
                                         ("frames", "num_videos", "frames_per_s", "device", "steering")}}


def _generated(generated_dir: Path | None, dataset: artifacts.Dataset, subject: _Subject) -> _Generated:
    """The generated dir's health, video quality and controls; without one, the evaluation's first rollout as the
    report's preview."""
    if generated_dir is not None:
        return _generated_health(Path(generated_dir), dataset, subject.settings.seed, subject)
    first = subject.first
    return _Generated(first.rolled[:, 0], f"{len(first.rolled)}-frame evaluation rollout from validation frame "
                                          f"{int(first.starts[0])} of {first.video.name}")


@dataclass
class _Subject:
    """What the null controls need: the model, its dir and info, the first video's scores (rollout starts), the
    settings."""

    model: Any
    info: dict
    dir: Path
    first: _VideoScore
    settings: EvaluateSettings


def _generated_health(generated_dir: Path, dataset: artifacts.Dataset, seed: int,
                      subject: _Subject | None = None) -> _Generated:
    """Health and video quality of the generated videos, measured against the source video the first one started
    from (its training frames are the reference, its frames the baselines'), with the null controls beside them
    when ``subject`` asks for them."""
    frames, info = artifacts.open_generated(generated_dir)
    size = dataset.image_size
    if frames.shape[2] != size:
        raise InputError(f"the generated video has {frames.shape[2]} px frames but the dataset has {size} px")
    if frames.shape[0] == 0 or frames.shape[1] == 0:
        raise InputError(f"{generated_dir / artifacts.FRAMES_FILE} holds no frames")
    video, start_frames = _source_of_first(dataset, info.get("start_frames"))
    train_block, val_block = video.block("train"), video.block("val")
    reference = training_reference(video.frames, train_block[0], train_block[1] + 1)
    health = long_rollout_health(frames, reference)
    controls = _control_run(subject, video, start_frames, val_block, info, len(frames)) if subject else None
    quality = video_quality(frames, start_frames, video, train_block, val_block, seed,
                            controls=controls.videos if controls else None)
    if controls is not None and "videos" in quality:
        quality["controls"].update(controls.summary(quality))
    log.info("video quality: %s (%.1f s)", quality.get("text", quality.get("skipped")), quality.get("seconds", 0.0))
    return _Generated(frames[:, 0], f"generated video 0 ({frames.shape[0]} frames)", generated_dir, info, health,
                      quality)


@dataclass
class _ControlRun:
    """The null controls' videos and every generator's rollout PSNR through the generation path."""

    videos: dict[str, np.ndarray]
    rollout: dict[str, list[dict]]
    sigma: float
    steered: bool
    seconds: float

    def summary(self, quality: dict) -> dict:
        from videogen.verdict import compare_controls

        frames = len(next(iter(self.videos.values())))
        return {"frames": frames, "sigma": round(self.sigma, 5), "steered": self.steered, "rollout": self.rollout,
                "seconds": round(self.seconds, 3),
                "comparison": compare_controls(quality["videos"], quality["controls"]["scores"], self.rollout,
                                               frames)}


def _control_run(subject: _Subject, video: artifacts.Dataset, start_frames: Any, val_block: tuple[int, int],
                 info: dict, length: int) -> _ControlRun | None:
    """Run the null controls and the model alone from video 0's start with the generation's seed, dropout and
    steering (``videogen.controls``), and every generator's k-step rollouts from the evaluation's starts; None when
    they cannot run (controls off, a SavedModel generator, a generation too short)."""
    from videogen import controls, steering
    from videogen.generator_io import SavedModelGenerator, inference_copy

    settings = subject.settings
    frames = min(settings.control_frames, length)
    if frames < 2 or isinstance(subject.model, SavedModelGenerator):
        return None
    started = time.monotonic()
    k = int(subject.info.get("context_frames", 1))
    seed, deterministic = int(info.get("seed", 0)), bool(info.get("deterministic", False))
    # The generation's precision where this machine computes it (a video made in bf16 on a GPU or a bf16 CPU may be
    # evaluated on a CPU whose oneDNN has no bf16 convolutions).
    precision = hardware.resolve_precision(info.get("precision") or "float32", hardware.detect_device()[1])
    targets = steering.load_targets(subject.dir) if info.get("steering") is not None else None
    start = _baseline_start(start_frames, video, val_block)
    start = max(start, k - 1)
    context = stack_context(np.asarray(video.frames[start - k + 1:start + 1]))[None]
    val_contexts = np.stack([stack_context(np.asarray(video.frames[i - k + 1:i + 1]))
                             for i in range(max(val_block[0], k - 1), val_block[1] + 1)])
    nulls = controls.control_generators(subject.model, subject.info, val_contexts, seed)
    log.info("null controls: %d frames each from frame %d (%s)", frames, start,
             "steered" if targets is not None else "steering off")
    fast = {"model": inference_copy(subject.model, precision), "noise": nulls["noise"],
            "untrained": nulls["untrained"] if nulls["untrained_copies"] else inference_copy(nulls["untrained"],
                                                                                            precision)}
    videos = controls.control_videos(fast, targets, context, frames, seed, deterministic)
    starts, steps = subject.first.starts, settings.rollout_steps
    rollout = {**controls.rollout_psnr(fast, targets, video.frames, starts, steps, k, seed, deterministic),
               "model_alone": controls.rollout_psnr({"model": fast["model"]}, None, video.frames, starts, steps, k,
                                                    seed, deterministic)["model"]}
    return _ControlRun({name: v[:, 0] for name, v in videos.items()}, rollout, nulls["sigma"], targets is not None,
                       time.monotonic() - started)


def _source_of_first(dataset: artifacts.Dataset, start_frames: Any) -> tuple[artifacts.Dataset, Any]:
    """The source video generated video 0 started in (the first one when it started from an image), and the start
    frames counted from that video's first frame (starts in other videos become ``"<name>:<frame>"``)."""
    videos = dataset.videos
    if not isinstance(start_frames, list) or len(videos) == 1:
        return videos[0], start_frames

    def video_of(start: Any) -> artifacts.Dataset | None:
        if not isinstance(start, int):
            return None
        return next((v for v in videos if v.first_frame <= start < v.first_frame + len(v.frames)), None)

    video = video_of(start_frames[0] if start_frames else None) or videos[0]
    local = [start - video.first_frame if video_of(start) is video else
             (f"{video_of(start).name}:{start}" if video_of(start) else start) for start in start_frames]
    return video, local


def _write(output_dir: Path, metrics: dict, dataset: artifacts.Dataset, first: _VideoScore, model_info: dict,
           generated: _Generated, records: list[dict]) -> None:
    """metrics.json, report.html and summary.md; the strip shows the first video's validation pairs."""
    from videogen import report

    output_dir.mkdir(parents=True, exist_ok=True)
    artifacts.atomic_write_json(output_dir / artifacts.METRICS_FILE, metrics)
    frames = first.video.frames
    strip = [report.StripRow(frame_index=int(p), input=np.asarray(frames[p]), predicted=pred,
                             real=np.asarray(frames[p + 1])) for p, pred in sorted(first.strip_predictions.items())]
    report.write_report(output_dir, metrics, dataset.info, model_info, generated.info, strip, records,
                        generated.preview, preview_label=generated.label, preview_fps=dataset.fps or 25.0)


# --------------------------------------------------------------------------------------------------- video quality
def _vq_side(size: int, frames: int, videos: int) -> int:
    """The frame side the video-quality measures run at: halved from ``size`` (not below 64 px) while the pixels of
    ``videos`` generated videos and the two baselines of ``frames`` frames exceed :data:`VQ_PIXEL_BUDGET`."""
    side = size
    while side // 2 >= VQ_MIN_SIDE and (videos + 2) * frames * side * side > VQ_PIXEL_BUDGET:
        side //= 2
    return side


def _baseline_start(start_frames: Any, dataset: artifacts.Dataset, val_block: tuple[int, int]) -> int:
    """The dataset frame video 0 started from (generation.json's ``start_frames[0]``); for a video started from an
    image, the dataset's ``start_frame`` (else the first val frame)."""
    first = start_frames[0] if isinstance(start_frames, list) and start_frames else None
    if isinstance(first, int) and 0 <= first < len(dataset.frames):
        return first
    fallback = dataset.info.get("start_frame")
    return fallback if isinstance(fallback, int) and 0 <= fallback < len(dataset.frames) else val_block[0]


def video_quality(generated: np.ndarray, start_frames: Any, dataset: artifacts.Dataset, train_block: tuple[int, int],
                  val_block: tuple[int, int], seed: int = 0,
                  controls: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """The ``video_quality`` section of metrics.json: every generated video (up to :data:`VQ_MAX_VIDEOS`) and the two
    baselines scored by :mod:`videogen.video_quality` against the clip, their combined verdict, where the model sits
    between the baselines, and the diversity of the videos (see the module docstring for the cost caps).

    Args:
        generated: uint8 ``(T, V, S, S, 3)`` (a memmap is read one frame at a time).
        start_frames: generation.json's ``start_frames``; the baselines start from video 0's.
        dataset: the dataset; its train block gives the training frames, its val block the held-out frames.
        train_block, val_block: the dataset's pair blocks (pair i is frame i -> i+1).
        seed: seed of the patch sampling and of the Video Textures jumps.
        controls: the null controls' (and the model alone's) videos, uint8 ``(T, S, S, 3)`` each, judged against the
            same reference (section ``controls.scores``).
    """
    started = time.monotonic()
    length, count = int(generated.shape[0]), int(generated.shape[1])
    if length < 2:
        return {"skipped": f"the generated video has {length} frame(s); the video-quality measures need 2"}
    scored = min(count, VQ_MAX_VIDEOS)
    side = _vq_side(dataset.image_size, length, scored)
    clip = measures.resize(dataset.frames, side)
    train = clip[train_block[0]:train_block[1] + 1]
    ref = vq.reference(train, clip[val_block[0]:val_block[1] + 1], clip, seed=seed)
    start = _baseline_start(start_frames, dataset, val_block)
    textures_from = max(train_block[0], train_block[1] + 1 - VQ_TEXTURES_MAX_FRAMES)
    baseline_videos = vq.baseline_videos(clip[textures_from:train_block[1] + 1], clip[start], length + 1, seed=seed)
    videos = [measures.resize(generated[:, v], side) for v in range(min(count, VQ_MAX_DIVERSITY_VIDEOS))]
    scores = [{"video": v, **vq.judge(videos[v], window=VQ_WINDOW, ref=ref)} for v in range(scored)]
    baselines = {name: vq.judge(video[1:], window=VQ_WINDOW, ref=ref) for name, video in baseline_videos.items()}
    controlled = {name: vq.judge(measures.resize(video, side), window=VQ_WINDOW, ref=ref)
                  for name, video in (controls or {}).items()}
    combined = vq.combine_verdicts([s["verdict"] for s in scores])
    place = vq.placement(scores, baselines["copy_last_frame"], baselines["video_textures"])
    return {
        "window": VQ_WINDOW, "frames": length, "num_videos": count, "videos_scored": scored,
        "image_size": dataset.image_size, "scored_size": side, "thresholds": dataclasses.asdict(vq.THRESHOLDS),
        "reference": ref.values(), "baseline_start_frame": start,
        "textures_frames": [textures_from, train_block[1] + 1],
        "cost": {"max_videos": VQ_MAX_VIDEOS, "pixel_budget": VQ_PIXEL_BUDGET, "min_side": VQ_MIN_SIDE,
                 "textures_max_frames": VQ_TEXTURES_MAX_FRAMES, "diversity_max_videos": VQ_MAX_DIVERSITY_VIDEOS},
        "videos": scores, "baselines": baselines,
        "diversity": ({**vq.diversity(videos, clip), "same_start": len(set(map(str, start_frames or []))) <= 1}
                      if len(videos) > 1 else None),
        "verdict": combined, "placement": place, "controls": {"scores": controlled} if controls else None,
        "text": vq.verdict_line(combined, place, scored),
        "seconds": round(time.monotonic() - started, 3),
    }


def _worst(scores: list[dict]) -> dict[str, float]:
    """The flat extremes over videos and windows: ``motion_min/max``, ``realism_last`` (worst last window),
    ``sharpness_min/max``, ``drift_realism`` (worst, when there is drift) and ``replay_share`` (highest)."""
    def valid(key: str) -> list[float]:
        return [v for s in scores for v in s[key] if v is not None]

    out: dict[str, float] = {}
    for key in ("motion", "sharpness"):
        if valid(key):
            out[f"{key}_min"], out[f"{key}_max"] = float(min(valid(key))), float(max(valid(key)))
    last = [s["realism"][-1] for s in scores if s["realism"][-1] is not None]
    drift = [s["drift"]["realism"] for s in scores if s.get("drift") and s["drift"].get("realism") is not None]
    for name, values in (("realism_last", last), ("drift_realism", drift)):
        if values:
            out[name] = float(max(values))
    out["replay_share"] = float(max(s["replay_share"] for s in scores))
    return out


def video_quality_scalars(section: dict | None) -> dict[str, float]:
    """The KFP scalars of the ``video_quality`` section (empty when it was not computed): ``video_ok`` (0/1),
    ``video_failure_frame`` (earliest failure start, -1 for none), the model's :func:`_worst` extremes, its
    ``motion_position`` between the baselines, ``diversity`` (more than one video), ``copy_`` / ``textures_``
    ``motion_max``, ``realism_last`` and ``replay_share`` of the baselines and, where the null controls ran,
    ``adds_over_controls`` (0/1) and each compared figure per generator (``spacetime_model``, ``coarse_noise``,
    ``psnr_10_untrained``, ``psnr_5_model_alone`` ...)."""
    if not section or not section.get("videos"):
        return {}
    failures = section["verdict"]["failures"]
    comparison = (section.get("controls") or {}).get("comparison")
    out = {"video_ok": float(section["verdict"]["ok"] and (comparison is None or comparison["adds"])),
           "video_failure_frame": float(min((f["frame"] for f in failures.values()), default=-1)),
           **_worst(section["videos"])}
    if section["placement"]["motion"]["position"] is not None:
        out["motion_position"] = float(section["placement"]["motion"]["position"])
    if section.get("diversity") and section["diversity"]["diversity"] is not None:
        out["diversity"] = float(section["diversity"]["diversity"])
    for prefix, name in (("copy_", "copy_last_frame"), ("textures_", "video_textures")):
        worst = _worst([section["baselines"][name]])
        out.update({prefix + key: worst[key] for key in ("motion_max", "realism_last", "replay_share") if key in worst})
    if comparison:
        out["adds_over_controls"] = float(comparison["adds"])
        out.update({f"{figure}_{generator}": float(value) for generator, values in comparison["table"].items()
                    for figure, value in values.items() if value is not None})
    return out
