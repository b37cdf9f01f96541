"""Component: Dataset + Model + generated frames -> Metrics, HTML report and Markdown summary for the Kubeflow UI."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components._base import DEFAULT_IMAGE


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def evaluate_model(dataset: Input[Dataset], model: Input[Model], generated: Input[Artifact], metrics: Output[Metrics],
                   report: Output[HTML], summary: Output[Markdown], run_id: str, output_root: str,
                   rollout_steps: str = "1,5,10,20", seed: int = 0):
    """Score one-step and rollout quality against the copy-last-frame baseline and check the generated video's health.

    The report files are also published beside the video under ``{output_root}/{run_id}/``.
    """
    import shutil
    import tempfile
    from pathlib import Path

    from videogen import evaluate as stage
    from videogen import storage
    from videogen.errors import exit_on_user_error

    steps = tuple(int(k) for k in rollout_steps.split(",") if k.strip())
    settings = stage.EvaluateSettings(rollout_steps=steps, seed=seed)
    with exit_on_user_error(), tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        scalars = stage.evaluate(Path(dataset.path), Path(model.path), out, settings, generated_dir=Path(generated.path))
        shutil.copyfile(out / "report.html", report.path)
        shutil.copyfile(out / "summary.md", summary.path)
        for name in ("report.html", "summary.md", "metrics.json"):
            storage.put(out / name, f"{output_root.rstrip('/')}/{run_id}/{name}")
    for name, value in scalars.items():
        metrics.log_metric(name, value)
