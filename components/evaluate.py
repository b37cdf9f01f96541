"""Component: Dataset + Model + generated frames -> Metrics, HTML report and Markdown summary for the Kubeflow UI."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components._base import DEFAULT_IMAGE


@dsl.component(base_image=DEFAULT_IMAGE, install_kfp_package=False)
def evaluate_model(dataset: Input[Dataset], model: Input[Model], generated: Input[Artifact], metrics: Output[Metrics],
                   report: Output[HTML], summary: Output[Markdown], run_id: str, output_root: str, seed: int):
    """Score one-step and rollout quality against the copy-last-frame baseline and check the generated video's health.

    The report files are also published beside the video under ``{output_root}/{run_id}/``.
    """
    import shutil
    import tempfile
    from pathlib import Path

    from videogen import artifacts, runs, storage
    from videogen import evaluate as stage
    from videogen.errors import exit_on_user_error

    settings = stage.EvaluateSettings(seed=seed)
    with exit_on_user_error(), tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        scalars = stage.evaluate(Path(dataset.path), Path(model.path), out, settings, generated_dir=Path(generated.path))
        shutil.copyfile(out / artifacts.REPORT_FILE, report.path)
        shutil.copyfile(out / artifacts.SUMMARY_FILE, summary.path)
        for name in runs.REPORT_NAMES:
            storage.put(out / name, runs.publish_uri(output_root, run_id, name))
    for name, value in scalars.items():
        metrics.log_metric(name, value)
