"""Thin KFP components, one module per stage. Each is a lightweight Python component (`@dsl.component`) whose body
imports `videogen` and calls one library function; the pipeline sets each task's image from `ClusterConfig`.

Lightweight components (not container components) because kfp.local's SubprocessRunner runs only these; with
`base_image` set to the project's image they run the same way on a cluster.

A component's parameters have no defaults: the settings dataclass of its stage (or `videogen.runs.RunSettings`)
holds each default, and the pipeline passes every parameter.
"""

from components.clips import clip_scope, first_clip
from components.encode import encode_video
from components.evaluate import evaluate_model
from components.generate import generate_frames
from components.prepare import combine_datasets, list_videos, prepare_dataset
from components.train import launch_trainjob, train_model

__all__ = ["list_videos", "prepare_dataset", "combine_datasets", "train_model", "launch_trainjob",
           "generate_frames", "encode_video", "evaluate_model", "clip_scope", "first_clip"]
