"""The evaluation report: a self-contained HTML page for the KFP UI (and ``videogen run``) and a Markdown summary.

Reads nothing; writes ``report.html`` and ``summary.md`` with :func:`write_report`. The KFP UI shows an HTML artifact
in a sandboxed iframe through ``srcdoc``, so the page loads nothing from outside: CSS is inline, plots are inline SVG
drawn here, images are base64 ``data:`` URIs (PNG/JPEG stills, an animated WebP preview). Large HTML artifacts have
frozen the UI, so :func:`render_html` keeps the page under :data:`MAX_HTML_BYTES` by shrinking, then dropping, the
preview and the frame strip. The KFP Markdown viewer has raw HTML disabled and cuts at 400,000 characters, so the
summary is plain Markdown of a few kilobytes.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAX_HTML_BYTES = 2_000_000
MAX_MARKDOWN_CHARS = 100_000

# Preview of the generated video, tried in this order until the page fits: (seconds, longest side in px).
_PREVIEW_LEVELS = ((4.0, 160), (4.0, 128), (3.0, 96), (2.0, 64), (1.0, 64))
# Frame strip, tried in this order once the preview is gone: (rows, longest side in px).
_STRIP_LEVELS = ((None, 256), (2, 128), (1, 64))
_PREVIEW_MAX_FPS = 25.0
_PLOT_MAX_POINTS = 400

_VIDEO_COLORS = ("#2471a3", "#ca6f1e", "#7d3c98", "#1e8449", "#c0392b", "#566573", "#b7950b", "#17a589")
_LOSS_SERIES = (("gen_gan", "generator GAN loss", "#c0392b"), ("gen_l1", "generator L1 loss", "#2471a3"),
                ("disc", "discriminator loss", "#7d3c98"))


@dataclass(frozen=True)
class StripRow:
    """One validation pair for the frame strip: the last input frame, the model's prediction and the real next frame
    (uint8 ``(S, S, 3)`` each); ``frame_index`` is the input frame's index in the dataset."""

    frame_index: int
    input: np.ndarray
    predicted: np.ndarray
    real: np.ndarray


# ------------------------------------------------------------------------------------------------------------ images
def _resize(image: np.ndarray, max_side: int):
    from PIL import Image

    img = Image.fromarray(np.asarray(image, dtype=np.uint8))
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
    return img


def image_data_uri(image: np.ndarray, max_side: int = 256) -> str:
    """A uint8 RGB image as a ``data:`` URI: PNG up to 128 px (lossless, small), JPEG (quality 88) above."""
    img = _resize(image, max_side)
    buf = io.BytesIO()
    if max(img.size) <= 128:
        img.save(buf, format="PNG", optimize=True)
        mime = "image/png"
    else:
        img.save(buf, format="JPEG", quality=88)
        mime = "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def animation_data_uri(frames: np.ndarray, fps: float, seconds: float, max_side: int) -> str | None:
    """The first ``seconds`` of a uint8 video ``(T, S, S, 3)`` as an animated WebP ``data:`` URI (looping), at most
    25 frames/s (frames are skipped above that), downscaled to ``max_side``. None if there are no frames."""
    if frames is None or len(frames) == 0:
        return None
    fps = fps if fps and fps > 0 else 25.0
    skip = max(1, math.ceil(fps / _PREVIEW_MAX_FPS))
    count = max(1, int(round(seconds * fps)))
    images = [_resize(f, max_side) for f in np.asarray(frames[:count])[::skip]]
    buf = io.BytesIO()
    images[0].save(buf, format="WEBP", save_all=True, append_images=images[1:], loop=0,
                   duration=max(20, round(1000 * skip / fps)), quality=70, method=4)
    return f"data:image/webp;base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


# ------------------------------------------------------------------------------------------------------------- plots
def _fmt(value: float) -> str:
    if value == 0 or 0.001 <= abs(value) < 10000:
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return f"{value:.2e}"


def _bin_mean(xs: np.ndarray, ys: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    if len(xs) <= bins:
        return xs, ys
    edges = np.linspace(0, len(xs), bins + 1).astype(int)
    return (np.array([xs[a:b].mean() for a, b in zip(edges[:-1], edges[1:], strict=True)]),
            np.array([ys[a:b].mean() for a, b in zip(edges[:-1], edges[1:], strict=True)]))


def _plot_series(lines) -> list[tuple[str, np.ndarray, np.ndarray, str]]:
    """The finite points of each line, binned to at most ``_PLOT_MAX_POINTS``; empty lines dropped."""
    data = []
    for label, xs, ys, color in lines:
        xs_a, ys_a = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        keep = np.isfinite(xs_a) & np.isfinite(ys_a)
        xs_a, ys_a = _bin_mean(xs_a[keep], ys_a[keep], _PLOT_MAX_POINTS)
        if len(xs_a):
            data.append((label, xs_a, ys_a, color))
    return data


def _plot_ranges(data, refs) -> tuple[float, float, float, float]:
    """``(x_lo, x_hi, y_lo, y_hi)`` over the lines and reference values, widened when flat."""
    all_y = np.concatenate([d[2] for d in data] + [np.array([y for _, y, _ in refs], dtype=np.float64)])
    all_x = np.concatenate([d[1] for d in data])
    y_lo, y_hi = float(all_y.min()), float(all_y.max())
    if y_hi - y_lo < 1e-12:
        y_lo, y_hi = y_lo - 0.5 * (abs(y_lo) or 1.0), y_hi + 0.5 * (abs(y_hi) or 1.0)
    if y_hi - y_lo < 1e-12:  # so close to 0 (5e-324) that half of it rounds to nothing
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
    x_lo, x_hi = float(all_x.min()), float(all_x.max())
    if x_hi - x_lo < 1e-12:
        x_lo, x_hi = x_lo - 1, x_hi + 1
    return x_lo, x_hi, y_lo, y_hi


def svg_plot(title: str, lines: Sequence[tuple[str, Sequence[float], Sequence[float], str]],
             hlines: Sequence[tuple[str, float | None, str]] = (), x_label: str = "step", width: int = 300,
             height: int = 190) -> str:
    """A small line plot as inline SVG (no external references).

    Args:
        title: shown above the plot.
        lines: ``(label, xs, ys, color)`` per line; a legend is drawn when there is more than one. More than 400
            points are averaged into 400 bins (a loss curve stays readable and the page small).
        hlines: labelled dashed reference lines ``(label, y, color)``; None values are skipped.
        x_label: the x axis' name.
    """
    data = _plot_series(lines)
    legend = _legend_places(data, width) if len(data) > 1 else []
    rows = 1 + max((row for _, row in legend), default=-1)
    left, right, top, bottom = 48, 10, 22 + 13 * rows, 30
    height += 13 * rows
    pw, ph = width - left - right, height - top - bottom
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
             f'<text x="{width / 2:.0f}" y="14" text-anchor="middle" class="pt">{html.escape(title)}</text>']
    if not data:
        parts.append(f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" class="pl">no data</text>')
        return "".join(parts) + "</svg>"
    refs = [(label, y, c) for label, y, c in hlines if y is not None and math.isfinite(y)]
    x_lo, x_hi, y_lo, y_hi = _plot_ranges(data, refs)

    def px(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * pw

    def py(y: float) -> float:
        return top + (1 - (y - y_lo) / (y_hi - y_lo)) * ph

    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="pf"/>')
    for frac in (0.0, 0.5, 1.0):
        y = y_lo + frac * (y_hi - y_lo)
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(y):.1f}" y2="{py(y):.1f}" class="pg"/>'
                     f'<text x="{left - 4}" y="{py(y) + 4:.1f}" text-anchor="end" class="pl">{_fmt(y)}</text>')
    parts.append(f'<text x="{left}" y="{height - 14}" class="pl">{_fmt(x_lo)}</text>'
                 f'<text x="{left + pw}" y="{height - 14}" text-anchor="end" class="pl">{_fmt(x_hi)}</text>'
                 f'<text x="{left + pw / 2:.0f}" y="{height - 4}" text-anchor="middle" class="pl">'
                 f'{html.escape(x_label)}</text>')
    for i, (label, y, color) in enumerate(refs):
        # Alternate label ends so two close reference lines do not print over each other.
        tx, anchor = (left + pw - 2, "end") if i % 2 == 0 else (left + 2, "start")
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="{color}" '
                     f'stroke-dasharray="4 3" stroke-width="1"/>'
                     f'<text x="{tx}" y="{py(y) - 3:.1f}" text-anchor="{anchor}" class="pl" '
                     f'fill="{color}">{html.escape(label)}</text>')
    for _, xs_a, ys_a, color in data:
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs_a, ys_a, strict=True))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.5"/>')
    for (label, _, _, color), (x, row) in zip(data, legend):
        y = 26 + 13 * row
        parts.append(f'<line x1="{x}" x2="{x + 12}" y1="{y - 3}" y2="{y - 3}" stroke="{color}" '
                     f'stroke-width="2"/><text x="{x + 15}" y="{y}" class="pl">{html.escape(label)}</text>')
    return "".join(parts) + "</svg>"


def _legend_places(data, width: int) -> list[tuple[float, int]]:
    """``(x, row)`` of each legend entry, flowing left to right above the plot and wrapping at ``width`` (labels are
    measured at about 5.5 px a character, the report's small font)."""
    places, x, row = [], 8.0, 0
    for label, *_ in data:
        size = 15 + 5.5 * len(label) + 10
        if x + size > width and x > 8:
            x, row = 8.0, row + 1
        places.append((x, row))
        x += size
    return places


def _history_series(loss_history: Sequence[dict]) -> dict[str, tuple[list[float], list[float]]]:
    series: dict[str, tuple[list[float], list[float]]] = {}
    for i, record in enumerate(loss_history or []):
        step = record.get("step", i)
        for key, _, _ in _LOSS_SERIES:
            value = record.get(key)
            if isinstance(value, (int, float)) and isinstance(step, (int, float)) and math.isfinite(value):
                xs, ys = series.setdefault(key, ([], []))
                xs.append(float(step))
                ys.append(float(value))
    return series


# -------------------------------------------------------------------------------------------------------------- html
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:16px 20px;color:#1c2833;background:#fff}
h1{font-size:20px;margin:0 0 8px}h2{font-size:16px;margin:22px 0 8px;border-bottom:1px solid #d5d8dc}
.verdict{padding:10px 12px;border-radius:6px;font-weight:600;margin:8px 0}
.good{background:#e9f7ef;border-left:5px solid #1e8449}.bad{background:#fdedec;border-left:5px solid #c0392b}
table{border-collapse:collapse;margin:4px 0}td,th{border:1px solid #d5d8dc;padding:3px 9px;text-align:right}
th{background:#f4f6f7}td.l,th.l{text-align:left}.better{color:#1e8449;font-weight:600}.worse{color:#c0392b}
.strip img,.preview img{image-rendering:pixelated;display:block}.strip td{text-align:center;font-size:12px;padding:3px}
.plots{display:flex;flex-wrap:wrap;gap:8px}.note{color:#566573;font-size:12px}
.flag{font-weight:600}.flag.on{color:#c0392b}.flag.off{color:#1e8449}
svg .pt{font-size:12px;font-weight:600;fill:#1c2833}svg .pl{font-size:10px;fill:#566573}
svg .pf{fill:#fbfcfc;stroke:#d5d8dc}svg .pg{stroke:#eaecee}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any, digits: int = 2) -> str:
    return "n/a" if not isinstance(value, (int, float)) or isinstance(value, bool) else f"{value:.{digits}f}"


def _cell_cmp(model: Any, copy: Any, digits: int) -> str:
    if not isinstance(model, (int, float)) or not isinstance(copy, (int, float)):
        return f"<td>{_num(model, digits)}</td>"
    cls = "better" if model > copy else ("worse" if model < copy else "")
    return f'<td class="{cls}">{model:.{digits}f}</td>'


def _training_seconds(model_info: dict) -> float | None:
    for key in ("train_seconds", "training_seconds", "elapsed_s", "duration_s", "wall_s", "seconds"):
        if isinstance(model_info.get(key), (int, float)):
            return float(model_info[key])
    return None


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "not recorded"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _pairs(block: Any) -> str:
    return f"[{block[0]}, {block[1]})" if isinstance(block, (list, tuple)) and len(block) == 2 else "n/a"


def _run_facts(metrics: dict, dataset_info: dict, model_info: dict, generation_info: dict | None) -> list[tuple]:
    ds = metrics.get("dataset", {})
    train, val = (_pairs(ds.get(key) or dataset_info.get(key)) for key in ("train", "val"))
    videos = int(ds.get("videos") or 1)
    if videos > 1:
        train, val = "per video (table below)", "per video"
    facts = [
        ("Source videos" if videos > 1 else "Source video", dataset_info.get("source", "not recorded")),
        ("Dataset", f"{ds.get('num_frames', dataset_info.get('num_frames'))} frames at "
                    f"{ds.get('image_size', dataset_info.get('image_size'))} px, "
                    f"{_num(dataset_info.get('fps'), 3)} fps; train pairs {train}, val pairs {val}"),
        ("Model", f"{model_info.get('context_frames', 1)} context frame(s), "
                  f"{'residual' if model_info.get('residual') else 'plain'} output, "
                  f"{model_info.get('steps', 'n/a')} training steps"),
        ("Training", f"{_duration(_training_seconds(model_info))}, "
                     f"{_num(model_info.get('train_images_per_s'), 1)} images/s"),
    ]
    if dataset_info.get("partial_decode"):
        # prepare used what decoded of a cut or damaged input; the run must say so where people look.
        notes = "; ".join(str(n) for n in dataset_info.get("notes") or []) or "the input was cut or damaged"
        facts.append(("Input warning", f"only part of the video decoded: {notes}"))
    if generation_info:
        facts.append(("Generated", f"{generation_info.get('frames')} frames x {generation_info.get('num_videos')} "
                                   f"video(s), {_num(generation_info.get('frames_per_s'), 1)} frames/s on "
                                   f"{generation_info.get('device', 'n/a')}, "
                                   f"{_steering_text(generation_info.get('steering'))}"))
    facts.append(("Evaluation", f"seed {metrics.get('settings', {}).get('seed')}, dropout off (training=False), "
                                f"{metrics.get('one_step', {}).get('pairs')} val pairs one-step, starts "
                                f"{metrics.get('rollout_starts')}; PSNR capped at {metrics.get('psnr_cap_db', 100)} dB"))
    return facts


def _steering_text(state) -> str:
    """How the video was steered: the controllers' final change scale, unsharp amount and look weight (toward the
    clip's patches, or toward whole training frames in states written before the patch look)."""
    if not isinstance(state, dict):
        return "not steered (plain feedback loop)"
    look = "patch look" if state.get("look") == "patch" else "frame look"
    try:
        parts = [f"{name} {', '.join(f'{float(v):.2f}' for v in state[key])}"
                 for name, key in (("change scale", "tau"), ("unsharp", "amount"), (look, "weight"))]
    except (KeyError, TypeError, ValueError):
        return "steered"
    return "steered (final " + "; ".join(parts) + ")"


def _quality_tables(metrics: dict) -> str:
    one = metrics.get("one_step", {})
    out = ['<h2>One step (validation pairs)</h2><table><tr><th class="l"></th><th>PSNR (dB)</th><th>SSIM</th></tr>',
           f'<tr><td class="l">model</td>{_cell_cmp(one.get("psnr_model"), one.get("psnr_copy"), 2)}'
           f'{_cell_cmp(one.get("ssim_model"), one.get("ssim_copy"), 4)}</tr>',
           f'<tr><td class="l">copy last frame</td><td>{_num(one.get("psnr_copy"))}</td>'
           f'<td>{_num(one.get("ssim_copy"), 4)}</td></tr></table>',
           '<h2>Rollouts (model fed its own predictions)</h2>'
           '<table><tr><th>k</th><th>starts</th><th>PSNR model</th><th>PSNR copy</th><th>model - copy</th>'
           '<th>SSIM model</th><th>SSIM copy</th></tr>']
    for row in metrics.get("rollout", []):
        pm, pc = row.get("psnr_model"), row.get("psnr_copy")
        diff = pm - pc if isinstance(pm, (int, float)) and isinstance(pc, (int, float)) else None
        out.append(f'<tr><td>{_e(row.get("k"))}</td><td>{_e(row.get("starts"))}</td>{_cell_cmp(pm, pc, 2)}'
                   f'<td>{_num(pc)}</td><td>{"n/a" if diff is None else f"{diff:+.2f}"}</td>'
                   f'{_cell_cmp(row.get("ssim_model"), row.get("ssim_copy"), 4)}'
                   f'<td>{_num(row.get("ssim_copy"), 4)}</td></tr>')
    out.append('</table><p class="note">k-th predicted frame vs the real frame k steps after the start; the copy '
               'baseline repeats the start frame. Only starts with start+k inside the data count.</p>')
    return "".join(out)


_VIDEO_COLUMNS = ("video", "frames", "train pairs", "val pairs", "PSNR model", "PSNR copy", "gain (dB)", "SSIM model",
                  "SSIM copy", "rollout k", "PSNR model at k", "PSNR copy at k")


def _score_cells(one: dict, rollout: list[dict]) -> list[str]:
    longest = next((r for r in reversed(rollout) if r.get("psnr_model") is not None), {})
    return [_num(one.get("psnr_model")), _num(one.get("psnr_copy")), _num(one.get("psnr_gain")),
            _num(one.get("ssim_model"), 4), _num(one.get("ssim_copy"), 4), str(longest.get("k", "n/a")),
            _num(longest.get("psnr_model")), _num(longest.get("psnr_copy"))]


def video_rows(metrics: dict) -> list[list[str]]:
    """The per-video table of a run on several source videos (one row each, then the totals over all of them);
    empty for a run on one video."""
    videos = metrics.get("videos") or []
    if len(videos) < 2:
        return []
    rows = [[str(v.get("name")), str(v.get("num_frames")), _pairs(v.get("train")), _pairs(v.get("val")),
             *_score_cells(v.get("one_step", {}), v.get("rollout", []))] for v in videos]
    frames = sum(int(v.get("num_frames") or 0) for v in videos)
    rows.append([f"all {len(videos)} videos", str(frames), "", "",
                 *_score_cells(metrics.get("one_step", {}), metrics.get("rollout", []))])
    return rows


def _videos_section(metrics: dict) -> str:
    rows = video_rows(metrics)
    if not rows:
        return ""
    head = "".join(f"<th>{_e(c)}</th>" for c in _VIDEO_COLUMNS)
    body = "".join(f'<tr><td class="l">{_e(row[0])}</td>' + "".join(f"<td>{_e(c)}</td>" for c in row[1:]) + "</tr>"
                   for row in rows)
    return (f"<h2>Per video ({len(rows) - 1} source videos, one model)</h2><table><tr>{head}</tr>{body}</table>"
            '<p class="note">Each video\'s own validation block (the last pairs of that video), one step and the '
            "longest rollout; the last row is over all of them (means over all pairs and starts). Pairs never "
            "cross from one video into another.</p>")


def _videos_markdown(metrics: dict) -> list[str]:
    rows = video_rows(metrics)
    if not rows:
        return []
    return ["", "## Per video", "", "| " + " | ".join(_VIDEO_COLUMNS) + " |",
            "|" + "---|" * len(_VIDEO_COLUMNS), *("| " + " | ".join(_md(c) for c in row) + " |" for row in rows)]


def _health_section(metrics: dict) -> str:
    health = metrics.get("health")
    if not health:
        return ('<h2>Long-rollout health</h2><p class="note">No generated video was given, so the collapsed / frozen /'
                ' exploded checks did not run.</p>')
    th = health["thresholds"]
    ref = health["reference"]
    rules = {
        "collapsed": f"frame std below {th['collapsed_std_below']:.2f} (0.25 x training p5 std {ref['std_p5']:.2f})",
        "frozen": ("not checked: the source video hardly moves" if th["frozen_change_below"] is None else
                   f"frame-to-frame change below {th['frozen_change_below']:.3f} (0.1 x training median "
                   f"{ref['change_median']:.2f})"),
        "exploded": f"saturated fraction above {th['exploded_saturated_above']:.2f}",
    }
    rows = []
    for name, flag in health["flags"].items():
        state = (f'<span class="flag on">yes, from frame {flag["frame"]}</span>' if flag["flagged"]
                 else '<span class="flag off">no</span>')
        rows.append(f'<tr><td class="l">{_e(name)}</td><td class="l">{state}</td><td class="l">{_e(rules[name])}</td>'
                    '</tr>')
    series = health["series"]  # per video: {"std": [[...video 0...], [...video 1...]], ...}

    def lines(key: str) -> list:
        return [(f"video {v}", range(len(ys)), ys, _VIDEO_COLORS[v % len(_VIDEO_COLORS)])
                for v, ys in enumerate(series[key])]

    plots = [
        svg_plot("frame std", lines("std"), x_label="generated frame",
                 hlines=[("training median", ref["std_median"], "#1e8449"),
                         ("collapsed below", th["collapsed_std_below"], "#c0392b")]),
        svg_plot("frame mean", lines("mean"), x_label="generated frame",
                 hlines=[("training p95", ref["mean_p95"], "#1e8449"), ("training p5", ref["mean_p5"], "#1e8449")]),
        svg_plot("change to next frame", lines("change"), x_label="generated frame",
                 hlines=[("training median", ref["change_median"], "#1e8449"),
                         ("frozen below", th["frozen_change_below"], "#c0392b")]),
        svg_plot("saturated fraction", lines("saturated"), x_label="generated frame",
                 hlines=[("exploded above", th["exploded_saturated_above"], "#c0392b")]),
    ]
    return (f'<h2>Long-rollout health ({health["frames"]} frames x {health["videos"]} video(s))</h2>'
            '<table><tr><th class="l">flag</th><th class="l">fired</th><th class="l">rule (levels of 255, '
            f'{th["sustain_frames"]} consecutive frames)</th></tr>{"".join(rows)}</table>'
            f'<div class="plots">{"".join(plots)}</div>'
            f'<p class="note">Per-frame statistics of {len(series["std"])} of the {health["videos"]} generated '
            'video(s); frame 0 is the first generated frame.</p>')


def _strip_section(strip_frames: Sequence[StripRow], rows: int | None, side: int) -> str:
    if not strip_frames:
        return ""
    chosen = list(strip_frames)[:rows] if rows else list(strip_frames)
    native = max(np.asarray(chosen[0].input).shape[:2])
    show = 128 if min(native, side) <= 128 else 160
    cards = []
    for row in chosen:
        cells = "".join(f'<td><img src="{image_data_uri(image, side)}" width="{show}" height="{show}" '
                        f'alt="{label} {row.frame_index}"><div>{label}</div></td>'
                        for label, image in (("input", row.input), ("predicted", row.predicted), ("real", row.real)))
        cards.append(f'<table class="strip"><tr>{cells}</tr><tr><td colspan="3" class="note">frame i = '
                     f'{row.frame_index} (input) and i+1</td></tr></table>')
    return ('<h2>Validation frames: input, predicted and real next frame</h2>'
            f'<div class="plots">{"".join(cards)}</div>')


def _loss_section(loss_history: Sequence[dict]) -> str:
    series = _history_series(loss_history)
    if not series:
        return '<h2>Training losses</h2><p class="note">No loss history was recorded in model.json.</p>'
    plots = [svg_plot(title, [(key, *series[key], color)]) for key, title, color in _LOSS_SERIES if key in series]
    missing = [title for key, title, _ in _LOSS_SERIES if key not in series]
    note = f'<p class="note">Not recorded: {_e(", ".join(missing))}.</p>' if missing else ""
    return f'<h2>Training losses</h2><div class="plots">{"".join(plots)}</div>{note}'


def _preview_section(uri: str | None, label: str, seconds: float, dropped: bool, side: int = 0) -> str:
    if uri is None:
        why = "dropped to keep the page under 2 MB" if dropped else "no frames"
        return f'<h2>Preview</h2><p class="note">No preview ({why}).</p>'
    return (f'<h2>Preview</h2><div class="preview"><img src="{uri}" width="256" height="256" alt="preview"></div>'
            f'<p class="note">{_e(label)}: first {seconds:g} s, looping, at most {side} px.</p>')


def _assessment(metrics: dict) -> dict:
    """The structured verdict of metrics.json; for metrics written without one, derived from the same numbers."""
    if isinstance(metrics.get("assessment"), dict):
        return metrics["assessment"]
    from videogen.verdict import assess

    return assess(metrics["one_step"], metrics.get("rollout", []), metrics.get("health"), metrics.get("video_quality"))


def render_html(metrics: dict, dataset_info: dict, model_info: dict, generation_info: dict | None,
                strip_frames: Sequence[StripRow], loss_history: Sequence[dict], preview_frames: np.ndarray | None,
                *, preview_fps: float | None = None, preview_label: str = "generated video",
                max_bytes: int = MAX_HTML_BYTES) -> str:
    """The report as one self-contained HTML page (inline CSS, inline SVG plots, base64 images), under max_bytes.

    Args:
        metrics: metrics.json content (``videogen.evaluate.evaluate``).
        dataset_info, model_info, generation_info: dataset.json, model.json, generation.json (or None).
        strip_frames: validation pairs to show as input / predicted / real.
        loss_history: records ``{step, gen_gan, gen_l1, disc, ...}``; missing keys are skipped.
        preview_frames: uint8 ``(T, S, S, 3)`` video to preview as an animated WebP, or None.
        preview_fps: its frame rate (default: generation_info's or dataset_info's fps, else 25).
        preview_label: what the preview shows.
        max_bytes: size cap of the UTF-8 page; the preview shrinks, then goes, then the strip shrinks, to fit.

    Raises:
        ValueError: the page cannot fit even without images (not expected: the text is a few tens of kB).
    """
    fps = preview_fps or (generation_info or {}).get("fps") or dataset_info.get("fps") or 25.0
    verdict = metrics.get("verdict", "")
    good = _assessment(metrics)["good"]
    facts = "".join(f'<tr><th class="l">{_e(k)}</th><td class="l">{_e(v)}</td></tr>'
                    for k, v in _run_facts(metrics, dataset_info, model_info, generation_info))
    fixed = (f'<h1>Next-frame model: evaluation report</h1><div class="verdict {"good" if good else "bad"}">'
             f'{_e(verdict)}</div><table>{facts}</table>{_quality_tables(metrics)}{_videos_section(metrics)}')
    losses = _loss_section(loss_history)
    health = _health_section(metrics) + _video_quality_section(metrics)

    def page(strip_html: str, preview_html: str) -> str:
        return ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>videogen evaluation</title>'
                f'<style>{_CSS}</style></head><body>{fixed}{strip_html}{losses}{health}{preview_html}</body></html>')

    full_strip = _strip_section(strip_frames, *_STRIP_LEVELS[0])
    has_preview = preview_frames is not None and len(preview_frames) > 0
    for seconds, side in _PREVIEW_LEVELS if has_preview else ():
        uri = animation_data_uri(preview_frames, fps, seconds, side)
        doc = page(full_strip, _preview_section(uri, preview_label, seconds, False, side))
        if len(doc.encode("utf-8")) <= max_bytes:
            return doc
    no_preview = _preview_section(None, preview_label, 0, dropped=has_preview)
    for rows, side in _STRIP_LEVELS:
        doc = page(_strip_section(strip_frames, rows, side), no_preview)
        if len(doc.encode("utf-8")) <= max_bytes:
            return doc
    doc = page("", no_preview)
    if len(doc.encode("utf-8")) <= max_bytes:
        return doc
    raise ValueError(f"the report does not fit {max_bytes} bytes even without images ({len(doc.encode())} bytes)")


# ----------------------------------------------------------------------------------------------------- video quality
# (key in metrics, plot legend, table row, colour)
_BASELINES = (("copy_last_frame", "copy", "copy last frame (frozen)", "#7f8c8d"),
              ("video_textures", "textures", "Video Textures (replay)", "#b7950b"))
# The null controls and the model alone (key in metrics, legend, colour), drawn beside the model.
_CONTROLS = (("noise", "control: last frame + noise", "#8e44ad"),
             ("untrained", "control: untrained generator", "#e67e22"),
             ("model_alone", "model alone (no steering)", "#16a085"))
# Their names in the plots' legends.
_SHORT = {"control: last frame + noise": "noise control", "control: untrained generator": "untrained control",
          "model alone (no steering)": "model alone"}
_VQ_RULES = {
    "frozen": lambda t: f"motion below {t['motion_min']:g} x the clip's in some window",
    "jitter": lambda t: f"motion above {t['motion_max']:g} x the clip's in some window",
    "still": lambda t: f"warping error below {t['coherence_min']:g} x the clip's in some window",
    "flicker": lambda t: f"warping error above {t['coherence_max']:g} x the clip's in some window",
    "mush": lambda t: f"last-window realism above {t['realism_max']:g} (patch distance over held-out frames')",
    "unreal motion": lambda t: f"space-time patch realism above {t['spacetime_max']:g} in some window",
    "layout": lambda t: f"coarse (third-of-frame) patch realism above {t['coarse_max']:g} in some window",
    "incomplete": lambda t: f"the clip's patches {t['completeness_max']:g} x farther from a window than from real ones",
    "pasted": lambda t: f"more than {t['copying_max']:.0%} of a window's patches closer to training patches than "
                        "real unseen ones",
    "faded": lambda t: f"contrast below {t['contrast_min']:g} x the clip's in some window",
    "garish": lambda t: f"contrast above {t['contrast_max']:g} x the clip's in some window",
    "blur": lambda t: f"sharpness below {t['sharpness_min']:g} x the clip's in some window",
    "noise": lambda t: f"sharpness above {t['sharpness_max']:g} x the clip's in some window",
    "drift": lambda t: f"last-window realism above {t['drift_max']:g} x the second window's",
    "replay": lambda t: f"more than {t['replay_max']:.0%} of frames within {t['replay_psnr_db']:g} dB PSNR of a real "
                        "frame",
}


def _window_steps(scores: dict, key: str) -> tuple[list[float], list[float]]:
    """A per-window curve as steps over the generated frames: each window's value from its first to its last frame."""
    starts, values = scores["window_starts"], scores[key]
    ends = [*starts[1:], scores["num_frames"]]
    xs, ys = [], []
    for a, b, v in zip(starts, ends, values, strict=True):
        y = math.nan if v is None else float(v)
        xs += [a, b - 1]
        ys += [y, y]
    return xs, ys


def _control_scores(quality: dict) -> list[tuple[str, dict, str]]:
    """``(label, scores, colour)`` of the controls that ran."""
    scores = ((quality.get("controls") or {}).get("scores")) or {}
    return [(label, scores[name], color) for name, label, color in _CONTROLS if name in scores]


def _vq_plots(quality: dict) -> str:
    t = quality["thresholds"]
    limits = {"motion": [("frozen below", t["motion_min"]), ("jitter above", t["motion_max"])],
              "coherence": [("still below", t["coherence_min"]), ("flicker above", t["coherence_max"])],
              "realism": [("mush above", t["realism_max"])],
              "spacetime": [("unreal motion above", t["spacetime_max"])],
              "coarse": [("layout above", t["coarse_max"])],
              "completeness": [("incomplete above", t["completeness_max"])],
              "contrast": [("faded below", t["contrast_min"]), ("garish above", t["contrast_max"])],
              "sharpness": [("blur below", t["sharpness_min"]), ("noise above", t["sharpness_max"])]}
    plots = []
    for key, hlines in limits.items():
        lines = [(f"video {s['video']}", *_window_steps(s, key), _VIDEO_COLORS[s["video"] % len(_VIDEO_COLORS)])
                 for s in quality["videos"]]
        lines += [(_SHORT[label], *_window_steps(scores, key), color)
                  for label, scores, color in _control_scores(quality)]
        lines += [(label, *_window_steps(quality["baselines"][name], key), color)
                  for name, label, _, color in _BASELINES]
        plots.append(svg_plot(f"{key} (1 = like the clip)", lines, x_label="generated frame", width=460,
                              hlines=[("clip", 1.0, "#1e8449"), *((label, y, "#c0392b") for label, y in hlines)]))
    return f'<div class="plots">{"".join(plots)}</div>'


def _vq_rows(quality: dict) -> list[tuple[str, dict]]:
    """``(label, scores)`` of the scored videos, the controls and the two baselines."""
    return ([(f"video {s['video']}", s) for s in quality["videos"]]
            + [(label, scores) for label, scores, _ in _control_scores(quality)]
            + [(label, quality["baselines"][name]) for name, _, label, _ in _BASELINES])


def _vq_numbers(scores: dict) -> list[str]:
    """motion min-max, realism last, space-time / coarse realism and completeness (worst window), copying (highest),
    sharpness min-max, realism drift, replay share and the failed checks of one video, as text."""
    def span(key: str) -> str:
        valid = [v for v in scores[key] if v is not None]
        return f"{min(valid):.2f}-{max(valid):.2f}" if valid else "n/a"

    def worst(key: str) -> str:
        valid = [v for v in scores.get(key) or [] if v is not None]
        return _num(max(valid)) if valid else "n/a"

    drift = (scores.get("drift") or {}).get("realism")
    return [span("motion"), _num(scores["realism"][-1]), worst("spacetime"), worst("coarse"), worst("completeness"),
            worst("copying"), span("sharpness"), _num(drift), f"{scores['replay_share']:.0%}",
            ", ".join(scores["verdict"]["failed"]) or "none"]


_VQ_COLUMNS = ("motion", "realism (last)", "space-time", "coarse", "completeness", "copying", "sharpness", "drift",
               "replay", "failed")


def _comparison_rows(comparison: dict) -> list[list[str]]:
    """The model and each control on the compared figures: ``[generator, figure values...]``, a figure that the
    model fails to beat a null on marked with '!'."""
    figures = list(next(iter(comparison["table"].values())))
    rows = []
    for name, values in comparison["table"].items():
        marks = comparison["beats"].get(name, {})
        rows.append([name, *(_num(values.get(f)) + ("" if marks.get(f, True) else " !") for f in figures)])
    return [["generator", *figures], *rows]


def _controls_html(quality: dict) -> str:
    comparison = (quality.get("controls") or {}).get("comparison")
    if not comparison:
        return ""
    head, *rows = _comparison_rows(comparison)
    body = "".join("<tr>" + "".join(f'<td class="l">{_e(c)}</td>' if i == 0 else f"<td>{_e(c)}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    margins = comparison["margins"]
    return (f'<h3>Against the null controls</h3><div class="verdict {"good" if comparison["adds"] else "bad"}">'
            f'{_e(comparison["text"])}</div><table><tr>{"".join(f"<th>{_e(c)}</th>" for c in head)}</tr>{body}'
            f'</table><p class="note">Mean over the first {comparison["frames"]} frames (realism: lower is better, '
            f'1 = like unseen real frames) and k-step rollout PSNR through the generation path (dB, higher is better). '
            f'The model must beat each null by more than the spread between seeds ('
            + ", ".join(f"{f} {m:g}" for f, m in margins.items())
            + '); "!" marks a figure where a null is not beaten.</p>')


def _video_quality_section(metrics: dict) -> str:
    quality = metrics.get("video_quality")
    if not quality or not quality.get("videos"):
        why = (quality or {}).get("skipped", "no generated video was given")
        return f'<h2>Video quality</h2><p class="note">Not scored: {_e(why)}.</p>'
    judged = quality["verdict"]
    checks = "".join(
        f'<tr><td class="l">{_e(name)}</td><td class="l">'
        + (f'<span class="flag on">yes, from frame {judged["failures"][name]["frame"]}</span>'
           if name in judged["failures"] else '<span class="flag off">no</span>')
        + f'</td><td class="l">{_e(rule(quality["thresholds"]))}</td></tr>' for name, rule in _VQ_RULES.items())
    table = "".join(f'<tr><td class="l">{_e(label)}</td>' + "".join(f"<td>{_e(v)}</td>" for v in _vq_numbers(s))
                    + "</tr>" for label, s in _vq_rows(quality))
    diversity = quality.get("diversity")
    div_note = ("" if not diversity else f" Diversity of the {diversity['num_videos']} videos: "
                f"{_num(diversity['diversity'])} (0 = identical, 1 = as different as the clip's frames over time).")
    return (f'<h2>Video quality against the clip ({quality["frames"]} frames, {quality["videos_scored"]} of '
            f'{quality["num_videos"]} video(s) scored at {quality["scored_size"]} px)</h2>'
            f'<div class="verdict {"good" if judged["ok"] else "bad"}">{_e(quality["text"])}</div>'
            f'<table><tr><th class="l">check</th><th class="l">failed</th><th class="l">rule</th></tr>{checks}</table>'
            f'<table><tr><th class="l"></th>{"".join(f"<th>{c}</th>" for c in _VQ_COLUMNS)}</tr>{table}</table>'
            f'{_controls_html(quality)}'
            f'{_vq_plots(quality)}<p class="note">Ratios against the real clip per {quality["window"]}-frame window '
            f'(1 = like it); copy = the start frame repeated, textures = a Video Textures replay of training frames, '
            f'both from frame {quality["baseline_start_frame"]}; the controls start where video 0 did.'
            f'{_e(div_note)}</p>')


def _vq_markdown(metrics: dict) -> list[str]:
    quality = metrics.get("video_quality")
    lines = ["", "## Video quality", ""]
    if not quality or not quality.get("videos"):
        return lines + [f"Not scored: {_md((quality or {}).get('skipped', 'no generated video was given'))}."]
    lines += [_md(quality["text"]), "", "| | " + " | ".join(_VQ_COLUMNS) + " |",
              "|---" + "|---:" * (len(_VQ_COLUMNS) - 1) + "|---|"]
    lines += [f"| {_md(label)} | " + " | ".join(_md(v) for v in _vq_numbers(s)) + " |" for label, s in _vq_rows(quality)]
    comparison = (quality.get("controls") or {}).get("comparison")
    if comparison:
        head, *rows = _comparison_rows(comparison)
        lines += ["", "### Against the null controls", "", _md(comparison["text"]), "",
                  "| " + " | ".join(_md(c) for c in head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
        lines += ["| " + " | ".join(_md(c) for c in r) + " |" for r in rows]
    diversity = quality.get("diversity")
    if diversity:
        lines += ["", f"Diversity of the {diversity['num_videos']} videos: {_num(diversity['diversity'])}."]
    return lines


# ---------------------------------------------------------------------------------------------------------- markdown
def _md(value: Any) -> str:
    """Text safe inside Markdown with raw HTML disabled: no angle brackets, pipes or backticks."""
    return str(value).replace("<", "‹").replace(">", "›").replace("|", "/").replace("`", "'")


def render_markdown(metrics: dict, dataset_info: dict, model_info: dict, generation_info: dict | None,
                    loss_history: Sequence[dict] = ()) -> str:
    """A short run summary in plain Markdown (no raw HTML): what was trained on, how long, the headline numbers and
    the verdict. A few kilobytes, far below the KFP viewer's 400,000-character cut."""
    lines = ["# Next-frame model: run summary", "", f"**Verdict:** {_md(metrics.get('verdict', 'n/a'))}", "",
             "## Run", ""]
    lines += [f"- **{_md(k)}:** {_md(v)}" for k, v in _run_facts(metrics, dataset_info, model_info, generation_info)]
    final = metrics.get("final_losses") or {}
    if final:
        lines.append("- **Final losses (mean of last 5 records):** "
                     + ", ".join(f"{_md(k)} {v:.4g}" for k, v in final.items()))
    elif not loss_history:
        lines.append("- **Final losses:** not recorded")
    one = metrics.get("one_step", {})
    lines += ["", "## One step (validation pairs)", "", "| | PSNR (dB) | SSIM |", "|---|---:|---:|",
              f"| model | {_num(one.get('psnr_model'))} | {_num(one.get('ssim_model'), 4)} |",
              f"| copy last frame | {_num(one.get('psnr_copy'))} | {_num(one.get('ssim_copy'), 4)} |", "",
              "## Rollouts", "", "| k | starts | PSNR model | PSNR copy | SSIM model | SSIM copy |",
              "|---:|---:|---:|---:|---:|---:|"]
    for row in metrics.get("rollout", []):
        lines.append(f"| {row.get('k')} | {row.get('starts')} | {_num(row.get('psnr_model'))} | "
                     f"{_num(row.get('psnr_copy'))} | {_num(row.get('ssim_model'), 4)} | "
                     f"{_num(row.get('ssim_copy'), 4)} |")
    lines += _videos_markdown(metrics)
    lines += ["", "## Long-rollout health", ""]
    health = metrics.get("health")
    if not health:
        lines.append("No generated video was given; the health checks did not run.")
    else:
        for name, flag in health["flags"].items():
            state = (f"yes, from frame {flag['frame']}" if flag["flagged"]
                     else ("not checked (static source)" if not flag.get("checked", True) else "no"))
            lines.append(f"- {name}: {state}")
    lines += _vq_markdown(metrics)
    text = "\n".join(lines) + "\n"
    return text[:MAX_MARKDOWN_CHARS]


def write_report(output_dir: Path, metrics: dict, dataset_info: dict, model_info: dict, generation_info: dict | None,
                 strip_frames: Sequence[StripRow], loss_history: Sequence[dict], preview_frames: np.ndarray | None,
                 **html_options: Any) -> tuple[Path, Path]:
    """Write ``report.html`` and ``summary.md`` into output_dir (created); returns their paths.
    ``html_options`` go to :func:`render_html` (``preview_fps``, ``preview_label``, ``max_bytes``)."""
    from videogen import artifacts

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    html_path = output_dir / artifacts.REPORT_FILE
    md_path = output_dir / artifacts.SUMMARY_FILE
    artifacts.atomic_write_text(html_path, render_html(metrics, dataset_info, model_info, generation_info,
                                                       strip_frames, loss_history, preview_frames, **html_options))
    artifacts.atomic_write_text(md_path, render_markdown(metrics, dataset_info, model_info, generation_info,
                                                         loss_history))
    return html_path, md_path
