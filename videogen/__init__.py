"""videogen: learn how a video moves (a pix2pix next-frame model) and generate new video from one frame.

The library holds all real logic, one module per stage, each working on local paths and knowing nothing of KFP:
``dataset`` (prepare), ``train`` (a package), ``generate``, ``encode``, ``evaluate``; shared by them: ``artifacts``
(the directories stages hand each other: file names, readers, atomic and streaming writers), ``frames`` (uint8 <->
[-1, 1], context stacking, the one rollout), ``hardware`` (device, bf16, XLA, training devices), ``generator_io``
(loading a generator, the inference copy), ``model`` (networks and losses), ``video`` (ffmpeg in and out),
``storage`` (object storage and URLs), ``report`` and ``cli``.
Importing this package does no work: heavy modules (TensorFlow) are imported only by the stages that need them. It
sets one default before TensorFlow loads: ``TF_ENABLE_ONEDNN_OPTS=1`` unless the environment already says otherwise.
TensorFlow's Linux wheels turn their oneDNN kernels on by default only on CPUs with AVX512_VNNI, AVX512_BF16,
AVX_VNNI or AMX (``DefaultOneDnnPolicy`` in tensorflow/core/util/port.cc); on an AVX2-only CPU they fall back to
Eigen kernels built for AVX, which trained and generated about 2x slower here (docs/performance.md).
"""

import os

# True when videogen chose oneDNN (the variable was unset); False when the user set TF_ENABLE_ONEDNN_OPTS.
ONEDNN_DEFAULTED = "TF_ENABLE_ONEDNN_OPTS" not in os.environ
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
