"""Write the starting corpus of every harness (``fuzz/corpus/<harness>/``): small valid files as the stages write them,
and a few damaged ones (cut short, bytes overwritten, another artifact's file). Deterministic; re-run after a format
changes: ``python -m fuzz.make_corpus``."""

from __future__ import annotations

import io
import json
import shutil
import struct
from pathlib import Path

import numpy as np

from videogen import steering

CORPUS = Path(__file__).resolve().parent / "corpus"

DATASET = {"fps": 25.0, "image_size": 8, "num_frames": 6, "source": "/data/clip.mp4", "train": [0, 3], "val": [3, 5],
           "start_frame": 3, "seed": 0, "settings": {"image_size": 8, "train_ratio": 0.9, "seed": 0},
           "source_width": 64, "source_height": 48, "rotation": 0, "source_codec": "h264",
           "source_format": "mov,mp4,m4a,3gp,3g2,mj2", "source_frames": 6, "partial_decode": False, "notes": []}
COMBINED = {"fps": 25.0, "image_size": 8, "num_frames": 6, "source": "2 videos: a.mp4, b.mp4", "seed": 0,
            "videos": [{**DATASET, "name": "a.mp4", "num_frames": 3, "first_frame": 0, "train": [0, 1], "val": [1, 2],
                        "start_frame": 1},
                       {**DATASET, "name": "b.mp4", "num_frames": 3, "first_frame": 3, "train": [0, 1], "val": [1, 2],
                        "start_frame": 2, "partial_decode": True, "notes": ["decoding stopped at frame 3"]}]}
MODEL = {"image_size": 64, "fps": 25.0, "steps": 2, "context_frames": 2, "residual": True, "norm": "group",
         "dropout": 0.5, "ngf": 4, "ndf": 4, "batch_size": 2, "train_seconds": 24.1, "train_images_per_s": 0.42,
         "settings": {"max_steps": 2, "batch_size": 2, "seed": 0},
         "history": {"phases": [{"name": "main", "first_step": 0, "end_step": 2}],
                     "points": [{"step": 1, "phase": "main", "gen_gan": 0.62, "gen_l1": 0.012, "disc": 0.70},
                                {"step": 2, "phase": "main", "gen_gan": 0.61, "gen_l1": 0.011, "disc": 0.71}]},
         "steering": {"motion_px": 0.45}}
GENERATION = {"context_frames": 2, "deterministic": False, "device": "CPU", "duration_s": 14.9, "fps": 25.0,
              "frames": 4, "frames_per_s": 0.4, "image_size": 8, "num_videos": 2, "precision": "bfloat16",
              "resumed_at_frame": 0, "seed": 0, "start_frames": [3, 4], "start_videos": ["clip.mp4", "clip.mp4"],
              "steering": {"amount": [0.0, 0.1], "change": [0.1, 0.1], "look": "patch", "motion": [0.2, 0.3],
                           "steps": 4, "tau": [1.2, 1.1], "weight": [0.05, 0.05]}, "total_frames_per_s": 0.8}
PROBE = {"streams": [{"index": 0, "codec_name": "h264", "codec_type": "video", "width": 64, "height": 48,
                      "r_frame_rate": "25/1", "avg_frame_rate": "25/1", "duration": "1.600000", "nb_frames": "40",
                      "disposition": {"default": 1, "attached_pic": 0}, "tags": {"rotate": "90"},
                      "side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}]},
                     {"index": 1, "codec_type": "audio", "codec_name": "aac"},
                     {"index": 2, "codec_type": "video", "codec_name": "mjpeg", "width": 32, "height": 32,
                      "disposition": {"attached_pic": 1}}],
         "format": {"filename": "clip.mp4", "nb_streams": 3, "format_name": "mov,mp4,m4a,3gp,3g2,mj2",
                    "duration": "1.600000", "size": "12345"}}


def _json(value) -> bytes:
    return json.dumps(value, indent=2).encode()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _frames(shape: tuple[int, ...]) -> np.ndarray:
    return (np.arange(int(np.prod(shape))) % 251).astype(np.uint8).reshape(shape)


def _steering() -> bytes:
    rng = np.random.default_rng(0)
    targets = steering.Targets(motion_px=0.45, change=0.1, sharpness=120.0, patch_distance=9.5,
                               distance_bank=rng.normal(size=(4, 147)).astype(np.float32),
                               anchors=_frames((2, 8, 8, 3)))
    folder = CORPUS / ".steering"
    folder.mkdir(parents=True, exist_ok=True)
    data = steering.save_targets(targets, folder).read_bytes()
    shutil.rmtree(folder)
    return data


def _damaged(valid: bytes) -> dict[str, bytes]:
    """The damages the corrupted-artifact tests apply: cut in half, bytes overwritten in the middle."""
    garbled = bytearray(valid)
    for i in range(len(garbled) // 3, 2 * len(garbled) // 3, 7):
        garbled[i] = (garbled[i] * 31 + 7) % 256
    return {"truncated": valid[:len(valid) // 2], "garbled": bytes(garbled)}


def files() -> dict[str, dict[str, bytes]]:
    """Every harness's starting inputs, by file name."""
    dataset_npy, generated_npy = _npy(_frames((6, 8, 8, 3))), _npy(_frames((4, 2, 8, 8, 3)))
    metrics_choices = {"original": bytes([255]) * 64, "all-first": b"", "mixed": bytes(range(256))}
    sources = {"one-file": struct.pack("<B", 3) + b"clips/a.mp4",
               "list": b"\x05\x30clips/a.mp4, s3://bucket/clips/,minio://bucket/x.mp4,https://example.com/v.mp4",
               "prefix": b"\x02\x12s3://bucket/clips/\x03\x0aclips/a.mp4\x05etag1\x00\x00\x00\x10\x00"}
    return {
        "ffprobe": {"valid.json": _json(PROBE), "audio-only.json": _json({"streams": [PROBE["streams"][1]],
                                                                          "format": PROBE["format"]}),
                    **{f"{k}.json": v for k, v in _damaged(_json(PROBE)).items()}},
        "dataset_frames": {"valid.npy": dataset_npy, "generated.npy": generated_npy, **_damaged(dataset_npy)},
        "generated_frames": {"valid.npy": generated_npy, "dataset.npy": dataset_npy, **_damaged(generated_npy)},
        "dataset_json": {"valid.json": _json(DATASET), "combined.json": _json(COMBINED),
                         "model.json": _json(MODEL), **_damaged(_json(DATASET))},
        "model_json": {"valid.json": _json(MODEL), "dataset.json": _json(DATASET), **_damaged(_json(MODEL))},
        "generation_json": {"valid.json": _json(GENERATION), "model.json": _json(MODEL),
                            **_damaged(_json(GENERATION))},
        "steering_npz": {"valid.npz": _steering(), "frames.npy": dataset_npy, **_damaged(_steering())},
        "metrics_json": metrics_choices,
        "sources": sources,
    }


def main() -> None:
    for harness, inputs in files().items():
        folder = CORPUS / harness
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, data in inputs.items():
            (folder / name).write_bytes(data)
    print(f"wrote {sum(len(v) for v in files().values())} inputs under {CORPUS}")


if __name__ == "__main__":
    main()
