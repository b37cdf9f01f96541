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


def _dag_tasks(spec, dag=None) -> dict:
    """Every task of the pipeline, also those in sub-DAGs (ParallelFor, If/Else), by task name."""
    tasks = {}
    for name, task in (dag or spec["root"]["dag"])["tasks"].items():
        component = spec["components"][task["componentRef"]["name"]]
        tasks.update(_dag_tasks(spec, component["dag"]) if "dag" in component else {name: task})
    return tasks


def _branches(spec):
    """The one-model branch's and the per-video branch's DAG tasks (the If and the Else on per_video_models)."""
    (group,) = [t for t in spec["root"]["dag"]["tasks"].values() if t["componentRef"]["name"].startswith(
        "comp-condition-branches")]
    branches = spec["components"][group["componentRef"]["name"]]["dag"]["tasks"].values()
    one, per_video = sorted(branches, key=lambda t: t["triggerPolicy"]["condition"].startswith("!"))
    assert one["triggerPolicy"]["condition"].endswith("['pipelinechannel--per_video_models'] == false")
    return [spec["components"][t["componentRef"]["name"]]["dag"]["tasks"] for t in (one, per_video)]


def _loop(spec, tasks):
    """The ParallelFor among ``tasks``: its task and its body's tasks."""
    (name,) = [n for n in tasks if n.startswith("for-loop-")]
    return tasks[name], spec["components"][tasks[name]["componentRef"]["name"]]["dag"]["tasks"]


def _with_branches(spec, tasks):
    """``tasks`` with the tasks of their If/Else groups pulled up to this level (ParallelFor bodies stay apart)."""
    out = {}
    for name, task in tasks.items():
        ref = task["componentRef"]["name"]
        if ref.startswith("comp-condition-"):
            out.update(_with_branches(spec, spec["components"][ref]["dag"]["tasks"]))
        else:
            out[name] = task
    return out


def _producer(task, artifact: str) -> str:
    """The task whose output feeds input ``artifact`` of ``task`` (directly, or passed into an If/Else branch)."""
    ref = task["inputs"]["artifacts"][artifact]
    if "taskOutputArtifact" in ref:
        return ref["taskOutputArtifact"]["producerTask"]
    return ref["componentInputArtifact"].removeprefix("pipelinechannel--").rsplit("-", 1)[0]


def _parameter_source(task, parameter: str) -> dict:
    """``{"outputParameterKey", "producerTask"}`` of input ``parameter`` of ``task`` (directly, or passed into an
    If/Else branch as ``pipelinechannel--<task>-<key>``)."""
    ref = task["inputs"]["parameters"][parameter]
    if "taskOutputParameter" in ref:
        return ref["taskOutputParameter"]
    channel = ref["componentInputParameter"].removeprefix("pipelinechannel--")
    for key in ("run_id", "resume_key"):
        if channel.endswith(f"-{key}"):
            return {"outputParameterKey": key, "producerTask": channel.removesuffix(f"-{key}")}
    return ref


def test_every_task_runs_as_non_root_with_a_timeout_and_retries_where_they_help(compiled):
    """Hardening: runAsNonRoot + uid on every task, activeDeadlineSeconds per stage; retries on every stage but
    prepare (whose failures are the input: a retry would only delay the error), in both branches."""
    spec, executors = _platform(compiled[0])
    stages = ("prepare-dataset", "train-model", "launch-trainjob", "generate-frames", "encode-video",
              "evaluate-model")
    assert set(executors) == {f"exec-{n}" for n in ("list-videos", "combine-datasets", "clip-scope", "first-clip",
                                                     *stages, *(f"{stage}-2" for stage in stages))}
    for name, executor in executors.items():
        assert executor["securityContext"]["runAsNonRoot"] is True, name
        assert int(executor["securityContext"]["runAsUser"]) == 1000, name
        assert int(executor["activeDeadlineSeconds"]) > 0, name
    retries = {name: task.get("retryPolicy", {}).get("maxRetryCount", 0) for name, task in _dag_tasks(spec).items()}
    expected = {"prepare-dataset": 0, "train-model": 3, "launch-trainjob": 3, "generate-frames": 2, "encode-video": 1,
                "evaluate-model": 1}
    assert retries == {"list-videos": 0, "combine-datasets": 0, "clip-scope": 0, "first-clip": 1, **expected,
                       **{f"{name}-2": count for name, count in expected.items()}}


def test_each_listed_video_is_prepared_in_a_parallel_for_and_one_combined_dataset_feeds_training(compiled):
    """Many videos: list-videos (not cached: a prefix's content changes under one URI) feeds a ParallelFor over its
    output list with a parallelism limit; prepare-dataset runs once per item inside it; combine-datasets takes the
    collected datasets; train, generate and evaluate read the combined dataset."""
    spec, _ = _platform(compiled[0])
    assert spec["root"]["dag"]["tasks"]["list-videos"]["cachingOptions"] == {}
    one_model, _ = _branches(spec)
    loop, inner = _loop(spec, one_model)
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--list-videos-Output"
    assert int(loop["iteratorPolicy"]["parallelismLimit"]) == ClusterConfig().prepare_parallelism
    assert list(inner) == ["prepare-dataset"]
    assert inner["prepare-dataset"]["inputs"]["parameters"]["video"]["componentInputParameter"].endswith("loop-item")
    collected = one_model["combine-datasets"]["inputs"]["artifacts"]["datasets"]["taskOutputArtifact"]
    assert collected == {"outputArtifactKey": "pipelinechannel--prepare-dataset-dataset",
                         "producerTask": loop["taskInfo"]["name"]}
    tasks = _with_branches(spec, one_model)
    for task in ("train-model", "launch-trainjob", "generate-frames", "evaluate-model"):
        assert _producer(tasks[task], "dataset") == "combine-datasets", task


def test_per_video_models_train_generate_encode_and_evaluate_each_clip_inside_its_parallel_for(compiled):
    """per_video_models=true takes the Else branch: a ParallelFor over the same list whose body prepares the clip
    and trains, generates, encodes and evaluates on that clip's own dataset, with the run id and resume key of the
    clip's scope (its own folder); the pipeline's output is the one model's video or the first clip's (OneOf)."""
    spec, executors = _platform(compiled[0])
    _, per_video = _branches(spec)
    loop, inner = _loop(spec, per_video)
    inner = _with_branches(spec, inner)
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--list-videos-Output"
    assert int(loop["iteratorPolicy"]["parallelismLimit"]) == ClusterConfig().prepare_parallelism
    assert set(inner) == {"prepare-dataset-2", "clip-scope", "train-model-2", "launch-trainjob-2", "generate-frames-2",
                          "encode-video-2", "evaluate-model-2"}
    for task in ("train-model-2", "launch-trainjob-2", "generate-frames-2", "evaluate-model-2"):
        assert _producer(inner[task], "dataset") == "prepare-dataset-2", task
    for task in ("train-model-2", "launch-trainjob-2", "generate-frames-2", "encode-video-2", "evaluate-model-2"):
        run_id = _parameter_source(inner[task], "run_id")
        assert run_id == {"outputParameterKey": "run_id", "producerTask": "clip-scope"}, task
    for task in ("train-model-2", "launch-trainjob-2", "generate-frames-2"):
        key = _parameter_source(inner[task], "resume_key")
        assert key == {"outputParameterKey": "resume_key", "producerTask": "clip-scope"}, task
    assert executors["exec-train-model-2"]["nodeSelector"] == executors["exec-train-model"]["nodeSelector"]
    collected = per_video["first-clip"]["inputs"]["parameters"]["published"]["taskOutputParameter"]
    assert collected["producerTask"] == loop["taskInfo"]["name"]
    (group,) = [spec["components"][t["componentRef"]["name"]] for t in spec["root"]["dag"]["tasks"].values()
                if t["componentRef"]["name"].startswith("comp-condition-branches")]
    (oneof,) = group["dag"]["outputs"]["parameters"].values()
    assert [s["outputParameterKey"] for s in oneof["valueFromOneof"]["parameterSelectors"]] == [
        "pipelinechannel--encode-video-Output", "pipelinechannel--first-clip-Output"]


def test_training_on_several_nodes_is_launched_and_followed_by_a_step_that_holds_no_gpu(compiled):
    """train_nodes == 1 trains in the GPU step as before; otherwise the Else branch's launch-trainjob step creates
    and follows the TrainJob (whose nodes hold the GPUs) from a CPU pod: no accelerator, no GPU node pool or
    toleration, the TrainJob settings in its env; generate and evaluate take the model of whichever branch ran."""
    spec, executors = _platform(compiled[0])
    one_model, per_video = _branches(spec)
    for tasks, suffix in ((one_model, ""), (_loop(spec, per_video)[1], "-2")):
        (group,) = [t for t in tasks.values() if t["componentRef"]["name"].startswith("comp-condition-branches")]
        branches = spec["components"][group["componentRef"]["name"]]["dag"]["tasks"]
        (here_name, here), (nodes_name, nodes) = sorted(
            branches.items(), key=lambda item: item[1]["triggerPolicy"]["condition"].startswith("!"))
        assert here["triggerPolicy"]["condition"].endswith("train_nodes']) == 1")
        assert list(spec["components"][here["componentRef"]["name"]]["dag"]["tasks"]) == [f"train-model{suffix}"]
        assert list(spec["components"][nodes["componentRef"]["name"]]["dag"]["tasks"]) == [f"launch-trainjob{suffix}"]
        train = spec["deploymentSpec"]["executors"][f"exec-train-model{suffix}"]["container"]
        launcher = spec["deploymentSpec"]["executors"][f"exec-launch-trainjob{suffix}"]["container"]
        assert int(train["resources"]["accelerator"]["resourceCount"]) == 1
        assert "accelerator" not in launcher["resources"] and launcher["resources"]["cpuRequest"] > 0
        assert "nodeSelector" not in executors[f"exec-launch-trainjob{suffix}"]
        assert "tolerations" not in executors[f"exec-launch-trainjob{suffix}"]
        assert "VIDEOGEN_TRAINJOB" in {e["name"] for e in launcher["env"]}
        assert "VIDEOGEN_TRAINJOB" not in {e["name"] for e in train.get("env", [])}
        (model,) = spec["components"][group["componentRef"]["name"]]["dag"]["outputs"]["artifacts"].values()
        assert [a["producerSubtask"] for a in model["artifactSelectors"]] == [here_name, nodes_name]


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
    subprocess.run([sys.executable, "-m", "pipeline.cli", "compile", "--output", str(out),
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
