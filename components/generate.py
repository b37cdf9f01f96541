"""Component: Model + Dataset -> generated frames (one frames.npy, time-major, + generation.json)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components._base import DEFAULT_IMAGE


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def generate_frames(model: Input[Model], dataset: Input[Dataset], generated: Output[Artifact], run_id: str,
                    checkpoint_root: str, resume_key: str, frames: int, num_videos: int, deterministic: bool,
                    steer: bool, fps: float, seed: int):
    """Roll the model out from the dataset's start frame: one model load, each prediction is the next input.

    When ``checkpoint_root`` is a local or mounted path, partial output lives at
    ``{checkpoint_root}/{resume_key or run_id}/generate`` so a restarted task continues instead of starting over.
    """
    from pathlib import Path

    from videogen import generate as stage
    from videogen import runs, storage
    from videogen.errors import exit_on_user_error

    partial = runs.checkpoint_uri(checkpoint_root, run_id, resume_key, "generate")
    resume_dir = None if storage.is_remote(partial) else Path(partial)
    settings = stage.GenerateSettings(frames=frames, num_videos=num_videos, deterministic=deterministic,
                                      steer=steer, fps=fps, seed=seed)
    with exit_on_user_error():
        info = stage.generate(Path(model.path), Path(generated.path), settings, dataset_dir=Path(dataset.path),
                              resume_dir=resume_dir)
    generated.metadata.update({key: info[key] for key in ("frames", "num_videos", "fps", "device", "frames_per_s")})
