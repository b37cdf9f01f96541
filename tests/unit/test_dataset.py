"""videogen.dataset: the prepare stage on real video (synthetic and real footage), split rules, A|B export."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from tests.media import moving_square_frames
from videogen import dataset
from videogen.errors import InputError

SMALL = dataset.PrepareSettings(image_size=64, train_ratio=0.75, seed=3)


def test_prepare_synthetic_video_writes_mmap_frames_and_dataset_json(synthetic_video, tmp_path):
    """The 40-frame 64x64 synthetic video becomes frames.npy uint8 (40, 64, 64, 3), memory-mappable and equal to the
    source frames (lossless source, no scaling needed), plus dataset.json with the contract's fields."""
    out = tmp_path / "ds"
    info = dataset.prepare(synthetic_video, out, SMALL)
    frames, loaded = dataset.load_dataset(out)
    assert isinstance(frames, np.memmap)
    assert frames.shape == (40, 64, 64, 3) and frames.dtype == np.uint8
    assert np.abs(frames.astype(np.int16) - moving_square_frames(40, 64)).max() <= 3
    assert loaded == info == json.loads((out / "dataset.json").read_text())
    assert info["fps"] == pytest.approx(25.0) and info["image_size"] == 64 and info["num_frames"] == 40
    assert info["source"] == str(synthetic_video)
    assert info["train"] == [0, 29] and info["val"] == [29, 39]  # round(0.75 * 39) = 29 pairs train
    assert info["val"][0] <= info["start_frame"] < info["val"][1]
    assert info["seed"] == 3 and info["settings"] == dataclasses.asdict(SMALL)
    assert (info["source_width"], info["source_height"], info["rotation"]) == (64, 64, 0)
    assert info["partial_decode"] is False and info["notes"] == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "synthetic.mp4"]  # no temporary dir left
    assert sorted(p.name for p in out.iterdir()) == ["dataset.json", "frames.npy"]


def test_prepare_real_clip_decodes_every_frame_center_cropped(real_clip_path, tmp_path):
    """Big Buck Bunny (1280x720, 132 frames, with audio) becomes 132 square 64 px frames; the source size is kept in
    dataset.json and the frames are real footage (not flat)."""
    info = dataset.prepare(real_clip_path, tmp_path / "bbb", dataset.PrepareSettings(image_size=64))
    frames, _ = dataset.load_dataset(tmp_path / "bbb")
    assert frames.shape == (132, 64, 64, 3) and info["num_frames"] == 132
    assert (info["source_width"], info["source_height"]) == (1280, 720)
    assert info["fps"] == pytest.approx(25.0)
    assert info["train"] == [0, 118] and info["val"] == [118, 131]
    assert frames.std() > 10 and not info["partial_decode"]


def test_prepare_max_frames_keeps_only_the_first_frames(synthetic_video, tmp_path):
    """max_frames=10 stops ffmpeg after 10 frames; the split is then made on those 10."""
    info = dataset.prepare(synthetic_video, tmp_path / "ds", dataclasses.replace(SMALL, max_frames=10))
    frames, _ = dataset.load_dataset(tmp_path / "ds")
    assert frames.shape[0] == info["num_frames"] == 10
    assert info["val"][1] == 9


@pytest.mark.parametrize("num_frames", [3, 4, 5, 11, 40, 1001])
@pytest.mark.parametrize("train_ratio", [0.01, 0.5, 0.9, 0.99])
def test_split_is_contiguous_train_first_and_both_blocks_non_empty(num_frames, train_ratio):
    """Pairs split into [0, k) train then [k, N-1) val: contiguous, train first, together all N-1 pairs, both
    non-empty even for 3 frames or extreme ratios."""
    train, val = dataset.split_pairs(num_frames, train_ratio)
    assert train[0] == 0 and train[1] == val[0] and val[1] == num_frames - 1
    assert train[1] - train[0] >= 1 and val[1] - val[0] >= 1


def test_split_refuses_fewer_than_three_frames():
    """Two frames make one pair, not enough for a train and a val block."""
    with pytest.raises(InputError, match="at least 3"):
        dataset.split_pairs(2, 0.9)


def test_start_frame_is_in_val_block_reproducible_and_varies_with_seed():
    """The start frame is drawn inside the val block, the same for the same seed, and different seeds give
    different start frames in general."""
    val = (900, 1000)
    starts = [dataset.choose_start_frame(val, seed) for seed in range(20)]
    assert all(900 <= s < 1000 for s in starts)
    assert starts == [dataset.choose_start_frame(val, seed) for seed in range(20)]
    assert len(set(starts)) > 10


def test_prepare_start_frame_follows_seed(synthetic_video, tmp_path):
    """Two prepares with the same seed pick the same start frame; it matches choose_start_frame on the val block."""
    first = dataset.prepare(synthetic_video, tmp_path / "a", dataclasses.replace(SMALL, seed=11))
    second = dataset.prepare(synthetic_video, tmp_path / "b", dataclasses.replace(SMALL, seed=11))
    assert first["start_frame"] == second["start_frame"] == dataset.choose_start_frame(tuple(first["val"]), 11)


def test_settings_refuse_unsupported_values_and_carry_help():
    """Only 64/128/256/512 px and ratios strictly between 0 and 1 are accepted; every field has help text."""
    for bad in (dict(image_size=100), dict(train_ratio=1.0), dict(train_ratio=0), dict(max_frames=2),
                dict(max_pixels=0), dict(timeout_s=0)):
        with pytest.raises(InputError):
            dataset.PrepareSettings(**bad)
    defaults = dataset.PrepareSettings()
    assert (defaults.image_size, defaults.train_ratio, defaults.seed, defaults.max_frames) == (256, 0.9, 0, 0)
    assert defaults.max_pixels >= 3840 * 2160 > 0 and 7680 * 4320 > defaults.max_pixels
    assert all(f.metadata.get("help") for f in dataclasses.fields(dataset.PrepareSettings))


def test_check_free_space_refuses_more_than_the_disk_holds(tmp_path):
    """The free-space check compares the expected size with the file system's free bytes and refuses with one
    line naming both."""
    dataset.check_free_space(tmp_path / "new" / "dir", 1000, "a test")
    with pytest.raises(InputError, match="not enough free disk space") as caught:
        dataset.check_free_space(tmp_path, 10**18, "a test")
    assert "\n" not in str(caught.value)


def test_prepare_refuses_before_decoding_when_the_disk_is_too_small(synthetic_video, tmp_path, monkeypatch):
    """prepare() checks the free space against the probed N x S x S x 3 bytes before ffmpeg decodes anything: with a
    disk reporting 1 MB free, it refuses in one line, never starts a decode, and leaves no dataset."""
    import collections
    import shutil

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**6, 0, 10**6))
    decoded = []
    monkeypatch.setattr(dataset._video, "FrameDecoder", lambda *a, **k: decoded.append(1))
    with pytest.raises(InputError, match="not enough free disk space"):
        dataset.prepare(synthetic_video, tmp_path / "ds", dataset.PrepareSettings(image_size=64))
    assert not decoded and not (tmp_path / "ds").exists()


def test_load_dataset_refuses_a_directory_that_is_not_a_dataset(tmp_path):
    """A missing dir, an empty dir and a dir with a damaged frames.npy each give a one-line InputError."""
    with pytest.raises(InputError, match="does not exist"):
        dataset.load_dataset(tmp_path / "nope")
    with pytest.raises(InputError, match="is not a dataset directory"):
        dataset.load_dataset(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"image_size": 64, "num_frames": 3}))
    (tmp_path / "frames.npy").write_bytes(b"not numpy")
    with pytest.raises(InputError, match="damaged"):
        dataset.load_dataset(tmp_path)


def test_prepare_replaces_previous_dataset_but_not_other_content(synthetic_video, tmp_path):
    """Preparing into an old dataset dir replaces it; a non-empty dir that is not a dataset is refused untouched."""
    out = tmp_path / "ds"
    dataset.prepare(synthetic_video, out, dataclasses.replace(SMALL, max_frames=5))
    dataset.prepare(synthetic_video, out, SMALL)
    assert dataset.load_dataset(out)[1]["num_frames"] == 40
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not empty"):
        dataset.prepare(synthetic_video, other, SMALL)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_export_ab_writes_pix2pix_pairs_frame_t_beside_frame_t_plus_1(synthetic_video, tmp_path):
    """prepare(export_ab=DIR) writes train/ and val/ PNGs, 2S wide: A (frame t) on the left, B (frame t+1) on the
    right, one image per pair of each block."""
    info = dataset.prepare(synthetic_video, tmp_path / "ds", SMALL, export_ab=tmp_path / "ab")
    frames, _ = dataset.load_dataset(tmp_path / "ds")
    train = sorted((tmp_path / "ab" / "train").iterdir())
    val = sorted((tmp_path / "ab" / "val").iterdir())
    assert len(train) == info["train"][1] and len(val) == info["val"][1] - info["val"][0]
    pair = info["val"][0] + 2
    image = np.asarray(Image.open(tmp_path / "ab" / "val" / f"{pair:06d}.png"))
    assert image.shape == (64, 128, 3)
    assert np.array_equal(image[:, :64], frames[pair]) and np.array_equal(image[:, 64:], frames[pair + 1])
    result = dataset.export_ab(tmp_path / "ds", tmp_path / "ab2")
    assert result["train"] == len(train) and result["val"] == len(val)
