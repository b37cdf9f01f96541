"""The compiled pipeline: node placement, accelerators, tolerations, hardening, secrets, and the committed YAML."""

import dataclasses
import subprocess
import sys

import pytest
import yaml

from pipeline.config import ClusterConfig
from pipeline.pipeline import COMPILED_PATH, build_pipeline, compile_pipeline

TEST_SECRET = "s3cr3t-value-that-must-not-leak"


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    path = compile_pipeline(tmp_path_factory.mktemp("yaml") / "p.yaml", ClusterConfig())
    return path.read_text(), yaml.safe_load_all(path.read_text())


def _platform(text):
    docs = list(yaml.safe_load_all(text))
    assert len(docs) == 2, "expected the pipeline spec and the kubernetes platform spec"
    return docs[0], docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_committed_yaml_matches_what_the_code_compiles_now(compiled):
    """pipeline/video_generation.yaml is up to date: run `make compile` after changing the pipeline or components."""
    text, _ = compiled
    assert COMPILED_PATH.exists(), "pipeline/video_generation.yaml is missing: run `make compile`"
    assert COMPILED_PATH.read_text() == text, "pipeline/video_generation.yaml is stale: run `make compile`"


def test_train_goes_to_v100_and_generate_to_k80_with_one_gpu_and_a_toleration(compiled):
    """Node selectors, accelerator type/limit and the nvidia.com/gpu toleration are on the two GPU stages only."""
    spec, executors = _platform(compiled[0])
    assert executors["exec-train-model"]["nodeSelector"]["labels"] == {
        "cloud.google.com/gke-accelerator": "nvidia-tesla-v100"}
    assert executors["exec-generate-frames"]["nodeSelector"]["labels"] == {
        "cloud.google.com/gke-accelerator": "nvidia-tesla-k80"}
    for name in ("exec-train-model", "exec-generate-frames"):
        tolerations = executors[name]["tolerations"]
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
        accel = spec["deploymentSpec"]["executors"][name]["container"]["resources"]["accelerator"]
        assert accel["resourceType"] == "nvidia.com/gpu" and int(accel["resourceCount"]) == 1
    for name in ("exec-prepare-dataset", "exec-encode-video", "exec-evaluate-model"):
        assert "nodeSelector" not in executors[name]
        resources = spec["deploymentSpec"]["executors"][name]["container"]["resources"]
        assert "accelerator" not in resources and resources["cpuRequest"] > 0 and resources["memoryRequest"] > 0


def test_every_task_runs_as_non_root_with_a_timeout_and_retries_where_they_help(compiled):
    """Hardening: runAsNonRoot + uid on every task, activeDeadlineSeconds per stage; retries on every stage but
    prepare (whose failures are the input: a retry would only delay the error)."""
    spec, executors = _platform(compiled[0])
    assert set(executors) == {f"exec-{n}" for n in ("list-videos", "prepare-dataset", "combine-datasets",
                                                     "train-model", "generate-frames", "encode-video",
                                                     "evaluate-model")}
    for name, executor in executors.items():
        assert executor["securityContext"]["runAsNonRoot"] is True, name
        assert int(executor["securityContext"]["runAsUser"]) == 1000, name
        assert int(executor["activeDeadlineSeconds"]) > 0, name
    tasks = {**spec["root"]["dag"]["tasks"], **spec["components"]["comp-for-loop-1"]["dag"]["tasks"]}
    retries = {name: task.get("retryPolicy", {}).get("maxRetryCount", 0) for name, task in tasks.items()
               if name != "for-loop-1"}
    assert retries == {"list-videos": 0, "prepare-dataset": 0, "combine-datasets": 0, "train-model": 3,
                       "generate-frames": 2, "encode-video": 1, "evaluate-model": 1}


def test_each_listed_video_is_prepared_in_a_parallel_for_and_one_combined_dataset_feeds_training(compiled):
    """Many videos: list-videos (not cached: a prefix's content changes under one URI) feeds a ParallelFor over its
    output list with a parallelism limit; prepare-dataset runs once per item inside it; combine-datasets takes the
    collected datasets; train, generate and evaluate read the combined dataset."""
    spec, _ = _platform(compiled[0])
    root = spec["root"]["dag"]["tasks"]
    loop = root["for-loop-1"]
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--list-videos-Output"
    assert loop["inputs"]["parameters"]["pipelinechannel--list-videos-Output"]["taskOutputParameter"] == {
        "outputParameterKey": "Output", "producerTask": "list-videos"}
    assert int(loop["iteratorPolicy"]["parallelismLimit"]) == ClusterConfig().prepare_parallelism
    assert root["list-videos"]["cachingOptions"] == {}
    inner = spec["components"]["comp-for-loop-1"]["dag"]["tasks"]
    assert list(inner) == ["prepare-dataset"]
    assert inner["prepare-dataset"]["inputs"]["parameters"]["video"]["componentInputParameter"].endswith("loop-item")
    collected = root["combine-datasets"]["inputs"]["artifacts"]["datasets"]["taskOutputArtifact"]
    assert collected == {"outputArtifactKey": "pipelinechannel--prepare-dataset-dataset", "producerTask": "for-loop-1"}
    for task in ("train-model", "generate-frames", "evaluate-model"):
        source = root[task]["inputs"]["artifacts"]["dataset"]["taskOutputArtifact"]
        assert source["producerTask"] == "combine-datasets", task


def test_storage_stages_get_credentials_from_the_secret_never_a_value(compiled):
    """Credentials come from the mlpipeline-minio-artifact Secret by reference; no secret value is in the YAML."""
    text, _ = compiled
    spec, executors = _platform(text)
    for name in ("exec-list-videos", "exec-prepare-dataset", "exec-train-model", "exec-encode-video",
                 "exec-evaluate-model"):
        (entry,) = executors[name]["secretAsEnv"]
        assert entry["secretName"] == "mlpipeline-minio-artifact"
        assert {m["envVar"] for m in entry["keyToEnv"]} == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
        (config_map,) = executors[name]["configMapAsEnv"]
        assert config_map["configMapName"] == "videogen-config" and config_map["optional"] is True
        assert {m["envVar"] for m in config_map["keyToEnv"]} == {"AWS_ENDPOINT_URL_S3", "AWS_REGION"}
    assert "AWS_SECRET_ACCESS_KEY:" not in text and "value: minio123" not in text


def test_standalone_seaweedfs_overlay_compiles_with_its_own_store_and_secret(tmp_path):
    """`make compile OVERLAY=standalone-seaweedfs` points the storage stages at the overlay's SeaweedFS S3 Service and its
    Secret (videogen-s3-credentials), which is what that overlay installs."""
    out = tmp_path / "p.yaml"
    subprocess.run(["make", "--no-print-directory", "compile", "OVERLAY=standalone-seaweedfs", f"PIPELINE_YAML={out}"],
                   check=True, capture_output=True, cwd=COMPILED_PATH.parents[1])
    _, executors = _platform(out.read_text())
    (entry,) = executors["exec-train-model"]["secretAsEnv"]
    assert entry["secretName"] == "videogen-s3-credentials"
    spec = yaml.safe_load(out.read_text().split("\n---\n")[0])
    env = spec["deploymentSpec"]["executors"]["exec-train-model"]["container"]["env"]
    assert {"name": "AWS_ENDPOINT_URL", "value": "http://videogen-seaweedfs:8333"} in env


def test_compiled_yaml_never_contains_credentials_from_the_environment(tmp_path, monkeypatch):
    """Compiling with credentials in the environment does not copy them into the YAML."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTLEAKCHECK")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_SECRET)
    text = compile_pipeline(tmp_path / "p.yaml", ClusterConfig.from_env()).read_text()
    assert TEST_SECRET not in text and "AKIATESTLEAKCHECK" not in text


def test_node_selectors_and_images_are_configurable_at_compile_time(tmp_path):
    """`videogen compile` flags change the node pools and images (clusters name GPU pools differently)."""
    out = tmp_path / "p.yaml"
    subprocess.run([sys.executable, "-m", "videogen", "compile", "--output", str(out),
                    "--train-node-selector", "pool=a100", "--generate-node-selector", "pool=t4",
                    "--image", "reg.example/vg:1", "--gpu-image", "reg.example/vg-gpu:1",
                    "--generate-image", "reg.example/vg-gpu:1"], check=True,
                   capture_output=True, env={"PATH": "/usr/bin:/bin"})
    spec, executors = _platform(out.read_text())
    assert executors["exec-train-model"]["nodeSelector"]["labels"] == {"pool": "a100"}
    assert executors["exec-generate-frames"]["nodeSelector"]["labels"] == {"pool": "t4"}
    images = {n: e["container"]["image"] for n, e in spec["deploymentSpec"]["executors"].items()}
    assert images["exec-train-model"] == images["exec-generate-frames"] == "reg.example/vg-gpu:1"
    assert images["exec-prepare-dataset"] == "reg.example/vg:1"


def test_no_deprecated_gpu_calls_in_the_pipeline_code():
    """set_gpu_limit and add_node_selector_constraint are deprecated: the wiring uses the accelerator API."""
    source = (COMPILED_PATH.parent / "pipeline.py").read_text()
    assert "set_gpu_limit" not in source and "add_node_selector_constraint" not in source


def test_pipeline_parameters_keep_the_original_script_flags_and_stage_defaults():
    """The original training script's flags are pipeline parameters, and each default equals the stage settings'
    default (tests/pipeline/test_parameters.py checks every parameter in every place)."""
    from videogen.dataset import PrepareSettings
    from videogen.generate import GenerateSettings
    from videogen.train import TrainSettings

    inputs = build_pipeline().component_spec.inputs
    for script_flag in ("video", "frames", "max_epoch", "train_ratio", "batch_size", "l1_weight", "gan_weight",
                      "image_size", "seed"):
        assert script_flag in inputs
    for settings in (PrepareSettings(), TrainSettings(), GenerateSettings()):
        for field in dataclasses.fields(settings):
            if field.name in inputs and field.name != "seed":
                assert inputs[field.name].default == getattr(settings, field.name), field.name
