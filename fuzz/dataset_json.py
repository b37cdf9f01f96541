"""``dataset.json`` as the stages read it, beside a valid ``frames.npy`` of 6 frames of 8 px:
:func:`videogen.artifacts.open_dataset`, each source video's view and blocks (a combined dataset's ``videos``), what
train checks, generate's start frames, and the report's facts."""

from __future__ import annotations

from fuzz import driver, infos
from videogen import artifacts, generate

_DIR = None


def test_one_input(data: bytes) -> None:
    global _DIR
    _DIR = _DIR or infos.info_dir("dataset-json", frames_shape=(6, 8, 8, 3))
    (_DIR / artifacts.DATASET_FILE).write_bytes(data)
    with driver.contract(artifacts.DATASET_FILE, str(_DIR), directory=_DIR):
        dataset = artifacts.open_dataset(_DIR)
        for view in dataset.videos:
            view.file_block("train"), view.name, view.fps
        generate.choose_video_starts(dataset, num_videos=3, context_frames=2, seed=0)
        infos.render(dataset.info, {}, None)


if __name__ == "__main__":
    driver.main(test_one_input)
