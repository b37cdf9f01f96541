"""Components of the prepare stage: the list of videos -> one Dataset per video (frames.npy + dataset.json), prepared
in parallel -> one combined Dataset.

A video is a local path, s3://, minio:// or http(s):// URI; ``list_videos`` expands a list or a prefix first.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components._base import DEFAULT_IMAGE


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def prepare_dataset(video: str, dataset: Output[Dataset], image_size: int, train_ratio: float, seed: int,
                    max_pixels: int, video_identity: str):
    """Decode the video, crop and scale its frames, split train/val and pick the start frame.

    ``video_identity`` (this clip's ETag, or size and modification time, from ``list_videos``) is an input so that it
    is part of KFP's cache key of this task: a clip overwritten at the same URI misses the cache, the run's other
    clips do not. It is recorded in the dataset artifact's metadata beside the URI it identifies.
    """
    import tempfile
    from pathlib import Path

    from videogen import dataset as stage
    from videogen import storage
    from videogen.errors import exit_on_user_error

    with exit_on_user_error(), tempfile.TemporaryDirectory() as tmp:
        local = storage.fetch(video, Path(tmp) / "input-video") if storage.is_remote(video) else Path(video)
        settings = stage.PrepareSettings(image_size=image_size, train_ratio=train_ratio, seed=seed,
                                         max_pixels=max_pixels)
        info = stage.prepare(local, Path(dataset.path), settings)
    dataset.metadata.update({key: info[key] for key in ("num_frames", "image_size", "fps", "start_frame")})
    dataset.metadata.update({"video": video, "video_identity": video_identity})


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def list_videos(video: str, max_videos: int, video_identity: str) -> list:
    """Expand ``video`` (one video, a comma-separated list, or a folder / s3:// prefix) into the video files to
    prepare, one item ``{"video": uri, "identity": ...}`` per iteration of the pipeline's ParallelFor: each clip's own
    content identity (after ``video_identity`` when given) keys its prepare task's cache. An empty or unreadable prefix
    fails with one line."""
    from videogen import sources
    from videogen.errors import exit_on_user_error

    with exit_on_user_error():
        return sources.clip_items(video, max_videos, video_identity)


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def combine_datasets(datasets: Input[list[Dataset]], dataset: Output[Dataset]):
    """The prepared videos as one Dataset that one model trains on (each video keeps its own split and start frame;
    see ``videogen.dataset.combine``). The names in the report are the videos' URIs that prepare recorded."""
    from pathlib import Path

    from videogen import dataset as stage
    from videogen.errors import exit_on_user_error

    names = [str(item.metadata.get("video") or item.path) for item in datasets]
    with exit_on_user_error():
        info = stage.combine([Path(item.path) for item in datasets], Path(dataset.path), names=names)
    dataset.metadata.update({"num_frames": info["num_frames"], "image_size": info["image_size"], "fps": info["fps"],
                             "videos": names})
