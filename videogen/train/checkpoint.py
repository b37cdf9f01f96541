"""Checkpoints of a training run: where they live, restoring the latest (with its loss history), saving, and the
mirror to object storage.

A checkpoint holds the step counter, both models and both optimizers, one copy of each variable, so a run resumes on
another number of devices. ``history.json`` beside it keeps the loss history, so a resumed run keeps its curves.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from videogen import artifacts
from videogen.errors import InputError

logger = logging.getLogger("videogen.train")

_MAX_TO_KEEP = 3


def local_checkpoint_dir(output_dir: Path, checkpoint_dir: str | None, scratch: contextlib.ExitStack,
                         shared: bool = False) -> tuple[Path, str | None]:
    """``(local dir, remote URI or None)``. None = ``output_dir/checkpoints``; a local path is used directly; an
    object-storage URI gets a temporary local copy outside the model dir (the model dir is the task's output artifact
    on a cluster, and checkpoints in it would travel with the model to every stage). ``shared`` (several worker
    processes, one checkpoint dir): a local path is mirrored like a URI, so the workers never write one directory."""
    if checkpoint_dir is None:
        return output_dir / artifacts.CHECKPOINTS_DIR, None
    from videogen import storage

    if shared or storage.is_remote(str(checkpoint_dir)):
        local = Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="videogen-checkpoints-")))
        return local, str(checkpoint_dir)
    return Path(checkpoint_dir), None


class Mirror:
    """Mirrors the local checkpoint dir to an object-storage URI through videogen.storage (imported lazily).

    Only the latest checkpoint travels: ``pull`` fetches the shards the remote ``checkpoint`` state file names (and the
    loss history), ``push`` uploads the new one, state file last, then deletes the remote shards of checkpoints the
    local manager has dropped, so the prefix holds what the manager keeps and a retry downloads one checkpoint.
    ``push=False`` (a worker other than the chief): pull only."""

    def __init__(self, uri: str | None, local_dir: Path, push: bool = True):
        self.uri, self.local_dir, self.client, self.pushes = uri, local_dir, None, push
        from videogen import storage

        if uri and storage.is_remote(uri):
            self.client = storage.make_client()  # one client for every call of the run

    def pull(self) -> None:
        if not self.uri:
            return
        from videogen import storage

        names = storage.list_dir(self.uri, client=self.client)
        if storage.CHECKPOINT_STATE_FILE not in names:
            return
        storage.download_dir(self.uri, self.local_dir, files=[storage.CHECKPOINT_STATE_FILE], client=self.client)
        import tensorflow as tf

        state = tf.train.get_checkpoint_state(str(self.local_dir))
        prefix = Path(state.model_checkpoint_path).name if state and state.model_checkpoint_path else None
        wanted = [n for n in names if prefix and n.startswith(prefix + ".")]
        wanted += [n for n in (artifacts.HISTORY_FILE,) if n in names]
        storage.download_dir(self.uri, self.local_dir, files=wanted, client=self.client)  # state file: here already
        logger.info("fetched checkpoint %s (%d files) from %s", prefix, len(wanted), self.uri)

    def push(self, latest_prefix: str, kept_prefixes: list[str]) -> None:
        if not self.uri or not self.pushes:
            return
        from videogen import storage

        prefix = Path(latest_prefix).name
        names = sorted(p.name for p in self.local_dir.iterdir() if p.name.startswith(prefix + "."))
        if (self.local_dir / artifacts.HISTORY_FILE).exists():
            names.append(artifacts.HISTORY_FILE)
        # The `checkpoint` state file names the latest checkpoint: upload it last so that a reader never sees it
        # point at shards that are not there yet.
        storage.upload_dir(self.local_dir, self.uri, files=names + [storage.CHECKPOINT_STATE_FILE], client=self.client)
        kept = {Path(p).name for p in kept_prefixes} | {prefix}
        for name in storage.list_dir(self.uri, client=self.client):
            shard_of = name.split(".", 1)[0]
            if shard_of.startswith("ckpt-") and shard_of not in kept:
                storage.remove(storage.join_uri(self.uri, name), client=self.client)


class Checkpoints:
    """The run's ``tf.train.CheckpointManager`` over the step counter, both models and both optimizers, the loss
    history saved beside it, and the remote mirror."""

    def __init__(self, local_dir: Path, mirror: Mirror, **objects: Any):
        import tensorflow as tf

        self.local_dir = local_dir
        self.step = objects["step"]
        self.checkpoint = tf.train.Checkpoint(**objects)
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(local_dir), max_to_keep=_MAX_TO_KEEP)
        self.mirror = mirror
        self.history: dict[str, Any] = {"points": [], "phase_sums": {}}

    def restore(self, total: int) -> int:
        """Restore the latest checkpoint, if any, and its loss history; returns the step to start from."""
        import tensorflow as tf

        latest = self.manager.latest_checkpoint
        if not latest:
            return 0
        try:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            raise InputError(f"checkpoint {latest} does not match these settings (image size, ngf, ndf, "
                             f"context_frames, residual, norm, dropout, ema_decay on or off): use another checkpoint dir") from error
        restored = int(self.step.numpy())
        if restored > total:
            raise InputError(f"checkpoint dir {self.local_dir} already holds {restored} steps, more than the "
                             f"{total} requested: use another checkpoint dir or ask for at least {restored}")
        history_path = self.local_dir / artifacts.HISTORY_FILE
        if history_path.exists():
            saved = json.loads(history_path.read_text())
            if int(saved.get("step", -1)) == restored:
                self.history = saved
                self.history["points"] = [p for p in saved["points"] if p["step"] <= restored]
        logger.info("resumed from step %d of %d (checkpoint %s)", restored, total, latest)
        return restored

    def save(self, at_step: int) -> None:
        self.history["step"] = at_step
        artifacts.atomic_write_text(self.local_dir / artifacts.HISTORY_FILE, json.dumps(self.history))
        path = self.manager.save(checkpoint_number=at_step)
        self.mirror.push(path, self.manager.checkpoints)

    def latest_step(self) -> int | None:
        latest = self.manager.latest_checkpoint
        return None if latest is None else int(Path(latest).name.split("-")[-1])
