"""videogen: learn how a video moves (a pix2pix next-frame model) and generate new video from one frame.

The library holds all real logic, one module per stage, each working on local paths and knowing nothing of KFP:
``dataset`` (prepare), ``train``, ``generate``, ``encode``, ``evaluate``; plus ``video`` (ffmpeg in and out),
``model`` (networks and losses), ``storage`` (object storage and URLs), ``report`` and ``cli``.
Importing this package does no work: heavy modules (TensorFlow) are imported only by the stages that need them.
"""

__version__ = "0.1.0"
