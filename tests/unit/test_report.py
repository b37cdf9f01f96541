"""Tests of videogen.report: the HTML report is self-contained, under the size cap (shrinking the preview to fit),
renders in headless Chromium with its images decoded; the Markdown summary has no raw HTML."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from tests.media import moving_square_frames
from videogen import evaluate as ev
from videogen import report

SIZE = 64
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EXTERNAL_URL = re.compile(r"""(?:\b(?:src|href|xlink:href|srcset|poster|action)\s*=\s*["']?\s*|url\(\s*["']?\s*|@import\s+["']?)
                              (?:https?:)?//""", re.IGNORECASE | re.VERBOSE)


def _inputs(preview_frames=None):
    """Everything render_html takes, as the evaluate stage would pass it (numbers made up, shapes real)."""
    frames = moving_square_frames(40, SIZE)
    generated = moving_square_frames(30, SIZE)
    generated[20:] = 128  # collapses at frame 20, so the health section has a flag to show
    health = ev.long_rollout_health(generated, ev.training_reference(frames, 0, 30))
    one_step = {"pairs": 9, "first_pair": 30, "last_pair": 38, "psnr_model": 31.2, "psnr_copy": 25.3,
                "ssim_model": 0.981, "ssim_copy": 0.954, "psnr_gain": 5.9}
    rollout = [{"k": k, "starts": 4, "psnr_model": 30 - k, "psnr_copy": 26 - 2 * k, "ssim_model": 0.97,
                "ssim_copy": 0.9} for k in (1, 5, 10)]
    metrics = {"settings": {"seed": 0}, "psnr_cap_db": 100.0, "one_step": one_step, "rollout": rollout,
               "rollout_starts": [30, 31, 32, 33], "health": health, "final_losses": {"gen_l1": 0.02},
               "dataset": {"num_frames": 40, "image_size": SIZE, "train": [0, 29], "val": [30, 39]},
               "verdict": ev.verdict(one_step, rollout, health)}
    dataset_info = {"fps": 25.0, "image_size": SIZE, "num_frames": 40, "source": "synthetic <square>.mp4",
                    "train": [0, 29], "val": [30, 39]}
    model_info = {"context_frames": 2, "residual": True, "steps": 800, "train_images_per_s": 41.5,
                  "train_seconds": 95.0}
    generation_info = {"frames": 30, "num_videos": 1, "fps": 25.0, "frames_per_s": 60.0, "device": "CPU"}
    strip = [report.StripRow(i, frames[i], frames[i + 1], frames[i + 1]) for i in (30, 34, 38)]
    history = [{"step": s, "gen_gan": 2.0 - s / 500, "gen_l1": 0.3 / (1 + s / 50), "disc": 0.5 + 0.1 * np.sin(s)}
               for s in range(0, 800, 2)]
    return metrics, dataset_info, model_info, generation_info, strip, history, (
        generated if preview_frames is None else preview_frames)


def test_html_report_is_self_contained_and_under_2_mb():
    """No src/href/url()/@import points outside the page (no http://, https:// or protocol-relative //), images are
    data: URIs, there is no <link> or <script src>, and the page is well under 2 MB."""
    html = report.render_html(*_inputs())
    assert not EXTERNAL_URL.search(html)
    assert "http://" not in html and "https://" not in html
    assert not re.search(r"<link\b|<script\b[^>]*\bsrc|<iframe\b", html, re.IGNORECASE)
    images = re.findall(r'<img[^>]*\bsrc="([^"]+)"', html)
    assert len(images) == 3 * 3 + 1 and all(src.startswith("data:image/") for src in images)
    assert "data:image/webp;base64," in html  # the animated preview
    assert len(html.encode("utf-8")) < 2_000_000
    assert "&lt;square&gt;" in html  # text from inputs is escaped, not markup


def test_external_url_pattern_catches_what_would_load_from_outside():
    """The check above is only as good as its pattern: it flags src/href/url() to http(s) and protocol-relative
    URLs and lets data: URIs through."""
    for bad in ('<img src="https://x.org/a.png">', "<a href='//cdn.x/y'>", "background:url( http://x/y.png )",
                '@import "https://x/y.css"'):
        assert EXTERNAL_URL.search(bad), bad
    assert not EXTERNAL_URL.search('<img src="data:image/png;base64,AAAA">')


def test_html_report_shrinks_then_drops_the_preview_to_fit_the_cap():
    """A preview of incompressible noise cannot fit a small cap: the page still fits, first with a smaller preview,
    at the smallest cap without it; the cap is enforced on the UTF-8 byte size."""
    noise = np.random.default_rng(0).integers(0, 256, (100, 128, 128, 3), dtype=np.uint8)
    metrics, *rest = _inputs(preview_frames=noise)
    full = report.render_html(metrics, *rest, max_bytes=10**8)
    cap = len(full.encode()) // 2
    smaller = report.render_html(metrics, *rest, max_bytes=cap)
    assert len(smaller.encode()) <= cap and "data:image/webp" in smaller
    without_preview = report.render_html(metrics, *rest[:-1], None)
    tiny = report.render_html(metrics, *rest, max_bytes=len(without_preview.encode()) + 1000)
    assert "data:image/webp" not in tiny and "dropped to keep the page under 2 MB" in tiny


def test_loss_history_with_missing_keys_or_none_still_renders():
    """Records that lack some losses plot what is there and name what is missing; no history says so."""
    metrics, dataset_info, model_info, generation_info, strip, _, preview = _inputs()
    partial = [{"step": s, "gen_l1": 1.0 / (s + 1)} for s in range(10)]
    html = report.render_html(metrics, dataset_info, model_info, None, strip, partial, None)
    assert "generator L1 loss" in html and "Not recorded: generator GAN loss, discriminator loss" in html
    empty = report.render_html(metrics, dataset_info, model_info, generation_info, [], [], preview)
    assert "No loss history was recorded" in empty


def test_markdown_summary_has_headline_numbers_and_no_raw_html():
    """The KFP Markdown viewer disables raw HTML: the summary has no angle brackets at all, names the source, the
    training time, the one-step and rollout numbers and the verdict, and is far below 400,000 characters."""
    metrics, dataset_info, model_info, generation_info, _, history, _ = _inputs()
    md = report.render_markdown(metrics, dataset_info, model_info, generation_info, history)
    assert "<" not in md and ">" not in md
    assert "synthetic ‹square›.mp4" in md and "95 s" in md and "31.20" in md and "25.30" in md
    assert "| 10 | 4 | 20.00 | 6.00 |" in md and "collapsed: yes, from frame 20" in md
    assert "beats copying the last frame by 5.90 dB" in md
    assert len(md) < 400_000


def test_partially_decoded_input_is_stated_in_the_report_and_summary():
    """A dataset made from a cut or damaged file (prepare's partial_decode) says so in the HTML and the Markdown,
    with prepare's note, so a cluster user sees it without reading the prepare step's log."""
    metrics, dataset_info, model_info, generation_info, strip, history, preview = _inputs()
    dataset_info = {**dataset_info, "partial_decode": True, "notes": ["decoded 24 of 40 frames: cut or damaged"]}
    md = report.render_markdown(metrics, dataset_info, model_info, generation_info, history)
    html = report.render_html(metrics, dataset_info, model_info, generation_info, strip, history, preview)
    for text in (md, html):
        assert "only part of the video decoded" in text and "decoded 24 of 40 frames" in text
    assert "only part of the video" not in report.render_markdown(*_inputs()[:4], history)


def test_write_report_writes_both_files(tmp_path):
    """write_report puts report.html and summary.md in the output dir (created)."""
    html_path, md_path = report.write_report(tmp_path / "out", *_inputs())
    assert html_path.read_text().startswith("<!DOCTYPE html>") and md_path.read_text().startswith("# ")


def _noisy_square() -> np.ndarray:
    """The moving square with +-3 noise, so that held-out patches are not all in the training bank (realism defined)."""
    frames = moving_square_frames(40, SIZE).astype(int)
    noise = np.random.default_rng(0).integers(-3, 4, frames.shape)
    return np.clip(frames + noise, 0, 255).astype(np.uint8)


def _video_quality(generated: np.ndarray) -> dict:
    """The evaluate stage's video_quality section for one generated video of the noisy moving square."""
    from pathlib import Path

    from videogen.artifacts import Dataset

    frames = _noisy_square()
    dataset = Dataset(Path("dataset"), frames, {"start_frame": 31})
    return ev.video_quality(generated[:, None], [31], dataset, (0, 28), (29, 39))


def test_video_quality_section_draws_curves_with_thresholds_baselines_and_names_failures():
    """The report's video-quality section: the verdict line, the checks with the frame each failure starts, a table
    of the video and both baselines, and motion / realism / sharpness curves over the generated frames with the
    threshold lines and the baselines; the summary has the line and the table. Frames 0-4 move, then the video
    freezes: "frozen" starts at frame 0, the first frame of its only (30-frame) window."""
    generated = _noisy_square()[5:35].copy()
    generated[5:] = generated[4]
    metrics, dataset_info, model_info, generation_info, strip, history, preview = _inputs()
    metrics["video_quality"] = quality = _video_quality(generated)
    assert quality["verdict"]["failures"]["frozen"]["frame"] == 0
    html = report.render_html(metrics, dataset_info, model_info, generation_info, strip, history, preview)
    assert "Video quality (1 video scored): frozen from frame 0 (video 0)" in html
    assert '<span class="flag on">yes, from frame 0</span></td><td class="l">motion below 0.5 x' in html
    for text in ("motion (1 = like the clip)", "realism (1 = like the clip)", "sharpness (1 = like the clip)",
                 "frozen below", "jitter above", "mush above", "blur below", "noise above", ">copy<", ">textures<",
                 "Video Textures (replay)", "copy last frame (frozen)"):
        assert text in html, text
    assert len(html.encode("utf-8")) < 2_000_000 and not EXTERNAL_URL.search(html)
    md = report.render_markdown(metrics, dataset_info, model_info, generation_info, history)
    assert "## Video quality" in md and "frozen from frame 0 (video 0)" in md and "| Video Textures (replay) |" in md
    assert "<" not in md and ">" not in md


def test_report_without_a_generated_video_says_the_video_quality_was_not_scored():
    metrics, dataset_info, model_info, generation_info, strip, history, preview = _inputs()
    html = report.render_html(metrics, dataset_info, model_info, generation_info, strip, history, preview)
    assert "Not scored: no generated video was given." in html
    assert "Not scored: no generated video was given." in report.render_markdown(metrics, dataset_info, model_info,
                                                                                  generation_info, history)


def _chromium(args: list[str], profile) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           "--hide-scrollbars", f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=90)


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs Debian's chromium)")
def test_html_report_opens_in_headless_chromium_with_images_decoded(tmp_path):
    """Chromium decodes every image (naturalWidth > 0, read back through --dump-dom from a copy with a probe script)
    and a screenshot of the page is not blank (pixel variance > 0, not all white, the coloured frames visible)."""
    from PIL import Image

    html = report.render_html(*_inputs())
    page = tmp_path / "report.html"
    page.write_text(html)
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", (
        "<script>window.addEventListener('load',()=>{const p=document.createElement('pre');p.id='probe';"
        "p.textContent=JSON.stringify([...document.images].map(i=>[i.complete,i.naturalWidth]));"
        "document.body.appendChild(p);});</script></body>")))
    dom = _chromium(["--virtual-time-budget=5000", "--dump-dom", probe.as_uri()], tmp_path / "profile1")
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout)
    assert found, dom.stderr[-2000:]
    decoded = json.loads(found.group(1))
    assert len(decoded) == 10 and all(complete and width > 0 for complete, width in decoded), decoded

    shot = tmp_path / "shot.png"
    _chromium([f"--screenshot={shot}", "--window-size=1000,1400", page.as_uri()], tmp_path / "profile2")
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    assert pixels.var() > 0 and (pixels < 250).any()
    # The strip's yellow square (240, 220, 40) shows up: the frame images were painted, not just the text.
    yellow = (np.abs(pixels - [240, 220, 40]).max(axis=-1) < 20).sum()
    assert yellow > 500


def test_steering_line_names_the_look_and_the_final_controls():
    """The report's "Generated" line says how the video was steered: change scale, unsharp and the look's weight,
    named after the look the state was written with (states from before the patch look were whole-frame)."""
    from videogen.report import _steering_text

    state = {"tau": [1.2], "amount": [0.3], "weight": [0.5], "look": "patch"}
    assert _steering_text(state) == "steered (final change scale 1.20; unsharp 0.30; patch look 0.50)"
    assert "frame look 0.50" in _steering_text({k: v for k, v in state.items() if k != "look"})
    assert _steering_text(None) == "not steered (plain feedback loop)"
