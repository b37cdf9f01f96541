"""``model.json`` as the stages read it: :func:`videogen.artifacts.open_model_dir` (beside a stand-in
``generator.keras``: the generator is Keras's to load), then what generate and evaluate take from it (context frames,
frame rate, loss history) and the report's facts."""

from __future__ import annotations

from fuzz import driver, infos
from videogen import artifacts, evaluate

_DIR = None


def test_one_input(data: bytes) -> None:
    global _DIR
    _DIR = _DIR or infos.info_dir("model-json", files={artifacts.GENERATOR_FILE: b"PK\x05\x06" + bytes(18)})
    (_DIR / artifacts.MODEL_INFO_FILE).write_bytes(data)
    with driver.contract(artifacts.MODEL_INFO_FILE, str(_DIR), directory=_DIR):
        model = artifacts.open_model_dir(_DIR)
        info = model.info
        int(info.get("context_frames", 1)), float(info.get("fps") or 0.0)  # generate's and evaluate's reads
        records = evaluate.history_records(info.get("history"))
        evaluate._final_losses(records)
        infos.render({}, info, None)


if __name__ == "__main__":
    driver.main(test_one_input)
