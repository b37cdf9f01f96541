"""A dataset of several videos (real ffmpeg, real prepare): the combined dataset keeps each video's own split and
start frame, training examples never mix two videos, and rollouts start in different videos."""

import json

import numpy as np
import pytest

from tests.media import moving_square_frames, write_video
from videogen import artifacts
from videogen import dataset as ds
from videogen.errors import InputError
from videogen.generate import choose_video_starts
from videogen.train.data import block_examples

TAGS = (20, 120, 220)  # each clip's top-left corner has its own blue level, so every frame says which clip it is from
LENGTHS = (12, 15, 18)


def _tag_of(frame: np.ndarray) -> int:
    return TAGS[int(np.argmin([abs(int(frame[:4, :4, 2].mean()) - tag) for tag in TAGS]))]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Three clips of different lengths prepared at 64 px, and their combined dataset."""
    root = tmp_path_factory.mktemp("multi")
    dirs = []
    for number, (tag, length) in enumerate(zip(TAGS, LENGTHS)):
        frames = moving_square_frames(length, 64, step=number + 1)
        frames[:, :4, :4, 2] = tag
        video = write_video(root / f"clip{number}.mp4", frames)
        ds.prepare(video, root / f"d{number}", ds.PrepareSettings(image_size=64, train_ratio=0.75, seed=number))
        dirs.append(root / f"d{number}")
    names = [f"s3://clips/clip{number}.mp4" for number in range(3)]
    ds.combine(dirs, root / "combined", names=names)
    return dirs, artifacts.open_dataset(root / "combined")


def test_the_combined_dataset_keeps_each_videos_frames_split_and_start_frame(prepared):
    dirs, combined = prepared
    assert len(combined.frames) == sum(LENGTHS) and "train" not in combined.info  # no block spanning videos
    for number, (directory, video) in enumerate(zip(dirs, combined.videos)):
        own = artifacts.open_dataset(directory)
        assert np.array_equal(video.frames, own.frames)
        assert video.block("train") == own.block("train") and video.block("val") == own.block("val")
        assert video.info["start_frame"] == own.info["start_frame"]
        assert video.name == f"clip{number}.mp4" and video.first_frame == sum(LENGTHS[:number])
        assert {_tag_of(f) for f in video.frames} == {TAGS[number]}


def test_training_examples_never_mix_frames_of_two_videos(prepared):
    """Every example's context frames and target come from one clip, including the first pairs of each clip (whose
    context is clamped at the clip's start instead of reaching into the previous clip)."""
    _, combined = prepared
    blocks = [video.file_block("train") for video in combined.videos]
    seen = set()
    for inputs, target in block_examples(combined.frames, blocks, context_frames=3, seed=0).take(120):
        inputs, target = inputs.numpy(), target.numpy()
        tags = {_tag_of(inputs[..., 3 * k:3 * k + 3]) for k in range(3)} | {_tag_of(target)}
        assert len(tags) == 1, tags
        seen |= tags
    assert seen == set(TAGS)


def test_rollouts_start_in_different_videos_inside_their_validation_blocks(prepared):
    _, combined = prepared
    videos = combined.videos
    starts = choose_video_starts(combined, num_videos=4, context_frames=2, seed=0)
    assert [_tag_of(combined.frames[s]) for s in starts] == [TAGS[0], TAGS[1], TAGS[2], TAGS[0]]
    for j, start in enumerate(starts):
        video = videos[j % 3]
        local = start - video.first_frame
        first, end = video.block("val")
        assert first <= local <= end and local >= 1  # the context (K=2) stays inside the video
    assert starts[0] - videos[0].first_frame == videos[0].info["start_frame"]  # the dataset's own start first
    assert starts[3] != starts[0]


def test_one_video_passes_through_unchanged_but_named(prepared, tmp_path):
    dirs, _ = prepared
    info = ds.combine([dirs[0]], tmp_path / "one", names=["s3://clips/clip0.mp4"])
    own = json.loads((dirs[0] / artifacts.DATASET_FILE).read_text())
    assert info == {**own, "name": "clip0.mp4", "source": "s3://clips/clip0.mp4"}
    assert artifacts.open_dataset(tmp_path / "one").videos[0].block("train") == tuple(own["train"])


def test_videos_prepared_at_different_sizes_are_refused(prepared, tmp_path):
    dirs, _ = prepared
    small = tmp_path / "small"
    ds.prepare(write_video(tmp_path / "s.mp4", moving_square_frames(8, 64)), small, ds.PrepareSettings(image_size=128))
    with pytest.raises(InputError, match=r"different image sizes \[64, 128\]"):
        ds.combine([dirs[0], small], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_ab_of_a_combined_dataset_writes_every_videos_pairs(prepared, tmp_path):
    _, combined = prepared
    result = ds.export_ab_pairs(combined.dir, tmp_path / "ab")
    assert result["train"] == sum(v.block("train")[1] - v.block("train")[0] for v in combined.videos)
    assert result["val"] == sum(v.block("val")[1] - v.block("val")[0] for v in combined.videos)
