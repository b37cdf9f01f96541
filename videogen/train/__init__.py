"""Stage "train": fit pix2pix (U-Net generator + PatchGAN discriminator) to predict the next frame of a video.

Reads a dataset dir made by the prepare stage (``frames.npy`` uint8 ``(N, S, S, 3)``, memory-mapped, and
``dataset.json``). Writes a model dir: ``generator.keras`` (input ``(B, S, S, 3K)`` float32 in [-1, 1], output
``(B, S, S, 3)``), ``generator_savedmodel/``, ``model.json`` (sizes, steps, settings, loss history, images/s),
TensorBoard event files under ``logs/`` and, unless another checkpoint dir is given, ``checkpoints/``.

Training runs in phases defined by step ranges, so ``max_steps`` is the total of all of them and a resumed run knows
where it is from the step counter alone:

1. ``[0, main_end)``: real pairs (frames i-K+1..i -> frame i+1) with the paper's random jitter.
2. ``refine_rounds`` rounds that share ``refine_fraction`` of the budget: at the start of each round the current
   generator (dropout off) is rolled out ``rollout_length`` steps from random training frames, and training goes on
   with (predicted frames -> real next frame) pairs mixed with real pairs (the anti-divergence idea of Magenta's
   next_frame_prediction_pix2pix, but the rollouts are fed back from the model itself, several steps deep, and
   refreshed each round).
3. Or, with ``unroll_steps`` U > 1 (not with refine rounds), the last ``unroll_fraction`` of the steps is the phase
   ``unroll``: each example is a window of real frames, the generator predicts U frames in a row from its real
   context, each fed back (8-bit rounded, straight-through) into the next context, with the losses at every step
   against the real frames and the gradients through the fed-back predictions (backprop through time).

Checkpoints (step, both models, both optimizers) are saved every ``checkpoint_every`` steps and at the end; a new run
with the same dirs restores the latest and continues to the same total.

Several GPUs: with more than one GPU visible (``devices=auto``) the step runs data-parallel under
``tf.distribute.MirroredStrategy``: ``batch_size`` is the GLOBAL batch, split across the replicas, each loss is the mean
over the global batch (each replica's mean weighted by its share of it), so the gradients and the step equal those of
one device at the same batch and the learning rate needs no scaling. Batch norm layers (the discriminator's, and the
generator's with norm=batch) use each replica's share of the batch for their statistics, as Keras does by default
(synchronized batch norm failed here: its all-reduces ran in different orders on the replicas); GroupNorm, the
generator's default, is per image and unaffected. One device keeps the plain step (no strategy at all).

Modules: ``settings`` (TrainSettings, validation, phases), ``data`` (examples, jitter, batches, refinement pairs),
``step`` (the one step body), ``checkpoint`` (restore, save, remote mirror), ``monitor`` (logs, TensorBoard, history),
``fit`` (the stage). Importing this package does not import TensorFlow: the CLI reads ``TrainSettings`` cheaply.
"""

from videogen.train.data import jitter, real_examples
from videogen.train.fit import train
from videogen.train.settings import TrainSettings, plan_phases, total_steps, validate_settings
from videogen.train.step import make_distributed_train_step, make_train_step

__all__ = ["TrainSettings", "jitter", "make_distributed_train_step", "make_train_step", "plan_phases",
           "real_examples", "total_steps", "train", "validate_settings"]
