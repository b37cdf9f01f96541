"""Component: Dataset -> Model (generator.keras + model.json), checkpoints mirrored under the run id."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components._base import DEFAULT_IMAGE


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def train_model(dataset: Input[Dataset], model: Output[Model], run_id: str, checkpoint_root: str, resume_key: str,
                max_epoch: int, max_steps: int, batch_size: int, l1_weight: float, gan_weight: float, ngf: int,
                ndf: int, context_frames: int, refine_rounds: int, checkpoint_every: int, seed: int, train_nodes: int):
    """Train pix2pix to predict frame t+1 from frame t: here, or with ``train_nodes > 1`` on that many nodes through
    a Kubeflow Trainer TrainJob that this step launches and waits for (videogen.trainjob).

    Checkpoints live at ``{checkpoint_root}/{resume_key or run_id}/train``, outside the task's outputs, so a retried
    task (a fresh pod with the same run id), or a new run with the same ``resume_key``, resumes instead of starting
    over.
    """
    from pathlib import Path

    from videogen import runs
    from videogen import train as stage
    from videogen.errors import exit_on_user_error

    settings = stage.TrainSettings(max_epoch=max_epoch, max_steps=max_steps, batch_size=batch_size,
                                   l1_weight=l1_weight, gan_weight=gan_weight, ngf=ngf, ndf=ndf,
                                   context_frames=context_frames, refine_rounds=refine_rounds,
                                   checkpoint_every=checkpoint_every, seed=seed, train_nodes=train_nodes)
    checkpoint_dir = runs.checkpoint_uri(checkpoint_root, run_id, resume_key, "train")
    with exit_on_user_error():
        if train_nodes > 1:
            from videogen import trainjob

            info = trainjob.train_on_nodes(dataset.uri, Path(model.path), settings, checkpoint_dir)
        else:
            info = stage.train(Path(dataset.path), Path(model.path), settings, checkpoint_dir=checkpoint_dir)
    model.metadata.update({"framework": "tensorflow", "steps": info["steps"], "image_size": info["image_size"],
                           "context_frames": info["context_frames"]})
