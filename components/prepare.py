"""Component: video (local path, s3://, minio://, http(s)://) -> Dataset (frames.npy + dataset.json)."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from components._base import DEFAULT_IMAGE


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def prepare_dataset(video: str, dataset: Output[Dataset], image_size: int, train_ratio: float, seed: int,
                    max_pixels: int, video_identity: str):
    """Decode the video, crop and scale its frames, split train/val and pick the start frame.

    ``video_identity`` (the video's ETag, or size and modification time, resolved by the runner) is an input so that
    it is part of KFP's cache key of this task: a video overwritten at the same URI misses the cache. It is recorded
    in the dataset artifact's metadata beside the URI it identifies.
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
