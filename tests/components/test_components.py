"""Each component's `python_func` called directly with artifacts on tmp_path: the wrappers resolve paths, call the
library and record metadata (no kfp.local, no cluster). Parameters a test leaves out get their settings default."""

import json

import pytest
from kfp import dsl

from components import encode_video, evaluate_model, generate_frames, prepare_dataset, train_model
from tests.component_calls import call_component


def artifact(cls, tmp_path, name):
    return cls(name=name, uri=str(tmp_path / name), metadata={})


@pytest.mark.e2e
def test_components_chain_from_video_to_published_mp4_and_report(tmp_path, synthetic_video):
    """prepare -> train -> generate -> encode -> evaluate through the component functions; the video and report are
    published under {output_root}/{run_id}/ and the metrics, the video-quality ones included, are logged."""
    dataset = artifact(dsl.Dataset, tmp_path, "dataset")
    call_component(prepare_dataset, video=str(synthetic_video), dataset=dataset, image_size=64, train_ratio=0.8,
                   seed=1)
    assert dataset.metadata["num_frames"] == 40 and (tmp_path / "dataset" / "frames.npy").exists()

    model = artifact(dsl.Model, tmp_path, "model")
    call_component(train_model, dataset=dataset, model=model, run_id="run-1", checkpoint_root=str(tmp_path / "ckpt"),
                   max_steps=4, batch_size=2, ngf=8, ndf=8, refine_rounds=0, checkpoint_every=2)
    assert model.metadata["steps"] == 4
    assert (tmp_path / "ckpt" / "run-1" / "train" / "checkpoint").exists()

    generated = artifact(dsl.Artifact, tmp_path, "generated")
    call_component(generate_frames, model=model, dataset=dataset, generated=generated, run_id="run-1",
                   checkpoint_root=str(tmp_path / "ckpt"), frames=7)
    assert generated.metadata["frames"] == 7

    video = artifact(dsl.Artifact, tmp_path, "video")
    published = call_component(encode_video, generated=generated, video=video, run_id="run-1",
                               output_root=str(tmp_path / "published"))
    assert published == str(tmp_path / "published" / "run-1" / "gen.mp4")
    assert (tmp_path / "published" / "run-1" / "gen.mp4").stat().st_size > 0
    assert video.metadata["frames"] == 7

    metrics = artifact(dsl.Metrics, tmp_path, "metrics")
    report = artifact(dsl.HTML, tmp_path, "report")
    summary = artifact(dsl.Markdown, tmp_path, "summary")
    call_component(evaluate_model, dataset=dataset, model=model, generated=generated, metrics=metrics,
                   report=report, summary=summary, run_id="run-1", output_root=str(tmp_path / "published"))
    assert metrics.metadata and all(isinstance(v, (int, float)) for v in metrics.metadata.values())
    # The video-quality judgement of the generated video and the baselines is logged as Metrics too.
    for name in ("video_ok", "video_failure_frame", "motion_min", "motion_max", "sharpness_min", "replay_share",
                 "copy_replay_share", "textures_replay_share"):
        assert name in metrics.metadata, name
    assert metrics.metadata["video_ok"] in (0.0, 1.0)
    assert "<html" in (tmp_path / "report").read_text().lower()
    assert json.loads((tmp_path / "published" / "run-1" / "metrics.json").read_text())


def test_prepare_component_fails_with_the_one_line_message(tmp_path, capsys):
    """A bad input makes the task fail (exit 2) with the same one-line message the CLI prints."""
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"\x00garbage" * 100)
    dataset = artifact(dsl.Dataset, tmp_path, "dataset")
    with pytest.raises(SystemExit) as exit_info:
        call_component(prepare_dataset, video=str(bogus), dataset=dataset, image_size=64)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("videogen: error:")
    assert not (tmp_path / "dataset" / "dataset.json").exists()
