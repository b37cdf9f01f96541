"""Wiring only: list the videos -> prepare each (ParallelFor) -> combine -> train -> generate -> encode (+ publish),
and evaluate beside them; or, with ``per_video_models``, prepare -> train -> generate -> encode and evaluate for each
video inside the ParallelFor, each clip publishing into a folder of its own (``videogen.runs.clip_scope``).

Every cluster-specific value (images, GPU node pools, object store, secret names, timeouts) comes from one
:class:`pipeline.config.ClusterConfig`. Each parameter's default is the one of the settings field of the same name
(a stage's settings, or ``videogen.runs.RunSettings``); tests/pipeline/test_parameters.py checks they agree.
"""

from pathlib import Path

from kfp import compiler, dsl

from components import (
    clip_scope,
    combine_datasets,
    encode_video,
    evaluate_model,
    first_clip,
    generate_frames,
    launch_trainjob,
    list_videos,
    prepare_dataset,
    train_model,
)
from pipeline.config import ClusterConfig

PIPELINE_NAME = "video-generation"
COMPILED_PATH = Path(__file__).with_name("video_generation.yaml")


def _cpu_stage(task, config: ClusterConfig, stage: str, display_name: str):
    task.set_container_image(config.image)
    _resources(task, config.cpu_stage_resources)
    _harden(task, config, stage)
    _retry(task, config, stage, backoff="30s")
    return task.set_display_name(display_name)


def _gpu_stage(task, config: ClusterConfig, stage: str, display_name: str, image: str, selector, gpus: int):
    task.set_container_image(image)
    _resources(task, config.gpu_stage_resources)
    task.set_accelerator_type(config.gpu_resource).set_accelerator_limit(gpus)
    if config.kubernetes:
        from kfp import kubernetes

        if selector:
            kubernetes.add_node_selector(task, label_key=selector[0], label_value=selector[1])
        kubernetes.add_toleration(task, key=config.gpu_toleration_key, operator="Exists", effect="NoSchedule")
    _harden(task, config, stage)
    _retry(task, config, stage, backoff="60s")  # GPU pods take longer to schedule
    return task.set_display_name(display_name)


def _resources(task, res: dict) -> None:
    task.set_cpu_request(res["cpu_request"]).set_cpu_limit(res["cpu_limit"])
    task.set_memory_request(res["memory_request"]).set_memory_limit(res["memory_limit"])


def _retry(task, config: ClusterConfig, stage: str, backoff: str) -> None:
    if config.retries[stage]:
        task.set_retry(num_retries=config.retries[stage], backoff_duration=backoff, backoff_factor=2.0)


def _harden(task, config: ClusterConfig, stage: str) -> None:
    if not config.kubernetes:
        return
    from kfp import kubernetes

    kubernetes.set_security_context(task, run_as_user=config.run_as_user, run_as_group=config.run_as_group,
                                    run_as_non_root=True)
    kubernetes.set_timeout(task, config.timeouts_s[stage])


def _object_storage_env(task, config: ClusterConfig) -> None:
    """Stages that read or write object storage directly get the endpoint (the deployed ConfigMap's, else the one
    compiled in) and the Secret's keys."""
    if not config.kubernetes:
        return
    from kfp import kubernetes

    if config.s3_endpoint:
        task.set_env_variable("AWS_ENDPOINT_URL", config.s3_endpoint)
    kubernetes.use_config_map_as_env(task, config_map_name=config.config_map, config_map_key_to_env={
        "AWS_ENDPOINT_URL_S3": "AWS_ENDPOINT_URL_S3", "AWS_REGION": "AWS_REGION"}, optional=True)
    kubernetes.use_secret_as_env(task, secret_name=config.s3_secret, secret_key_to_env={
        config.s3_secret_access_key_field: "AWS_ACCESS_KEY_ID",
        config.s3_secret_secret_key_field: "AWS_SECRET_ACCESS_KEY",
    })


def _list_videos(config: ClusterConfig, **params):
    task = _cpu_stage(list_videos(**params), config, "prepare", "list videos")
    task.set_caching_options(False)  # a prefix's content changes under the same URI; listing is cheap
    _object_storage_env(task, config)
    return task


def _prepare(config: ClusterConfig, **params):
    task = _cpu_stage(prepare_dataset(**params), config, "prepare", "prepare dataset")
    _object_storage_env(task, config)
    return task


def _combine(config: ClusterConfig, prepared):
    return _cpu_stage(combine_datasets(datasets=dsl.Collected(prepared.outputs["dataset"])), config, "prepare",
                      "combine datasets")


def _train(config: ClusterConfig, dataset, **params):
    """The trained model: from a GPU step (``train_nodes`` 1), or from a CPU step that launches a TrainJob of
    ``train_nodes`` GPU nodes and waits for it (so no GPU is held while it waits)."""
    with dsl.If(params["train_nodes"] == 1, name="train-here"):
        here = train_model(dataset=dataset.outputs["dataset"], **params)
        _gpu_stage(here, config, "train", "train pix2pix", config.gpu_image, config.train_node_selector,
                   config.train_gpus)
    with dsl.Else(name="train-on-nodes"):
        launcher = launch_trainjob(dataset=dataset.outputs["dataset"], **params)
        _cpu_stage(launcher, config, "train", "train pix2pix on nodes (TrainJob)")
        if config.kubernetes:  # the TrainJob's image, GPUs, node pool and runtime (videogen.trainjob)
            launcher.set_env_variable("VIDEOGEN_TRAINJOB", config.trainjob_launch())
    for task in (here, launcher):
        task.set_caching_options(False)  # a resumed run must not reuse a half-trained result
        _object_storage_env(task, config)
    return dsl.OneOf(here.outputs["model"], launcher.outputs["model"])


def _generate(config: ClusterConfig, dataset, model, **params):
    task = generate_frames(model=model, dataset=dataset.outputs["dataset"], **params)
    return _gpu_stage(task, config, "generate", "generate frames", config.generate_image,
                      config.generate_node_selector, config.generate_gpus)


def _encode(config: ClusterConfig, generate, **params):
    task = _cpu_stage(encode_video(generated=generate.outputs["generated"], **params), config, "encode",
                      "encode video")
    _object_storage_env(task, config)
    return task


def _evaluate(config: ClusterConfig, dataset, model, generate, **params):
    task = evaluate_model(dataset=dataset.outputs["dataset"], model=model,
                          generated=generate.outputs["generated"], **params)
    _cpu_stage(task, config, "evaluate", "evaluate model")
    _object_storage_env(task, config)
    return task


def _model_stages(config: ClusterConfig, dataset, run_id, resume_key, checkpoint_root, output_root, fps, seed,
                  train: dict, generate: dict):
    """Train on ``dataset``, generate, encode and evaluate; returns the encode task (its output: the published mp4)."""
    model = _train(config, dataset, run_id=run_id, checkpoint_root=checkpoint_root, resume_key=resume_key,
                   seed=seed, **train)
    generated = _generate(config, dataset, model, run_id=run_id, checkpoint_root=checkpoint_root,
                          resume_key=resume_key, fps=fps, seed=seed, **generate)
    encoded = _encode(config, generated, run_id=run_id, output_root=output_root, fps=fps)
    _evaluate(config, dataset, model, generated, run_id=run_id, output_root=output_root, seed=seed)
    return encoded


def _clip_scope(config: ClusterConfig, video, listing, run_id, resume_key):
    return _cpu_stage(clip_scope(video=video, videos=listing.output, run_id=run_id, resume_key=resume_key), config,
                      "prepare", "clip scope")


def _first_clip(config: ClusterConfig, encoded):
    return _cpu_stage(first_clip(published=dsl.Collected(encoded.outputs["Output"])), config, "encode",
                      "first clip")


def build_pipeline(config: "ClusterConfig | None" = None):
    """Return the pipeline function for ``config`` (the same function runs on a cluster and in kfp.local)."""
    config = config or ClusterConfig()

    @dsl.pipeline(name=PIPELINE_NAME,
                  description="Learn how a video moves (pix2pix next-frame model) and generate a new video from one "
                              "frame.")
    def video_generation(
        video: str,
        frames: int = 2000,
        max_epoch: int = 20,
        max_steps: int = 0,
        train_ratio: float = 0.9,
        batch_size: int = 16,
        l1_weight: float = 100.0,
        gan_weight: float = 0.1,
        image_size: int = 256,
        seed: int = 0,
        ngf: int = 64,
        ndf: int = 64,
        context_frames: int = 2,
        refine_rounds: int = 0,
        checkpoint_every: int = 500,
        num_videos: int = 1,
        deterministic: bool = False,
        steer: bool = True,
        fps: float = 0.0,
        output_root: str = "minio://mlpipeline/videogen",
        checkpoint_root: str = "minio://mlpipeline/videogen-checkpoints",
        resume_key: str = "",
        max_pixels: int = 3840 * 2160,
        video_identity: str = "",
        max_videos: int = 64,
        train_nodes: int = 1,
        per_video_models: bool = False,
    ) -> str:
        run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        prepare_args = dict(image_size=image_size, train_ratio=train_ratio, seed=seed, max_pixels=max_pixels)
        train_args = dict(max_epoch=max_epoch, max_steps=max_steps, batch_size=batch_size, l1_weight=l1_weight,
                          gan_weight=gan_weight, ngf=ngf, ndf=ndf, context_frames=context_frames,
                          refine_rounds=refine_rounds, checkpoint_every=checkpoint_every, train_nodes=train_nodes)
        generate_args = dict(frames=frames, num_videos=num_videos, deterministic=deterministic, steer=steer)
        stages = dict(checkpoint_root=checkpoint_root, output_root=output_root, fps=fps, seed=seed, train=train_args,
                      generate=generate_args)
        listing = _list_videos(config, video=video, max_videos=max_videos, video_identity=video_identity)
        with dsl.If(per_video_models == False, name="one-model"):  # noqa: E712 - KFP builds its condition from ==
            with dsl.ParallelFor(listing.output, parallelism=config.prepare_parallelism) as one_video:
                prepare = _prepare(config, video=one_video.video, video_identity=one_video.identity, **prepare_args)
            encoded = _model_stages(config, _combine(config, prepare), run_id, resume_key, **stages)
        with dsl.Else(name="a-model-per-video"):
            with dsl.ParallelFor(listing.output, parallelism=config.prepare_parallelism) as clip_video:
                clip_prepare = _prepare(config, video=clip_video.video, video_identity=clip_video.identity,
                                        **prepare_args)
                scope = _clip_scope(config, clip_video.video, listing, run_id, resume_key)
                clip_encoded = _model_stages(config, clip_prepare, scope.outputs["run_id"],
                                             scope.outputs["resume_key"], **stages)
            first = _first_clip(config, clip_encoded)
        return dsl.OneOf(encoded.outputs["Output"], first.output)

    return video_generation


def compile_pipeline(output: Path = COMPILED_PATH, config: "ClusterConfig | None" = None) -> Path:
    """Compile the pipeline for ``config`` to ``output`` (YAML). Returns the path."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(config), package_path=str(output))
    return output


if __name__ == "__main__":  # `python -m pipeline.pipeline` compiles with the environment's ClusterConfig
    print(compile_pipeline(config=ClusterConfig.from_env()))
