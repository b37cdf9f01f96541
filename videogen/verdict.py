"""The evaluate stage's verdict: what the numbers of ``metrics.json`` say about the model, as fields (what the report
colours, ``assessment``) and as plain sentences.

The model is credited only for what it adds: it must beat copying the last frame one step ahead, its generated video
must pass the video judge's checks (``videogen.video_quality``), and where null controls ran (``videogen.controls``:
the last frame plus noise and the untrained generator, through the same generation path and steering) it must beat
each of them by more than the spread between seeds on space-time realism, coarse realism and the rollout PSNR against
the real continuation (:func:`compare_controls`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# The model "beats copying" only if its one-step PSNR is higher by more than this.
BEATS_COPY_MARGIN_DB = 0.25
# What the model must beat each null control by: the spread between seeds of the same figure, measured as the largest
# difference between four runs of one clip (two training seeds x two generation seeds, the demo budget and defaults,
# rollouts scored within one shot) and taken as the median over the three development clips
# (bench/quality/judge_table.py, rows in bench/quality/judge_table_shots.jsonl; docs/quality.md has the table):
# space-time 0.022-0.103, coarse 0.052-0.272, 1-step PSNR 0.056-0.082 dB, 5-step 0.029-0.625, 10-step 0.131-1.288.
# No validation block of these clips has a 20-step continuation within one shot, so 20 steps take the 10-step
# margin. Realism is a ratio to the real clip (lower is better), PSNR in dB (higher is better).
MARGINS = {"spacetime": 0.033, "coarse": 0.19, "psnr_1": 0.078, "psnr_5": 0.12, "psnr_10": 0.36, "psnr_20": 0.36}
# The margin of a k-step PSNR for a k not in MARGINS.
PSNR_MARGIN_DB = 0.36
# The judge's measures the comparison reads (mean over the windows the controls cover).
COMPARED = ("spacetime", "coarse")


def assess(one_step: dict, rollout: list[dict], health: dict | None, quality: dict | None = None) -> dict[str, Any]:
    """The verdict as fields (what the report colours) and as plain sentences, ``text``: does the model beat copying
    the last frame one-step by more than the margin, is the generated video healthy, does it pass the video-quality
    checks and, where the null controls ran (``quality["controls"]``), does it beat them (``adds``). ``video_ok`` (None
    when the checks did not run) needs both the checks and, with controls, the margins; ``video_failures``: check
    name -> first frame, with ``controls`` (frame 0) when the margins are missing."""
    gain = float(one_step["psnr_gain"])
    flags = {name: bool(f["flagged"]) for name, f in (health or {}).get("flags", {}).items()}
    beats_copy = gain > BEATS_COPY_MARGIN_DB
    judged = (quality or {}).get("verdict")
    comparison = ((quality or {}).get("controls") or {}).get("comparison")
    adds = None if comparison is None else bool(comparison["adds"])
    video_ok = None if judged is None else bool(judged["ok"]) and adds is not False
    failures = {name: f["frame"] for name, f in (judged or {}).get("failures", {}).items()}
    if adds is False:
        failures["controls"] = 0
    text = _verdict_text(one_step, rollout, health) + (f" {quality['text']}" if judged is not None else "")
    if comparison is not None:
        text += f" {comparison['text']}"
    return {"beats_copy": beats_copy, "one_step_gain_db": round(gain, 4), "margin_db": BEATS_COPY_MARGIN_DB,
            "healthy": None if health is None else not any(flags.values()), "flags": flags,
            "video_ok": video_ok, "adds_over_controls": adds, "video_failures": failures,
            "good": beats_copy and not any(flags.values()) and video_ok is not False, "text": text}


def _verdict_text(one_step: dict, rollout: list[dict], health: dict | None) -> str:
    gain = one_step["psnr_gain"]
    if gain > BEATS_COPY_MARGIN_DB:
        text = (f"The model beats copying the last frame by {gain:.2f} dB one-step "
                f"({one_step['psnr_model']:.2f} vs {one_step['psnr_copy']:.2f} dB PSNR)")
        longest = [r for r in rollout if r["psnr_model"] is not None]
        if longest:
            r = longest[-1]
            diff = r["psnr_model"] - r["psnr_copy"]
            text += (f"; after {r['k']} steps it is {abs(diff):.2f} dB {'better' if diff >= 0 else 'worse'} "
                     f"than copying")
        text += "."
    else:
        text = (f"The model does not beat copying the last frame ({one_step['psnr_model']:.2f} vs "
                f"{one_step['psnr_copy']:.2f} dB one-step PSNR): it has learned nothing about motion.")
    if health is not None:
        bad = [f"{name} from frame {f['frame']} ({len(f['videos'])} of {health['videos']} videos)"
               for name, f in health["flags"].items() if f["flagged"]]
        text += (" The generated video is " + ", ".join(bad) + "." if bad
                 else " The generated video stays healthy (not collapsed, frozen or exploded).")
    return text


def verdict(one_step: dict, rollout: list[dict], health: dict | None) -> str:
    """The verdict sentence of :func:`assess`."""
    return _verdict_text(one_step, rollout, health)


# --------------------------------------------------------------------------------------------------------- controls
def _mean_over(scores: list[dict], measure: str, frames: int) -> float | None:
    """Mean of ``measure`` over the windows that start before ``frames``, over the videos."""
    values = [v for s in scores for start, v in zip(s["window_starts"], s[measure]) if start < frames and v is not None]
    return float(np.mean(values)) if values else None


def compare_controls(model_scores: list[dict], controls: dict[str, dict], rollout: dict[str, list[dict]],
                     frames: int, nulls: tuple[str, ...] = ("noise", "untrained")) -> dict[str, Any]:
    """Does the model beat every null control by more than :data:`MARGINS`?

    Args:
        model_scores: the judge's scores of the model's videos (their first ``frames`` frames count).
        controls: the judge's scores of each control's video (``nulls`` and any others, shown only).
        rollout: per generator (``model`` and the controls), ``[{"k", "starts", "psnr"}]`` through the generation path.
        frames: the controls' length.
        nulls: the controls the margins are taken over.

    Returns:
        ``{"frames", "margins", "table": {generator: {spacetime, coarse, psnr_k...}}, "beats": {null: {figure:
        bool}}, "adds": bool, "text"}``: ``adds`` is True when the model beats each null on every figure.
    """
    table: dict[str, dict] = {"model": {m: _mean_over(model_scores, m, frames) for m in COMPARED}}
    for name, scores in controls.items():
        table[name] = {m: _mean_over([scores], m, frames) for m in COMPARED}
    for name, rows in rollout.items():
        table.setdefault(name, {}).update({f"psnr_{r['k']}": r["psnr"] for r in rows})
    figures = [*COMPARED, *(f"psnr_{r['k']}" for r in rollout.get("model", []))]
    beats: dict[str, dict[str, bool]] = {}
    for null in nulls:
        beats[null] = {}
        for figure in figures:
            model, control = table["model"].get(figure), table.get(null, {}).get(figure)
            if model is None or control is None:
                continue
            margin = MARGINS.get(figure, PSNR_MARGIN_DB)
            beats[null][figure] = (model - control if figure.startswith("psnr_") else control - model) > margin
    adds = all(all(b.values()) and b for b in beats.values())
    return {"frames": frames, "margins": {f: MARGINS.get(f, PSNR_MARGIN_DB) for f in figures}, "table": table,
            "beats": beats, "adds": adds,
            "text": _controls_text(table, beats, adds, frames)}


def _figure_name(figure: str) -> str:
    return f"{figure[5:]}-step PSNR" if figure.startswith("psnr_") else f"{figure} realism"


def _controls_text(table: dict, beats: dict, adds: bool, frames: int) -> str:
    head = (f"Against the null controls (last frame + noise, untrained generator; same start, seed and steering, "
            f"{frames} frames)")
    figures = list(dict.fromkeys(f for b in beats.values() for f in b))

    def values(figure: str) -> str:
        return (f"{_figure_name(figure)} {table['model'][figure]:.2f} vs "
                + " / ".join(f"{table[n][figure]:.2f}" for n in beats if figure in beats[n]))

    won = [f for f in figures if all(b.get(f, False) for b in beats.values())]
    lost = [f for f in figures if f not in won]
    if adds:
        return f"{head} the model adds, beyond the spread between seeds: " + "; ".join(map(values, won)) + "."
    if not won:
        return (f"{head} the model adds nothing that the spread between seeds can tell: "
                + "; ".join(map(values, lost)) + ".")
    return (f"{head} the model adds only " + "; ".join(map(values, won)) + ", not " + "; ".join(map(values, lost))
            + ": it is not credited.")
