"""Null controls: generators that learned nothing, run through the same generation path as the trained model, so
that a quality figure credits the model only for its margin over them.

- ``noise``: the last frame plus Gaussian noise (``videogen.model.last_frame_plus_noise``), with a sigma matched to
  the trained generator's typical change (:func:`typical_change`): a generator that moves as much as the model but
  knows nothing.
- ``untrained``: the model's own architecture with its initial weights (:func:`untrained_generator`). The default
  residual generator's last layer starts at zero, so it copies the last frame: whatever its video does is steering's.
- ``model_alone``: the trained generator with steering off: the learned network fed its own output.

:func:`control_videos` rolls each out from the same start context, with the same seed and the same steering as
the generation it is compared with (``videogen.generate.rollout_path``); :func:`rollout_psnr` scores any generator's
k-step rollouts through that path against the real continuation. The evaluate stage scores all of them with the same
judge (``videogen.video_quality``) and credits the model only for beating the first two (``videogen.verdict``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("videogen.controls")

CONTROLS = ("noise", "untrained", "model_alone")
# The null controls the verdict's margins are taken over (model_alone is shown beside them, not a null).
NULLS = ("noise", "untrained")


def untrained_generator(model_info: dict, seed: int = 0):
    """The generator ``model.json`` describes (size, context, ngf, residual, norm, dropout) with fresh initial
    weights drawn from ``seed``."""
    import keras

    from videogen.model import build_generator

    keras.utils.set_random_seed(seed)
    options = {key: model_info[key] for key in ("ngf", "residual", "norm", "dropout") if key in model_info}
    return build_generator(image_size=int(model_info["image_size"]),
                           context_frames=int(model_info.get("context_frames", 1)), **options)


def typical_change(model, contexts: np.ndarray, batch_size: int = 16) -> float:
    """The trained generator's typical change: the RMS of ``G(x) - last frame`` over the contexts ``(B, S, S, 3K)``
    uint8 (dropout off), in [-1, 1] units, the unit of the noise control's sigma."""
    from videogen.frames import tf_to_float

    total, count = 0.0, 0
    for i in range(0, len(contexts), batch_size):
        x = tf_to_float(np.asarray(contexts[i:i + batch_size]))
        change = np.asarray(model(x, training=False), np.float32) - np.asarray(x[..., -3:], np.float32)
        total += float((change ** 2).sum())
        count += change.size
    return float(np.sqrt(total / max(count, 1)))


def control_generators(model, model_info: dict, contexts: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """The two null generators for ``model``: noise matched to its typical change on ``contexts``, and untrained."""
    from videogen.model import last_frame_plus_noise

    sigma = typical_change(model, contexts)
    size, k = int(model_info["image_size"]), int(model_info.get("context_frames", contexts.shape[-1] // 3))
    log.info("null controls: last frame + noise (sigma %.4f, the model's typical change), untrained generator", sigma)
    untrained = untrained_generator(model_info, seed)
    # The residual generator's last layer starts at zero, so untrained it returns its last input frame exactly
    # (dropout or not): where it does, the same output comes from a generator that skips the U-Net.
    copies = typical_change(untrained, contexts[:4]) == 0.0
    return {"noise": last_frame_plus_noise(size, k, sigma, seed),
            "untrained": last_frame_plus_noise(size, k, 0.0, seed) if copies else untrained,
            "sigma": sigma, "untrained_copies": copies}


class Stacked:
    """Several generators as one, so that their rollouts share one compiled step and one batch: generator ``i`` takes
    rows ``[i * rows, (i + 1) * rows)`` of every batch (its own videos, each with its own steering controllers)."""

    def __init__(self, generators: list, rows: int):
        self.generators, self.rows = list(generators), int(rows)

    @property
    def layers(self) -> list:
        """Every generator's layers (dropout seeding and BatchNorm freezing walk them)."""
        return [layer for g in self.generators for layer in getattr(g, "layers", [])]

    def __call__(self, inputs, training: bool = False):
        import tensorflow as tf

        r = self.rows
        return tf.concat([tf.cast(g(inputs[i * r:(i + 1) * r], training=training), tf.float32)
                          for i, g in enumerate(self.generators)], axis=0)


def control_videos(generators: dict[str, Any], targets, context: np.ndarray, frames: int, seed: int,
                   deterministic: bool) -> dict[str, np.ndarray]:
    """Each control's video ``(frames, V, S, S, 3)`` uint8 from ``context`` ``(V, S, S, 3K)``: the ``noise`` and
    ``untrained`` generators with the generation's steering (``targets``; None = steering off) in one batch, and the
    ``model`` alone with none (``model_alone``), all with ``seed``; ``generators`` are ready to run (inference
    copies)."""
    from videogen.generate import rollout_path

    k, v = context.shape[-1] // 3, len(context)
    both = Stacked([generators["noise"], generators["untrained"]], v)
    rolled = np.stack(list(rollout_path(both, np.concatenate([context, context]), frames, k, targets, seed,
                                        deterministic)))
    alone = np.stack(list(rollout_path(generators["model"], context, frames, k, None, seed, deterministic)))
    return {"noise": rolled[:, :v], "untrained": rolled[:, v:], "model_alone": alone}


def rollout_psnr(generators: dict[str, Any], targets, frames: np.ndarray, starts: np.ndarray,
                 steps: tuple[int, ...], context_frames: int, seed: int, deterministic: bool) -> dict[str, list[dict]]:
    """Per generator, ``[{"k", "starts", "psnr"}]``: the mean PSNR of the k-th frame of rollouts through the
    generation path (with ``targets``' steering, None = off; all generators in one batch) from ``starts`` (last
    context frames, dataset indices) against the real frame start+k, for each k in ``steps`` (starts whose start+k
    lies past the data or in another shot are left out, as in the evaluate stage's rollouts)."""
    from videogen.frames import context_indices, stack_context
    from videogen.generate import rollout_path
    from videogen.measures import one_shot, psnr_per_image

    context = np.stack([stack_context(np.asarray(frames[context_indices(int(i), 0, context_frames)]))
                        for i in starts])
    names, n = list(generators), len(starts)
    both = Stacked([generators[name] for name in names], n)
    rolled = np.stack(list(rollout_path(both, np.concatenate([context] * len(names)), max(steps), context_frames,
                                        targets, seed, deterministic)))
    scored = one_shot(frames, starts, context_frames - 1, steps)
    out = {}
    for g, name in enumerate(names):
        rows = []
        for k in steps:
            ok = np.flatnonzero(scored[k])
            value = (round(float(np.mean(psnr_per_image(rolled[k - 1, g * n + ok],
                                                        np.asarray(frames[starts[ok] + k])))), 4)
                     if len(ok) else None)
            rows.append({"k": int(k), "starts": int(len(ok)), "psnr": value})
        out[name] = rows
    return out


def save_null_model_dir(model_dir: Path, output_dir: Path, sigma: float, seed: int = 0) -> Path:
    """A copy of a trained model dir whose ``generator.keras`` is ``videogen.model.last_frame_plus_noise`` (same size and
    context; ``model.json`` and ``steering.npz`` kept; the dir needs no generator of its own): a generator that
    learned nothing, for any videogen stage."""
    import json
    import shutil

    from videogen import artifacts
    from videogen.model import last_frame_plus_noise

    info = json.loads((Path(model_dir) / artifacts.MODEL_INFO_FILE).read_text())
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for path in Path(model_dir).iterdir():
        if path.is_file() and path.name != artifacts.GENERATOR_FILE:
            shutil.copyfile(path, output_dir / path.name)
    null = last_frame_plus_noise(int(info["image_size"]), int(info.get("context_frames", 1)), sigma, seed)
    null.save(output_dir / artifacts.GENERATOR_FILE)
    return output_dir
