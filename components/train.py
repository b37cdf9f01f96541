"""Component: Dataset -> Model (generator.keras + model.json), checkpoints mirrored under the run id."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components._base import DEFAULT_IMAGE


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def train_model(dataset: Input[Dataset], model: Output[Model], run_id: str, checkpoint_root: str, resume_key: str,
                max_epoch: int, max_steps: int, batch_size: int, l1_weight: float, gan_weight: float, ngf: int,
                ndf: int, context_frames: int, refine_rounds: int, checkpoint_every: int, seed: int, train_nodes: int):
    """Train pix2pix to predict frame t+1 from frame t, in this step (``train_nodes`` 1; :func:`launch_trainjob` trains
    on several nodes).

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
        info = stage.train(Path(dataset.path), Path(model.path), settings, checkpoint_dir=checkpoint_dir)
    model.metadata.update({"framework": "tensorflow", "steps": info["steps"], "image_size": info["image_size"],
                           "context_frames": info["context_frames"]})


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def launch_trainjob(dataset: Input[Dataset], model: Output[Model], run_id: str, checkpoint_root: str,
                    resume_key: str, max_epoch: int, max_steps: int, batch_size: int, l1_weight: float,
                    gan_weight: float, ngf: int, ndf: int, context_frames: int, refine_rounds: int,
                    checkpoint_every: int, seed: int, train_nodes: int):
    """Train on ``train_nodes`` nodes: create a Kubeflow Trainer TrainJob, follow it to its end and fetch its model
    (videogen.trainjob). The GPUs are the TrainJob's; this step only waits, so it runs on a CPU node.

    The same parameters and checkpoint place as :func:`train_model`, so a retried step follows the running TrainJob.
    """
    from pathlib import Path

    from videogen import runs, trainjob
    from videogen import train as stage
    from videogen.errors import exit_on_user_error

    settings = stage.TrainSettings(max_epoch=max_epoch, max_steps=max_steps, batch_size=batch_size,
                                   l1_weight=l1_weight, gan_weight=gan_weight, ngf=ngf, ndf=ndf,
                                   context_frames=context_frames, refine_rounds=refine_rounds,
                                   checkpoint_every=checkpoint_every, seed=seed, train_nodes=train_nodes)
    with exit_on_user_error():
        info = trainjob.train_on_nodes(dataset.uri, Path(model.path), settings,
                                       runs.checkpoint_uri(checkpoint_root, run_id, resume_key, "train"))
    model.metadata.update({"framework": "tensorflow", "steps": info["steps"], "image_size": info["image_size"],
                           "context_frames": info["context_frames"], "train_nodes": train_nodes})
