"""videogen: learn how a video moves (a pix2pix next-frame model) and generate new video from one frame.

The library holds all real logic, one module per stage, each working on local paths and knowing nothing of KFP:
``dataset`` (prepare), ``train`` (a package), ``generate``, ``encode``, ``evaluate``; shared by them: ``artifacts``
(the directories stages hand each other: file names, readers, atomic and streaming writers), ``frames`` (uint8 <->
[-1, 1], context stacking, the one rollout), ``hardware`` (device, bf16, XLA, training devices), ``generator_io``
(loading a generator, the inference copy), ``model`` (networks and losses), ``video`` (ffmpeg in and out),
``storage`` (object storage and URLs), ``report`` and ``cli``.
Importing this package does no work: heavy modules (TensorFlow) are imported only by the stages that need them.
"""

__version__ = "0.1.0"
