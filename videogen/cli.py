"""The library's command line: one command per stage (prepare, train, generate, evaluate) and tensorboard.

Flags of settings are built from the settings dataclasses, so a flag, its default and its help text are the same as
the library's: a stage command takes its stage's settings. Underscore spellings (``--max_epoch``) are accepted too.
User errors print one line to stderr and exit with status 2.

The ``videogen`` console script is ``pipeline.cli``: it adds the orchestration commands (run, submit, upload, fetch,
compile) to this parser and runs the stage commands from here, so this module, like the whole library, imports
nothing from ``pipeline`` or kfp. ``python -m videogen`` runs the stage commands alone.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import types
import typing
from pathlib import Path

from videogen.errors import exit_on_user_error

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


def add_storage_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--s3-endpoint``, the object store of s3:// and minio:// paths (see :func:`apply_storage_flag`)."""
    parser.add_argument("--s3-endpoint", "--s3_endpoint", dest="s3_endpoint", default=None,
                        help="S3/MinIO endpoint URL for s3:// and minio:// paths (http or https decides TLS; "
                             "default: $AWS_ENDPOINT_URL_S3 or $AWS_ENDPOINT_URL). Credentials come from "
                             "$AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY")


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
        add_storage_flag(p)
    p.set_defaults(func=func)


def add_stage_commands(sub) -> None:
    """Add prepare, train, generate and evaluate to the subparsers ``sub``."""
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


def add_tensorboard(sub) -> None:
    """Add tensorboard to the subparsers ``sub``."""
    p = sub.add_parser("tensorboard", help="serve a model's TensorBoard logs (losses, images/s, sample images)")
    p.add_argument("--model", required=True,
                   help="model directory or its s3:// / minio:// URI: its logs/ is served (a directory without logs/: "
                        "every event file below it, each folder a run)")
    p.add_argument("--port", type=int, default=6006, help="port (default: %(default)s; 0: any free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; 0.0.0.0: all)")
    add_storage_flag(p)
    p.set_defaults(func=cmd_tensorboard)


STAGE_COMMANDS = (add_stage_commands, add_tensorboard)
"""What adds the library's commands to the parser's subcommands, in the order ``-h`` lists them."""


def build_parser(commands: typing.Sequence[typing.Callable] = STAGE_COMMANDS,
                 description: str | None = None) -> argparse.ArgumentParser:
    """The ``videogen`` parser with the commands that ``commands`` add (each takes the subparsers); the console
    script passes the orchestration commands' too. A subcommand whose ``populate`` is set adds its flags on first
    use."""
    parser = _Parser(prog="videogen", description=description or __doc__.split("\n\n")[0],
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_LazyParser)
    for add_command in commands:
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
def apply_storage_flag(args) -> None:
    """Make ``--s3-endpoint``, when given, the endpoint of every object-store access of this process."""
    if getattr(args, "s3_endpoint", None):
        # The stages (and kfp.local's task subprocesses) read the standard variable.
        os.environ["AWS_ENDPOINT_URL"] = args.s3_endpoint


def cmd_prepare(args) -> int:
    import tempfile

    from videogen import dataset, storage

    apply_storage_flag(args)
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

    apply_storage_flag(args)
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

    apply_storage_flag(args)
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


def cmd_tensorboard(args) -> int:
    import subprocess
    import tempfile

    from videogen.train import monitor

    apply_storage_flag(args)
    monitor.require_tensorboard()
    with tempfile.TemporaryDirectory(prefix="videogen-tensorboard-") as scratch:  # an S3 model's logs, while served
        logdir = monitor.tensorboard_logdir(args.model, Path(scratch))
        log.info("TensorBoard on %s; Ctrl-C stops it", logdir)
        try:
            return subprocess.call(monitor.tensorboard_argv(logdir, args.host, args.port))
        except KeyboardInterrupt:  # subprocess.call has stopped TensorBoard
            return 0


def main(argv: list[str] | None = None,
         build: typing.Callable[[], argparse.ArgumentParser] = build_parser) -> int:
    """Parse ``argv`` with the parser that ``build`` makes and run its command: one-line user errors, exit status 2.

    Args:
        argv: The arguments (default: the process's).
        build: Makes the parser; ``pipeline.cli`` passes the one with the orchestration commands.

    Returns:
        The command's exit status.
    """
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.DEBUG if "-v" in argv or "--verbose" in argv else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with exit_on_user_error():
        parser = build()
        args = parser.parse_args(argv)
        return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
