"""Training examples: real pairs from the dataset, refinement pairs from the model's own rollouts, the paper's random
jitter, and the batched ``tf.data`` pipelines the step consumes.

An example is ``(inputs uint8 (S, S, 3K), target uint8 (S, S, 3))``: the K frames up to frame i stacked on channels,
and frame i+1. Frames stay uint8 until the step converts them.
"""

from __future__ import annotations

import numpy as np

from videogen.frames import context_indices, rollout_batches, stack_context
from videogen.measures import shot_ids

_JITTER_SCALE = 1.12  # the paper's 256 -> 286 resize before the random 256 crop


def jitter(inputs, target, image_size: int, seed):
    """The paper's random jitter, drawn once and applied identically to the input frames and the target.

    Input and target are stacked on channels before the resize (to ``round(1.12 * S)``), the random ``S`` crop and the
    random mirror, so frame t and frame t+1 always move together; a mismatch would teach the generator a spurious shift.

    Args:
        inputs: uint8 ``(S, S, 3K)``, the context frames.
        target: uint8 ``(S, S, 3)``, the next frame.
        image_size: S.
        seed: int tensor of shape ``[2]`` for the stateless random ops (same seed, same crop and flip).

    Returns:
        ``(inputs, target)``, uint8, same shapes.
    """
    import tensorflow as tf

    channels = inputs.shape[-1]
    stacked = tf.concat([inputs, target], axis=-1)
    big = int(round(_JITTER_SCALE * image_size))
    stacked = tf.image.resize(stacked, [big, big], method="bilinear")
    stacked = tf.cast(tf.clip_by_value(tf.round(stacked), 0.0, 255.0), tf.uint8)  # uint8 until the model needs float
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=2)
    stacked = tf.image.stateless_random_crop(stacked, [image_size, image_size, channels + 3], seed=seeds[0])
    stacked = tf.image.stateless_random_flip_left_right(stacked, seed=seeds[1])
    return stacked[..., :channels], stacked[..., channels:]


def pair_example(frames: np.ndarray, pair: int, first_pair: int, context_frames: int,
                 unroll_steps: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The unjittered example of pair ``pair``: context clamped at ``first_pair``, target frame ``pair + 1``.

    With ``unroll_steps`` U > 1 the example is a window: inputs are the K context frames and the real frames
    ``pair + 1 .. pair + U - 1`` (K + U - 1 frames stacked on channels, oldest first), target frame ``pair + U``; the
    unrolled train step splits it back into the context and the U real next frames."""
    later = [pair + j for j in range(1, unroll_steps + 1)]
    block = frames[context_indices(pair, first_pair, context_frames) + later]  # one read from the memory map
    return stack_context(block[:-1]), np.ascontiguousarray(block[-1])


def real_examples(frames: np.ndarray, first_pair: int, end_pair: int, context_frames: int, seed: int,
                  deterministic: bool = False):
    """Endless shuffled tf.data stream of unjittered (inputs (S,S,3K) uint8, target (S,S,3) uint8) training pairs;
    ``deterministic``: in the order the seed gives (else as they are loaded)."""
    return block_examples(frames, [(first_pair, end_pair)], context_frames, seed, deterministic)


def shot_blocks(frames: np.ndarray, blocks: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Each block of pairs ``[first, end)`` split where a new shot starts (:func:`videogen.measures.shot_ids`): the
    pair across a cut is dropped and the pairs after it form a block of their own, so no example asks the model to
    make a new shot out of the last one and no context reaches back across a cut. Blocks with no pair left are
    dropped; if no block keeps a pair (every frame a new shot), the blocks are returned as they are."""
    out = []
    for first, end in blocks:
        shots = shot_ids(frames[first:end + 1])  # frames first .. end; pair i is frame i -> i + 1
        start = first
        for cut in (np.flatnonzero(np.diff(shots)) + 1 + first).tolist():  # frame `cut` opens a shot: pair cut - 1
            if cut - 1 > start:
                out.append((start, cut - 1))
            start = cut
        if end > start:
            out.append((start, end))
    return out or list(blocks)


def window_blocks(blocks: list[tuple[int, int]], unroll_steps: int) -> list[tuple[int, int]]:
    """The pairs of each block whose ``unroll_steps`` real next frames all lie inside it (``[first, end - U + 1)``);
    blocks too short for one window are dropped."""
    cut = [(first, end - unroll_steps + 1) for first, end in blocks]
    return [(first, end) for first, end in cut if end > first]


def block_examples(frames: np.ndarray, blocks: list[tuple[int, int]], context_frames: int, seed: int,
                   deterministic: bool = False, unroll_steps: int = 1, reverse: float = 0.0):
    """:func:`real_examples` over several blocks of pairs (one per source video), each pair drawn equally often.

    A pair's context is clamped at the first pair of its own block, so no example reaches into another video. With
    ``unroll_steps`` U > 1 each example is a window of :func:`pair_example` (its inputs ``(S, S, 3(K+U-1))``) and only
    pairs whose U next frames stay inside the block are drawn (:func:`window_blocks`). A share ``reverse`` of the
    examples is played backwards (:func:`reversed_example`).
    """
    import tensorflow as tf

    from videogen.errors import InputError

    size = frames.shape[1]
    if unroll_steps > 1:
        longest = max(end - first for first, end in blocks)
        blocks = window_blocks(blocks, unroll_steps)
        if not blocks:
            raise InputError(f"unroll_steps {unroll_steps} needs a training block of at least that many pairs; the "
                             f"longest has {longest}")
    pairs = np.concatenate([np.arange(first, end) for first, end in blocks]).astype(np.int64)
    firsts = np.concatenate([np.full(end - first, first) for first, end in blocks]).astype(np.int64)

    def load(pair, first):
        inputs, target = tf.numpy_function(
            lambda p, f: pair_example(frames, int(p), int(f), context_frames, unroll_steps), [pair, first],
            [tf.uint8, tf.uint8], stateful=False)
        inputs.set_shape([size, size, 3 * (context_frames + unroll_steps - 1)])
        target.set_shape([size, size, 3])
        return inputs, target

    examples = tf.data.Dataset.from_tensor_slices((pairs, firsts))
    examples = examples.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True).repeat()
    examples = examples.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    if reverse <= 0:
        return examples
    # One draw per example from a seeded stream (in the stream's order, so a fixed order gives fixed draws).
    draws = tf.data.Dataset.random(seed=seed + 1).map(lambda r: tf.cast(r % 1_000_000, tf.float32) < reverse * 1e6)
    return tf.data.Dataset.zip(examples, draws).map(lambda example, back: reversed_example(*example, back))


def reversed_example(inputs, target, back):
    """The example played backwards when ``back`` (a bool tensor): its frames (the context frames and the target,
    oldest first) in reverse order, so the newest becomes the oldest context frame and the oldest the target. Played
    backwards, the same appearance is seen moving both ways, so the motion to predict has to be read from the
    context frames rather than from what the frame shows (the paper's random mirror does this for horizontal motion
    only)."""
    import tensorflow as tf

    def flip():
        stacked = tf.concat([inputs, target], axis=-1)
        frames = tf.reshape(stacked, tf.concat([tf.shape(stacked)[:-1], [-1, 3]], axis=0))  # (..., K + 1, 3)
        stacked = tf.reshape(tf.reverse(frames, axis=[-2]), tf.shape(stacked))
        return stacked[..., :inputs.shape[-1]], stacked[..., inputs.shape[-1]:]

    out_inputs, out_target = tf.cond(back, flip, lambda: (inputs, target))
    out_inputs.set_shape(inputs.shape)
    out_target.set_shape(target.shape)
    return out_inputs, out_target


def mixed_examples(real, pool_inputs: np.ndarray, pool_targets: np.ndarray, refine_mix: float, seed: int):
    """Real examples mixed with refinement pairs, ``refine_mix`` of them from the pool (endless, shuffled)."""
    import tensorflow as tf

    rollouts = tf.data.Dataset.from_tensor_slices((pool_inputs, pool_targets))
    rollouts = rollouts.shuffle(len(pool_inputs), seed=seed).repeat()
    return tf.data.Dataset.sample_from_datasets([real, rollouts], weights=[1.0 - refine_mix, refine_mix], seed=seed)


def batches(examples, image_size: int, batch_size: int, seed: int, strategy=None, workers: int = 1):
    """Jitter each example with its own stateless seed, batch with fixed shapes, prefetch; under a strategy, split each
    global batch across the replicas (in a fixed order: every worker of a multi-worker strategy builds the same global
    batches from the same seeds and keeps its own share, so the step equals one process's at that global batch)."""
    import tensorflow as tf

    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    ds = tf.data.Dataset.zip(examples, seeds)
    ds = ds.map(lambda example, s: jitter(example[0], example[1], image_size, s),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=strategy is not None)
    ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    if strategy is not None:
        options = tf.data.Options()
        # One worker: no sharding. Several: tf.distribute rebatches each global batch into per-replica batches and
        # DATA-shards them, so each worker keeps its replicas' part (tensorflow/python/distribute/input_lib.py).
        policy = tf.data.experimental.AutoShardPolicy
        options.experimental_distribute.auto_shard_policy = policy.DATA if workers > 1 else policy.OFF
        ds = strategy.experimental_distribute_dataset(ds.with_options(options))
    return ds


def _rollout_starts(blocks: list[tuple[int, int]], length: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random start frames (sorted) whose ``length``-step rollout stays inside their block, and each one's
    block start."""
    candidates = [(i, first) for first, end in blocks if end - first >= length for i in range(first, end - length + 1)]
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(candidates), size=min(count, len(candidates)), replace=False))
    return (np.array([candidates[c][0] for c in chosen], dtype=int),
            np.array([candidates[c][1] for c in chosen], dtype=int))


def refinement_examples(generator, frames: np.ndarray, blocks: list[tuple[int, int]], *, context_frames: int,
                        rollout_length: int, rollout_starts: int, seed: int, batch_size: int):
    """Roll the current generator out (dropout off) from random training frames; return refinement pairs.

    From start frame i the model predicts i+1, then i+2 from its own prediction, and so on ``rollout_length`` steps.
    Pair j is (context window holding the model's own j latest predictions -> real frame i+j+1): exactly the
    inputs a long generation feeds back, labelled with what really came next. ``blocks`` are the training blocks of
    pairs, one per source video; a rollout and its context stay inside one block.

    Returns:
        ``(inputs uint8 (P, S, S, 3K), targets uint8 (P, S, S, 3))``, grouped by chunks of ``batch_size`` starts.
    """
    k = context_frames
    length = min(rollout_length, max(end - first for first, end in blocks))  # start i needs frames up to i + length
    starts, firsts = _rollout_starts(blocks, length, rollout_starts, seed)
    windows = np.stack([frames[context_indices(int(i), int(f), k)] for i, f in zip(starts, firsts)])  # (P,K,S,S,3)
    inputs_out, targets_out = [], []
    for rows, predicted in rollout_batches(generator, windows, length, batch_size):  # predicted (length, B, S, S, 3)
        window, chunk = windows[rows], starts[rows]
        for j in range(1, length + 1):
            window = np.concatenate([window[:, 1:], predicted[j - 1][:, None]], axis=1)
            inputs_out.append(stack_context(window))
            targets_out.append(np.stack([np.asarray(frames[int(i) + j + 1]) for i in chunk]))
    return np.concatenate(inputs_out), np.concatenate(targets_out)
