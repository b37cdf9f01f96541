"""Component: generated frames -> H.264 mp4 artifact, published to ``{output_root}/{run_id}/gen.mp4``."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Output

from components._base import DEFAULT_IMAGE


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def encode_video(generated: Input[Artifact], video: Output[Artifact], run_id: str, output_root: str,
                 fps: float) -> str:
    """Encode the first generated video and publish it where `videogen fetch --run-id` finds it; returns that URI."""
    import shutil
    import tempfile
    from pathlib import Path

    from videogen import encode as stage
    from videogen import runs, storage
    from videogen.errors import exit_on_user_error

    published = runs.publish_uri(output_root, run_id)
    with exit_on_user_error(), tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / runs.VIDEO_NAME
        info = stage.encode(Path(generated.path), local, fps=fps or None)
        shutil.copyfile(local, video.path)
        storage.put(local, published)
    video.metadata.update({"frames": info["frames"], "fps": info["fps"], "published": published,
                           "mime_type": "video/mp4"})
    return published
