"""The ``videogen`` command line: run the whole pipeline (locally through kfp.local, or on a cluster), or one stage.

This is the ``videogen`` console script. It holds the orchestration commands, which drive the runners beside it:
``run`` (``pipeline.local_runner``, or a cluster with ``--host``), ``submit``, ``upload`` and ``fetch``
(``pipeline.kubeflow_runner``) and ``compile`` (``pipeline.pipeline``). The stage commands (prepare, train, generate,
evaluate, tensorboard) and the flag machinery are the library's (``videogen.cli``); one parser holds both, so
``videogen -h`` lists every command.

``videogen run`` takes one flag per pipeline parameter from the settings field that declares it
(``videogen.runs.parameter_field``). kfp is imported only by the commands that need it, so ``videogen prepare -h``
stays quick.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import sys
from pathlib import Path

from videogen import cli as library_cli
from videogen.errors import InputError, VideogenError

# The name the log lines of these commands have always carried.
log = logging.getLogger("videogen.cli")


@functools.cache
def _pipeline_parameter_names() -> tuple[str, ...]:
    import inspect

    from pipeline.pipeline import build_pipeline

    # Building the pipeline graph is the slow part (kfp inspects the call stack for every task): once per process.
    return tuple(inspect.signature(build_pipeline().pipeline_func).parameters)


def pipeline_parameters() -> list[str]:
    """The pipeline's parameter names, in signature order (imports the pipeline, hence kfp)."""
    return list(_pipeline_parameter_names())


def add_pipeline_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per pipeline parameter, from the settings field that declares it. Where ``metadata["local"]`` says
    what a local run uses instead, the flag is unset by default and its help names both defaults; so it is where
    ``metadata["runner"]`` says what both runners fill in."""
    from videogen import runs

    names = pipeline_parameters()
    for name in names:
        settings_cls, f = runs.parameter_field(name)
        if "local" in f.metadata:
            library_cli.add_field_flag(parser, settings_cls, f, default=None, help_text=(
                f"{f.metadata['help']} (default: locally, {f.metadata['local']}; on a cluster, {f.default or 'empty'})"))
        elif "runner" in f.metadata:
            library_cli.add_field_flag(parser, settings_cls, f, default=None,
                                       help_text=f"{f.metadata['help']} (default: {f.metadata['runner']})")
        else:
            library_cli.add_field_flag(parser, settings_cls, f)
    parser.set_defaults(pipeline_parameters=tuple(names))


def _add_kfp_connection_flags(parser: argparse.ArgumentParser, host_help: str) -> None:
    parser.add_argument("--host", default=None, help=host_help)
    parser.add_argument("--namespace", default=None, help="Kubeflow profile namespace (multi-user installs)")
    parser.add_argument("--token", default=None,
                        help="bearer token for the KFP API (default: $KFP_TOKEN); multi-user installs")
    parser.add_argument("--cookies", default=None, help="cookie header for the KFP API (e.g. an auth session)")
    parser.add_argument("--ssl-ca-cert", "--ssl_ca_cert", dest="ssl_ca_cert", default=None,
                        help="CA bundle for an https KFP host")


def _add_kfp_client_flags(parser: argparse.ArgumentParser) -> None:
    _add_kfp_connection_flags(parser, "Kubeflow Pipelines API URL: submit there instead of running locally "
                                      "(e.g. http://localhost:8080/pipeline)")
    parser.add_argument("--experiment", default="videogen", help="experiment of the run (default: %(default)s)")
    parser.add_argument("--run-name", "--run_name", dest="run_name", default=None, help="name of the run")
    parser.add_argument("--service-account", "--service_account", dest="service_account", default=None,
                        help="Kubernetes service account of the run's pods (default: KFP's; `make run` passes "
                             "videogen-pipeline-runner, which `make deploy` installs)")


def _populate_run(parser: argparse.ArgumentParser) -> None:
    add_pipeline_flags(parser)
    parser.add_argument("--video-url", "--video_url", dest="video_url", default=None,
                        help="download the video from this URL to the --video path first")
    parser.add_argument("--output", default="gen.mp4", help="where the generated mp4 goes: a path or s3:// URI "
                                                            "(default: %(default)s)")
    parser.add_argument("--work-dir", "--work_dir", dest="work_dir", default="work",
                        help="local runs: where artifacts, checkpoints and results go (default: %(default)s)")
    parser.add_argument("--wait", action="store_true", help="with --host: wait for the run and download the video")
    parser.add_argument("--timeout", type=int, default=24 * 3600, help="with --wait: seconds to wait")
    _add_kfp_client_flags(parser)
    library_cli.add_storage_flag(parser)


def _add_run_commands(sub) -> None:
    for name, help_text, func in (
            ("run", "run the whole pipeline: locally through kfp.local, or on a cluster with --host", cmd_run),
            ("submit", "submit the pipeline to a Kubeflow cluster (same as run --host)", cmd_submit)):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.populate = _populate_run
        p.set_defaults(func=func)


def _add_fetch_and_upload(sub) -> None:
    from videogen.runs import parameter_field

    p = sub.add_parser("fetch", help="download the video a cluster run published")
    p.add_argument("--run-id", "--run_id", dest="run_id", required=True, help="the KFP run id")
    _add_kfp_connection_flags(p, "Kubeflow Pipelines API URL: download the run's artifacts through its artifact API "
                                 "(signed URLs: no object-store keys needed), else from --output-root (default: "
                                 "$KFP_HOST, else the object store only)")
    p.add_argument("--output", default="gen.mp4", help="where to save it (default: %(default)s)")
    p.add_argument("--output-root", "--output_root", dest="output_root",
                   default=parameter_field("output_root")[1].default,
                   help="the run's output_root, read where the KFP API cannot serve the artifacts "
                        "(default: %(default)s)")
    p.add_argument("--report", action="store_true", help="also fetch report.html and summary.md beside the video")
    clips = p.add_mutually_exclusive_group()
    clips.add_argument("--clip", action="append", metavar="NAME",
                       help="a run with --per-video-models: fetch this clip's video (the name of its folder in the "
                            "run's output, the video's file name without extension); repeat for several")
    clips.add_argument("--all", action="store_true", dest="all_clips",
                       help="a run with --per-video-models: fetch every clip's video, named as `videogen run` names "
                            "them: the first at --output, each other beside it as <output name>-<clip>.mp4")
    library_cli.add_storage_flag(p)
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("upload", help="upload a compiled pipeline to a cluster (a new version only when it changed)")
    p.add_argument("--package", default="pipeline/video_generation.yaml", help="compiled YAML (default: %(default)s)")
    _add_kfp_client_flags(p)
    p.set_defaults(func=cmd_upload)


def _add_compile(sub) -> None:
    p = sub.add_parser("compile", help="compile the pipeline to YAML")
    p.add_argument("--output", default="pipeline/video_generation.yaml", help="YAML to write (default: %(default)s)")
    p.add_argument("--train-node-selector", "--train_node_selector", dest="train_node_selector", default=None,
                   help="KEY=VALUE node label for training (default: cloud.google.com/gke-accelerator="
                        "nvidia-tesla-v100; empty: none)")
    p.add_argument("--generate-node-selector", "--generate_node_selector", dest="generate_node_selector",
                   default=None, help="KEY=VALUE node label for generation (default: cloud.google.com/"
                                      "gke-accelerator=nvidia-tesla-k80; empty: none)")
    p.add_argument("--image", default=None, help="CPU image (default: $VIDEOGEN_IMAGE or REGISTRY/videogen:TAG)")
    p.add_argument("--gpu-image", "--gpu_image", dest="gpu_image", default=None, help="GPU image for training")
    p.add_argument("--generate-image", "--generate_image", dest="generate_image", default=None,
                   help="image for generation (default: $VIDEOGEN_GENERATE_IMAGE or REGISTRY/videogen-gpu-k80:TAG)")
    p.add_argument("--s3-endpoint", "--s3_endpoint", dest="s3_endpoint", default=None,
                   help="object-store endpoint the pods use (default: http://minio-service.kubeflow:9000)")
    p.add_argument("--train-gpus", "--train_gpus", dest="train_gpus", type=int, default=None,
                   help="GPUs for the train step (default 1); more than 1 trains data-parallel with MirroredStrategy, "
                        "batch_size being the global batch")
    p.add_argument("--s3-secret", "--s3_secret", dest="s3_secret", default=None,
                   help="Secret with keys accesskey/secretkey (default: mlpipeline-minio-artifact)")
    p.set_defaults(func=cmd_compile)


def _run_arguments(args) -> dict:
    """The pipeline parameters of a run; the ones left unset (output_root, checkpoint_root, resume_key) get the
    runner's default."""
    values = {name: getattr(args, name) for name in args.pipeline_parameters}
    return {name: value for name, value in values.items() if value is not None}


def _preflight_settings(args) -> None:
    """Refuse a settings value the stages would refuse, before anything starts, with the stage's own message."""
    from videogen import runs, train

    for settings_cls in runs.stage_settings_classes()[1:]:
        settings = library_cli.settings_from_args(settings_cls, args)
        if settings_cls is train.TrainSettings:
            train.validate_settings(settings)


def _fetch_video_url(args) -> None:
    if args.video_url:
        from videogen import storage

        log.info("downloading %s to %s", args.video_url, args.video)
        storage.fetch(args.video_url, Path(args.video))


def _preflight_local(video: str, max_pixels: int, max_videos: int) -> None:
    """Refuse a bad local input (each local video of a list or folder) before any task starts, with the stage's own
    one-line message."""
    from videogen import sources, storage
    from videogen import video as video_io

    for item in sources.list_videos(video, max_videos):
        if not storage.is_remote(item):
            video_io.probe_video(Path(item), max_pixels=max_pixels)


def cmd_run(args) -> int:
    if args.host:
        return cmd_submit(args)
    from pipeline.local_runner import run_local

    _preflight_settings(args)
    library_cli.apply_storage_flag(args)
    _fetch_video_url(args)
    _preflight_local(args.video, args.max_pixels, args.max_videos)
    result = run_local(_run_arguments(args), Path(args.work_dir), args.output)
    print(f"video: {result.output}")
    for clip in result.clips:  # per_video_models: the other clips' videos
        print(f"video: {clip}")
    if result.report:
        print(f"report: {result.report}")
    print(f"finished in {result.duration_s:.0f} s")
    return 0


def _kfp_token(args) -> str | None:
    return args.token or os.environ.get("KFP_TOKEN")


def cmd_submit(args) -> int:
    from pipeline import kubeflow_runner
    from pipeline.config import ClusterConfig
    from pipeline.pipeline import compile_pipeline

    if not args.host:
        raise InputError("submit needs --host: the Kubeflow Pipelines API URL (e.g. http://localhost:8080/pipeline)")
    _preflight_settings(args)
    library_cli.apply_storage_flag(args)
    if args.video_url:
        raise InputError("--video-url with --host: upload the video to object storage and pass --video s3://... "
                         "(pods cannot read your local files)")
    package = Path(args.work_dir) / "video_generation.yaml"
    compile_pipeline(package, ClusterConfig.from_env())
    arguments = _run_arguments(args)
    client = _kfp_client(args)
    result = kubeflow_runner.submit(
        args.host, package, arguments, experiment_name=args.experiment, run_name=args.run_name,
        namespace=args.namespace, wait=args.wait, timeout_s=args.timeout, service_account=args.service_account,
        client=client)
    print(f"run id: {result.run_id}")
    print(f"watch it: {result.url}")
    if args.wait:
        _download_result(result.run_id, arguments, args.output, client, args.host)
        print(f"video: {args.output}")
    return 0


def _kfp_client(args):
    """``kfp.Client`` for ``--host`` and its auth flags."""
    from pipeline import kubeflow_runner

    return kubeflow_runner.make_kfp_client(args.host, existing_token=_kfp_token(args), cookies=args.cookies,
                                           namespace=args.namespace, ssl_ca_cert=args.ssl_ca_cert)


def _download_result(run_id: str, arguments: dict, output: str, kfp_client, host: str) -> None:
    import tempfile

    from pipeline.kubeflow_runner import fetch_clips, fetch_result
    from videogen import runs, storage

    output_root = arguments.get("output_root") or runs.parameter_field("output_root")[1].default
    if arguments.get("per_video_models") and not storage.is_remote(output):  # every clip, named as a local run does
        for path in fetch_clips(run_id, output, output_root)[1:]:
            print(f"video: {path}")
        return
    if storage.is_remote(output):
        with tempfile.TemporaryDirectory() as tmp:
            storage.put(fetch_result(run_id, Path(tmp) / runs.VIDEO_NAME, output_root, kfp_client=kfp_client,
                                     host=host), output)
    else:
        fetch_result(run_id, Path(output), output_root, kfp_client=kfp_client, host=host)


def cmd_upload(args) -> int:
    from pipeline import kubeflow_runner

    if not args.host:
        raise InputError("upload needs --host: the Kubeflow Pipelines API URL (e.g. http://localhost:8080/pipeline)")
    client = _kfp_client(args)
    pipeline_id, version_id, version_name, created = kubeflow_runner.ensure_pipeline_version(
        client, args.host, args.package, kubeflow_runner.pipeline_name_of(args.package), namespace=args.namespace)
    print(f"pipeline {pipeline_id} version {version_name} ({'uploaded' if created else 'unchanged, reused'})")
    return 0


def cmd_fetch(args) -> int:
    from pipeline.kubeflow_runner import fetch_clips, fetch_result

    library_cli.apply_storage_flag(args)
    if args.clip or args.all_clips:  # the clips' folders are read from the object store
        for path in fetch_clips(args.run_id, args.output, args.output_root, args.clip, report=args.report):
            print(f"video: {path}")
        return 0
    args.host = args.host or os.environ.get("KFP_HOST")
    kfp_client = None
    if args.host:
        try:
            kfp_client = _kfp_client(args)
        except VideogenError as error:
            log.warning("%s: reading the object store instead", error)
    path = fetch_result(args.run_id, Path(args.output), args.output_root, report=args.report, kfp_client=kfp_client,
                        host=args.host)
    print(f"video: {path}")
    return 0


def cmd_compile(args) -> int:
    from pipeline.config import ClusterConfig, parse_node_selector
    from pipeline.pipeline import compile_pipeline

    overrides: dict = {"image": args.image, "gpu_image": args.gpu_image, "generate_image": args.generate_image,
                       "s3_endpoint": args.s3_endpoint, "s3_secret": args.s3_secret, "train_gpus": args.train_gpus}
    cleared = []  # an empty selector flag: no node selector at all (from_env ignores None overrides)
    for name in ("train_node_selector", "generate_node_selector"):
        text = getattr(args, name)
        if text is not None and text.strip():
            overrides[name] = parse_node_selector(text)
        elif text is not None:
            cleared.append(name)
    config = dataclasses.replace(ClusterConfig.from_env(**overrides), **{name: None for name in cleared})
    print(compile_pipeline(Path(args.output), config))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The whole ``videogen`` parser: the orchestration commands here and the library's stage commands, in the order
    ``videogen -h`` lists them."""
    commands = (_add_run_commands, library_cli.add_stage_commands, _add_fetch_and_upload, _add_compile,
                library_cli.add_tensorboard)
    return library_cli.build_parser(commands, description=__doc__.split("\n\n")[0])


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``videogen`` console script."""
    return library_cli.main(argv, build_parser)


if __name__ == "__main__":
    sys.exit(main())
