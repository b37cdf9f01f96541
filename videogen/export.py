"""Export the trained generator as a TensorFlow SavedModel for images whose Keras cannot read ``generator.keras``.

Reads a Keras generator; writes ``generator_savedmodel/`` beside ``generator.keras`` in the model dir. The K80 image
runs TensorFlow 2.14 with Keras 2 (CUDA 12 builds dropped compute capability 3.7), and Keras 2 cannot deserialize a
Keras 3 ``.keras`` file; a SavedModel of plain TF functions loads there (checked: same output to 1e-8). See
the README, "The K80 pool".

Endpoints, both ``(B, S, S, 3K) float32 in [-1, 1] -> (B, S, S, 3)``:
  ``serve``          inference: dropout off, BatchNorm on its moving statistics;
  ``serve_dropout``  pix2pix's stochastic generation: dropout on, BatchNorm still on its moving statistics.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from videogen.artifacts import SAVEDMODEL_DIR


def export_savedmodel(generator, model_dir: Path) -> Path:
    """Write ``model_dir/generator_savedmodel`` (atomically: a temporary dir renamed into place)."""
    import keras
    import tensorflow as tf

    model_dir = Path(model_dir)
    target = model_dir / SAVEDMODEL_DIR
    tmp = model_dir / f".{SAVEDMODEL_DIR}.{os.getpid()}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    spec = tf.TensorSpec((None, *generator.input_shape[1:]), tf.float32, name="frames")
    batchnorms = [layer for layer in generator.layers if isinstance(layer, keras.layers.BatchNormalization)]
    trainable = [layer.trainable for layer in batchnorms]
    try:
        # Keras 3 runs a BatchNormalization whose trainable is False in inference mode even when training=True,
        # so `serve_dropout` gets dropout without batch statistics.
        for layer in batchnorms:
            layer.trainable = False
        archive = keras.export.ExportArchive()
        archive.track(generator)
        archive.add_endpoint("serve", lambda x: generator(x, training=False), input_signature=[spec])
        archive.add_endpoint("serve_dropout", lambda x: generator(x, training=True), input_signature=[spec])
        archive.write_out(str(tmp), verbose=False)
    finally:
        for layer, was in zip(batchnorms, trainable):
            layer.trainable = was
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def load_savedmodel(model_dir: Path, dropout: bool):
    """Load the SavedModel and return a callable ``frames -> next frame`` (the dropout or the inference endpoint)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(Path(model_dir) / SAVEDMODEL_DIR))
    endpoint = loaded.serve_dropout if dropout else loaded.serve
    endpoint._videogen_keepalive = loaded  # the endpoint's variables live on the loaded object
    return endpoint
