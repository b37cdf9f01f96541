"""`video` naming several videos: a comma-separated list, a local folder or an object-store prefix (real files, a real
S3 server on loopback), expanded into the files, bounded, with one-line errors for an empty or unreadable prefix."""

import subprocess
import sys

import pytest

from videogen import sources, storage
from videogen.errors import InputError, StorageError


@pytest.fixture
def clips(tmp_path):
    """A folder of three small files with video names, plus files the listing must skip."""
    folder = tmp_path / "clips"
    (folder / "sub").mkdir(parents=True)
    for name in ("b.mp4", "a.MOV", "sub/c.webm"):
        (folder / name).write_bytes(name.encode())
    (folder / "notes.txt").write_text("not a video")
    (folder / ".hidden.mp4").write_bytes(b"editor swap file")
    return folder


def test_a_folder_lists_its_video_files_sorted_and_skips_hidden_and_other_files(clips):
    assert sources.list_videos(str(clips), max_videos=10) == [str(clips / n) for n in ("a.MOV", "b.mp4", "sub/c.webm")]


def test_a_single_file_and_a_url_stay_one_video_each(clips):
    assert sources.list_videos(str(clips / "b.mp4"), 1) == [str(clips / "b.mp4")]
    assert sources.list_videos("https://example.com/v.mp4", 1) == ["https://example.com/v.mp4"]


def test_a_comma_separated_list_keeps_its_order_drops_repeats_and_expands_folders(clips, tmp_path):
    other = tmp_path / "z.mp4"
    other.write_bytes(b"z")
    listed = sources.list_videos(f"{other}, {clips / 'b.mp4'},{other},{clips / 'sub'}", 10)
    assert listed == [str(other), str(clips / "b.mp4"), str(clips / "sub" / "c.webm")]


def test_a_file_name_with_a_comma_is_one_video(tmp_path):
    video = tmp_path / "waves, evening.mp4"
    video.write_bytes(b"v")
    assert sources.list_videos(str(video), 1) == [str(video)]


def test_more_videos_than_the_bound_is_refused_with_what_to_do(clips):
    with pytest.raises(InputError, match=r"more than --max-videos 2 videos: raise --max-videos"):
        sources.list_videos(str(clips), max_videos=2)


@pytest.mark.parametrize("text", ["", " , "])
def test_an_empty_video_argument_is_refused(text):
    with pytest.raises(InputError, match="--video is empty"):
        sources.list_videos(text, 5)


def test_a_folder_without_videos_is_refused_in_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(InputError, match=r"no readable video files under .*empty \(1 other file"):
        sources.list_videos(str(tmp_path / "empty"), 5)


def test_an_s3_prefix_lists_the_video_objects_below_it(s3_bucket, s3_client, tmp_path):
    source = tmp_path / "x.bin"
    source.write_bytes(b"data")
    for key in ("clips/one.mp4", "clips/two.mkv", "clips/list.txt", "clips/.tmp/part.mp4", "other/three.mp4"):
        storage.put(source, f"s3://{s3_bucket}/{key}", client=s3_client)
    assert sources.list_videos(f"minio://{s3_bucket}/clips/", 5, client=s3_client) == [
        f"minio://{s3_bucket}/clips/one.mp4", f"minio://{s3_bucket}/clips/two.mkv"]
    assert sources.list_videos(f"s3://{s3_bucket}/clips/one.mp4", 5, client=s3_client) == [
        f"s3://{s3_bucket}/clips/one.mp4"]  # no trailing slash: one object


def test_an_empty_s3_prefix_and_a_missing_bucket_end_in_one_line(s3_bucket, s3_client):
    with pytest.raises(InputError, match=rf"no readable video files under s3://{s3_bucket}/nothing/"):
        sources.list_videos(f"s3://{s3_bucket}/nothing/", 5, client=s3_client)
    with pytest.raises(StorageError) as error:
        sources.list_videos("s3://no-such-bucket-here/clips/", 5, client=s3_client)
    assert "\n" not in str(error.value) and "no-such-bucket-here" in str(error.value)


def test_the_identity_of_several_videos_changes_when_a_clip_is_added_or_changed(clips):
    before = sources.sources_identity(str(clips), 10)
    assert before == sources.sources_identity(str(clips), 10) and before.startswith("videos=")
    (clips / "d.mp4").write_bytes(b"new clip")
    added = sources.sources_identity(str(clips), 10)
    (clips / "d.mp4").write_bytes(b"new clip, other content")
    assert len({before, added, sources.sources_identity(str(clips), 10)}) == 3


def test_videogen_run_refuses_an_empty_folder_with_one_line_and_no_traceback(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--video", str(tmp_path / "empty"),
                           "--work-dir", str(tmp_path / "work"), "--output", str(tmp_path / "g.mp4")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("videogen: error: no readable video files under")
    assert "Traceback" not in proc.stderr and not (tmp_path / "g.mp4").exists()
