"""Per-video models: each clip's name and place within the run, and how `videogen run` delivers the clips' results."""

from pathlib import Path

from pipeline.local_runner import _deliver_other_clips
from videogen import runs


def test_a_clip_is_named_after_its_file_and_numbered_only_when_an_earlier_clip_has_its_name():
    videos = ["s3://b/clips/fire.mp4", "/data/a b/waves.mov", "s3://b/more/fire.mkv", "https://x/v.mp4?sig=1"]
    assert [runs.clip_name(v, videos) for v in videos] == ["fire", "waves", "2-fire", "v"]
    assert runs.clip_name("/x/.hidden.mp4", ["/x/.hidden.mp4"]) == "hidden"


def test_a_clips_scope_nests_its_results_and_checkpoints_below_the_runs():
    videos = ["/c/fire.mp4", "/c/waves.mp4"]
    assert runs.clip_scope("/c/waves.mp4", videos, "run-1", "") == ("run-1/waves", "")
    assert runs.clip_scope("/c/waves.mp4", videos, "run-1", "key") == ("run-1/waves", "key/waves")
    run_id, key = runs.clip_scope("/c/fire.mp4", videos, "run-1", "key")
    assert runs.publish_uri("s3://b/out", run_id) == "s3://b/out/run-1/fire/gen.mp4"
    assert runs.checkpoint_uri("s3://b/ckpt", run_id, key, "train") == "s3://b/ckpt/key/fire/train"
    assert runs.checkpoint_uri("/ckpt", *runs.clip_scope("/c/fire.mp4", videos, "run-1", ""), "train") == \
        str(Path("/ckpt/run-1/fire/train"))


def test_the_other_clips_go_beside_the_output_named_after_it_and_the_clip(tmp_path):
    run = tmp_path / "published" / "run-1"
    for clip in ("fire", "traffic", "waves"):
        (run / clip).mkdir(parents=True)
        for name in (runs.VIDEO_NAME, *runs.REPORT_NAMES):
            (run / clip / name).write_text(f"{clip} {name}")
    output = tmp_path / "out" / "waves.mp4"  # an output named like a clip is not overwritten by that clip
    output.parent.mkdir()
    output.write_text("the first clip's video")
    delivered = _deliver_other_clips(run / "fire", str(output))
    assert delivered == (str(tmp_path / "out" / "waves-traffic.mp4"), str(tmp_path / "out" / "waves-waves.mp4"))
    assert output.read_text() == "the first clip's video"
    assert (tmp_path / "out" / "waves-waves.mp4").read_text() == f"waves {runs.VIDEO_NAME}"
    for name in runs.REPORT_NAMES:
        assert (tmp_path / "out" / f"waves-traffic.{name}").read_text() == f"traffic {name}"
