"""Components of per-video models (``per_video_models``): each clip's own place within the run, and the run's one
result whichever branch ran."""

from typing import NamedTuple

from kfp import dsl

from components._base import DEFAULT_IMAGE


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def clip_scope(video: str, videos: list, run_id: str,
               resume_key: str) -> NamedTuple("ClipScope", run_id=str, resume_key=str):
    """The run id and resume key the clip's train, generate, encode and evaluate use, so its checkpoints and published
    results sit in a folder of its own below the run's (``videogen.runs.clip_scope``). ``videos``: the items of
    ``list_videos`` (``{"video": uri, ...}``)."""
    from videogen import runs

    uris = [item["video"] if isinstance(item, dict) else item for item in videos]
    return runs.clip_scope(video, uris, run_id, resume_key)  # a plain tuple fills the outputs in order


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def first_clip(published: list[str]) -> str:
    """The first clip's published video: the pipeline's result, as the one model's video is; the other clips' folders
    are beside its own under the run's."""
    return published[0]
