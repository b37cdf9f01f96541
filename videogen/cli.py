"""The ``videogen`` command line: run the whole pipeline (locally through kfp.local, or on a cluster), or one stage.

Flags of settings are built from the settings dataclasses, so a flag, its default and its help text are the same as
the library's: a stage command takes its stage's settings, ``videogen run`` takes one flag per pipeline parameter from
the field that declares it (``videogen.runs.parameter_field``). Underscore spellings (``--max_epoch``) are accepted
too. User errors print one line to stderr and exit with status 2.

The orchestration side (``pipeline``, and kfp through it) is imported only by the commands that need it: run, submit,
upload, fetch and compile.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import sys
import types
import typing
from pathlib import Path

from videogen.errors import InputError, VideogenError, exit_on_user_error

log = logging.getLogger("videogen.cli")


# ----------------------------------------------------------------------------------------------------------- flags
class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong, where to look) and exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


class _LazyParser(_Parser):
    """A command whose flags are added on first use (parse or help), so that building the whole parser, as every
    command does, does not import what only this command needs."""

    populate: typing.Callable[[argparse.ArgumentParser], None] | None = None

    def _ensure_populated(self) -> None:
        populate, self.populate = self.populate, None
        if populate:
            populate(self)
            _state_defaults(self)

    def parse_known_args(self, args=None, namespace=None):
        self._ensure_populated()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._ensure_populated()
        return super().format_help()

    def format_usage(self) -> str:
        self._ensure_populated()
        return super().format_usage()


def _flag_names(name: str) -> list[str]:
    dashed = "--" + name.replace("_", "-")
    underscored = "--" + name
    return [dashed] if dashed == underscored else [dashed, underscored]


def _int_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 1,5,10, got {text!r}") from None


def _field_type(settings_cls, f: dataclasses.Field):
    kind = typing.get_type_hints(settings_cls)[f.name]
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    return kind


def add_field_flag(parser: argparse.ArgumentParser, settings_cls, f: dataclasses.Field, default=dataclasses.MISSING,
                   help_text: str | None = None) -> None:
    """Add the flag of one settings field: type, default and help from the field unless given here. A field without
    a default is a required flag."""
    if default is dataclasses.MISSING:
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
    if help_text is None:
        help_text = f.metadata.get("help", "") + (" (default: %(default)s)" if default is not dataclasses.MISSING
                                                  else "")
    options: dict = {"dest": f.name, "help": help_text}
    if default is dataclasses.MISSING:
        options["required"] = True
    else:
        options["default"] = default
    kind = _field_type(settings_cls, f)
    if kind is bool:
        options["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(kind) is tuple:
        options.update(type=_int_tuple, metavar="N,N,...")
    else:
        options["type"] = kind if kind in (int, float, str) else str
    parser.add_argument(*_flag_names(f.name), **options)


def add_settings_args(parser: argparse.ArgumentParser, settings_cls, skip: tuple[str, ...] = (),
                      defaults: dict | None = None) -> None:
    """Add one flag per field of a settings dataclass (type, default and help from the field)."""
    for f in dataclasses.fields(settings_cls):
        if f.name in skip or f.name.startswith("_"):
            continue
        add_field_flag(parser, settings_cls, f, (defaults or {}).get(f.name, dataclasses.MISSING))


def settings_from_args(settings_cls, args: argparse.Namespace):
    names = {f.name for f in dataclasses.fields(settings_cls)}
    return settings_cls(**{k: v for k, v in vars(args).items() if k in names})


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
            add_field_flag(parser, settings_cls, f, default=None, help_text=(
                f"{f.metadata['help']} (default: locally, {f.metadata['local']}; on a cluster, {f.default or 'empty'})"))
        elif "runner" in f.metadata:
            add_field_flag(parser, settings_cls, f, default=None,
                           help_text=f"{f.metadata['help']} (default: {f.metadata['runner']})")
        else:
            add_field_flag(parser, settings_cls, f)
    parser.set_defaults(pipeline_parameters=tuple(names))


def _add_storage_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--s3-endpoint", "--s3_endpoint", dest="s3_endpoint", default=None,
                        help="S3/MinIO endpoint URL for s3:// and minio:// paths (http or https decides TLS; "
                             "default: $AWS_ENDPOINT_URL_S3 or $AWS_ENDPOINT_URL). Credentials come from "
                             "$AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY")


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
    _add_storage_flag(parser)


def _add_run_commands(sub) -> None:
    for name, help_text, func in (
            ("run", "run the whole pipeline: locally through kfp.local, or on a cluster with --host", cmd_run),
            ("submit", "submit the pipeline to a Kubeflow cluster (same as run --host)", cmd_submit)):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.populate = _populate_run
        p.set_defaults(func=func)


def _flag(*names: str, **options) -> tuple:
    return names, options


def _add_stage_command(sub, name: str, help_text: str, settings_cls, func, flags: list, storage: bool = True):
    """A stage command: its own flags (``_flag`` tuples; a list of them is a required either-or group), then one flag
    per settings field."""
    p = sub.add_parser(name, help=help_text)
    for entry in flags:
        group = p.add_mutually_exclusive_group(required=True) if isinstance(entry, list) else p
        for names, options in entry if isinstance(entry, list) else [entry]:
            group.add_argument(*names, **options)
    add_settings_args(p, settings_cls)
    if storage:
        _add_storage_flag(p)
    p.set_defaults(func=func)


def _add_stage_commands(sub) -> None:
    from videogen import dataset, evaluate, generate, train

    _add_stage_command(sub, "prepare", "video -> dataset dir (frames.npy + dataset.json)", dataset.PrepareSettings,
                       cmd_prepare, [
        _flag("--video", required=True, help="a path, s3:// / minio:// URI or http(s) URL"),
        _flag("--output", required=True, help="dataset directory to create"),
        _flag("--export-ab", "--export_ab", dest="export_ab", default=None,
              help="also write pix2pix-tensorflow's A|B paired PNG folders (train/, val/) here")])
    _add_stage_command(sub, "train", "dataset dir -> model dir (generator.keras + model.json)", train.TrainSettings,
                       cmd_train, [
        _flag("--dataset", required=True, help="dataset directory made by `videogen prepare`"),
        _flag("--output", required=True, help="model directory (checkpoints/ inside it resume a stopped run)"),
        _flag("--checkpoint-dir", "--checkpoint_dir", dest="checkpoint_dir", default=None,
              help="checkpoints here instead of OUTPUT/checkpoints (a path or s3:// URI)")])
    _add_stage_command(sub, "generate", "model dir + start frame -> mp4", generate.GenerateSettings, cmd_generate, [
        _flag("--model", required=True, help="model directory made by `videogen train`"),
        _flag("--output", required=True, help="mp4 to write, a path or s3:// / minio:// URI (with --num-videos K > 1: "
                                              "NAME.mp4, NAME_1.mp4, ...)"),
        [_flag("--dataset", default=None, help="start from this dataset's start_frame"),
         _flag("--start-image", "--start_image", dest="start_image", default=None,
               help="start from this image (PNG/JPEG; center-cropped and scaled to the model's size)")],
        _flag("--frames-dir", "--frames_dir", dest="frames_dir", default=None,
              help="also keep the raw generated frames (frames.npy + generation.json) in this directory")])
    _add_stage_command(sub, "evaluate", "score a model against the copy-last-frame baseline; write the report",
                       evaluate.EvaluateSettings, cmd_evaluate, [
        _flag("--dataset", required=True, help="dataset directory"),
        _flag("--model", required=True, help="model directory"),
        _flag("--generated", default=None, help="generated frames directory (for the long-rollout health check)"),
        _flag("--output", default=None, help="directory for metrics.json, report.html, summary.md (default: the "
                                             "model directory)")], storage=False)


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
    _add_storage_flag(p)
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


def _add_tensorboard(sub) -> None:
    p = sub.add_parser("tensorboard", help="serve a model's TensorBoard logs (losses, images/s, sample images)")
    p.add_argument("--model", required=True,
                   help="model directory or its s3:// / minio:// URI: its logs/ is served (a directory without logs/: "
                        "every event file below it, each folder a run)")
    p.add_argument("--port", type=int, default=6006, help="port (default: %(default)s; 0: any free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; 0.0.0.0: all)")
    _add_storage_flag(p)
    p.set_defaults(func=cmd_tensorboard)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="videogen", description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_LazyParser)
    for add_command in (_add_run_commands, _add_stage_commands, _add_fetch_and_upload, _add_compile,
                        _add_tensorboard):
        add_command(sub)
    for command_parser in sub.choices.values():
        _state_defaults(command_parser)
    return parser


def _state_defaults(parser: argparse.ArgumentParser) -> None:
    """Every optional flag's help says its default: the settings' help already has "(default: X)"; flags without a
    value to show say what leaving them out means."""
    for action in parser._actions:
        if not action.option_strings or action.required or isinstance(action, argparse._HelpAction):
            continue
        text = action.help or ""
        if "default" in text:
            continue
        if isinstance(action, argparse._StoreTrueAction):
            action.help = f"{text} (default: off)"
        elif action.default is None:
            action.help = f"{text} (default: not set)"
        else:
            action.help = f"{text} (default: %(default)s)"


# --------------------------------------------------------------------------------------------------------- commands
def _apply_storage_flag(args) -> None:
    if getattr(args, "s3_endpoint", None):
        # The stages (and kfp.local's task subprocesses) read the standard variable.
        os.environ["AWS_ENDPOINT_URL"] = args.s3_endpoint


def _run_arguments(args) -> dict:
    """The pipeline parameters of a run; the ones left unset (output_root, checkpoint_root, resume_key) get the
    runner's default."""
    values = {name: getattr(args, name) for name in args.pipeline_parameters}
    return {name: value for name, value in values.items() if value is not None}


def _preflight_settings(args) -> None:
    """Refuse a settings value the stages would refuse, before anything starts, with the stage's own message."""
    from videogen import runs, train

    for settings_cls in runs.stage_settings_classes()[1:]:
        settings = settings_from_args(settings_cls, args)
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
    _apply_storage_flag(args)
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
    _apply_storage_flag(args)
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

    from pipeline.kubeflow_runner import fetch_result
    from videogen import runs, storage

    output_root = arguments.get("output_root") or runs.parameter_field("output_root")[1].default
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


def cmd_prepare(args) -> int:
    import tempfile

    from videogen import dataset, storage

    _apply_storage_flag(args)
    settings = settings_from_args(dataset.PrepareSettings, args)
    with tempfile.TemporaryDirectory() as tmp:
        video = storage.fetch(args.video, Path(tmp) / "input-video") if storage.is_remote(args.video) else Path(
            args.video)
        info = dataset.prepare(video, Path(args.output), settings,
                               export_ab=Path(args.export_ab) if args.export_ab else None)
    print(f"dataset: {args.output} ({info['num_frames']} frames of {info['image_size']} px, "
          f"start frame {info['start_frame']})")
    return 0


def cmd_train(args) -> int:
    from videogen import train

    _apply_storage_flag(args)
    info = train.train(Path(args.dataset), Path(args.output), settings_from_args(train.TrainSettings, args),
                       checkpoint_dir=args.checkpoint_dir)
    print(f"model: {args.output} ({info['steps']} steps)")
    return 0


def video_names(output: str, num_videos: int) -> list[str]:
    """The mp4 names ``videogen generate`` writes: OUTPUT for one video; OUTPUT, NAME_1.mp4, ... for K videos."""
    if num_videos == 1:
        return [output]
    stem, dot, suffix = output.rpartition(".")
    base, ext = (stem, dot + suffix) if dot and "/" not in suffix else (output, "")
    return [output] + [f"{base}_{i}{ext}" for i in range(1, num_videos)]


def cmd_generate(args) -> int:
    import tempfile

    from videogen import encode, generate, storage

    _apply_storage_flag(args)
    settings = settings_from_args(generate.GenerateSettings, args)
    with tempfile.TemporaryDirectory() as tmp:
        frames_dir = Path(args.frames_dir) if args.frames_dir else Path(tmp) / "generated"
        info = generate.generate(Path(args.model), frames_dir, settings,
                                 dataset_dir=Path(args.dataset) if args.dataset else None,
                                 start_image=Path(args.start_image) if args.start_image else None)
        outputs = video_names(args.output, settings.num_videos)
        for index, output in enumerate(outputs):
            if storage.is_remote(output):
                local = Path(tmp) / f"video_{index}.mp4"
                encode.encode(frames_dir, local, video_index=index)
                storage.put(local, output)
            else:
                encode.encode(frames_dir, Path(output), video_index=index)
    print(f"video: {', '.join(outputs)} ({info['frames']} frames, {info['frames_per_s'] or 0:.1f} frames/s "
          f"on {info['device']})")
    return 0


def cmd_evaluate(args) -> int:
    from videogen import evaluate

    output = Path(args.output) if args.output else Path(args.model)
    scalars = evaluate.evaluate(Path(args.dataset), Path(args.model), output,
                                settings_from_args(evaluate.EvaluateSettings, args),
                                generated_dir=Path(args.generated) if args.generated else None)
    for name in sorted(scalars):
        print(f"{name}: {scalars[name]:.4g}")
    print(f"report: {output / 'report.html'}")
    return 0


def cmd_fetch(args) -> int:
    from pipeline.kubeflow_runner import fetch_result

    _apply_storage_flag(args)
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


def cmd_tensorboard(args) -> int:
    import subprocess
    import tempfile

    from videogen.train import monitor

    _apply_storage_flag(args)
    monitor.require_tensorboard()
    with tempfile.TemporaryDirectory(prefix="videogen-tensorboard-") as scratch:  # an S3 model's logs, while served
        logdir = monitor.tensorboard_logdir(args.model, Path(scratch))
        log.info("TensorBoard on %s; Ctrl-C stops it", logdir)
        try:
            return subprocess.call(monitor.tensorboard_argv(logdir, args.host, args.port))
        except KeyboardInterrupt:  # subprocess.call has stopped TensorBoard
            return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``videogen`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.DEBUG if "-v" in argv or "--verbose" in argv else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with exit_on_user_error():
        parser = build_parser()
        args = parser.parse_args(argv)
        return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
