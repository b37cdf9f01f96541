"""Training on several nodes: the Kubeflow Trainer ``TrainJob`` the train step launches, and what each node runs.

With ``train_nodes > 1`` the train step does not train in its own pod. :func:`train_on_nodes` creates a ``TrainJob``
(``trainer.kubeflow.org/v1alpha1``, Kubeflow Trainer v2.2) on the ClusterTrainingRuntime ``videogen-tensorflow``
that ``make deploy`` installs (manifests/trainer), follows its status, and when it completes downloads the model the
nodes left in object storage into the step's model dir, where the next steps read it. A failed job becomes one line
(the workers' own last error line where there is one); a cancelled step (SIGTERM, as KFP sends) deletes the job.

Each node runs :func:`run_worker` (``python -m videogen.trainjob``): it derives ``TF_CONFIG`` from JobSet's stable
pod hostnames, downloads the dataset from object storage, trains with ``MultiWorkerMirroredStrategy``
(``videogen.train`` with ``devices=multiworker``), checkpoints to the same checkpoint dir as a one-node run (so a
restarted job, or a retried step, resumes), and the chief (worker 0) uploads the model dir.

Reads: the dataset dir at its object-storage URI. Writes: the TrainJob; checkpoints under the checkpoint dir and the
model under ``{checkpoint dir}/model``; then the local model dir. The ``kubernetes`` client is imported lazily.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videogen import artifacts, storage
from videogen.errors import VideogenError

logger = logging.getLogger("videogen.trainjob")

GROUP, VERSION, PLURAL, KIND = "trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob"
RUNTIME = "videogen-tensorflow"
"""The ClusterTrainingRuntime of manifests/trainer (a JobSet with one replicated Job, ``node``)."""
NODE_JOB = "node"
"""Trainer's name for the trainer step's replicated Job and its container (pkg/runtime/framework/plugins/jobset)."""
WORKER_PORT = 2222
LAUNCH_ENV = "VIDEOGEN_TRAINJOB"  # in the train step's pod: the LaunchConfig as JSON (compiled in from ClusterConfig)
WORK_ENV = "VIDEOGEN_TRAINJOB_WORK"  # in each node's pod: the work as JSON (dataset, model, checkpoints, settings)
NAME_ENV, NODES_ENV = "VIDEOGEN_TRAINJOB_NAME", "VIDEOGEN_TRAINJOB_NODES"
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
MODEL_DIR = "model"
# Non-secret object-store settings of the step's pod that the nodes get too (keys come from the runtime's Secret).
_FORWARDED_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION")
_DELETE_TIMEOUT_S = 600
_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class TrainJobError(VideogenError):
    """The TrainJob could not be created or did not complete."""


@dataclass(frozen=True)
class LaunchConfig:
    """How the TrainJob's nodes run: fixed when the pipeline is compiled (``ClusterConfig.trainjob_launch``)."""

    image: str
    runtime: str = RUNTIME
    gpus_per_node: int = 0
    gpu_resource: str = "nvidia.com/gpu"
    resources: dict = field(default_factory=dict)  # cpu_request, cpu_limit, memory_request, memory_limit
    node_selector: dict = field(default_factory=dict)
    toleration_key: str = ""
    poll_s: float = 10.0

    @classmethod
    def from_env(cls, env: dict | None = None) -> LaunchConfig:
        env = os.environ if env is None else env
        if not env.get(LAUNCH_ENV):
            raise TrainJobError(f"train_nodes > 1 runs only in the compiled pipeline on a cluster ({LAUNCH_ENV} is "
                                f"not set): set train_nodes 1 to train here")
        return cls(**json.loads(env[LAUNCH_ENV]))


def trainjob_name(checkpoint_dir: str) -> str:
    """A stable, DNS-safe name per checkpoint dir: a retried step (same run, same checkpoints) finds its job again.
    Short, because JobSet's pod hostnames ``<name>-node-0-<i>`` must fit a 63-character DNS label."""
    return "videogen-" + hashlib.sha256(str(checkpoint_dir).encode()).hexdigest()[:12]


def worker_hosts(name: str, num_nodes: int, port: int = WORKER_PORT, subdomain: str | None = None) -> list[str]:
    """``host:port`` of each node: JobSet's stable pod hostnames ``<jobset>-<replicatedJob>-<jobIndex>-<podIndex>.
    <subdomain>``. Trainer names the JobSet after the TrainJob, runs the ``node`` Job once (job index 0) with
    ``numNodes`` pods, and the subdomain defaults to the JobSet's name (Trainer v2.2.0,
    pkg/runtime/framework/plugins/jobset/jobset.go, which builds the same endpoints)."""
    subdomain = subdomain or name
    return [f"{name}-{NODE_JOB}-0-{index}.{subdomain}:{port}" for index in range(num_nodes)]


def tf_config(name: str, num_nodes: int, index: int, port: int = WORKER_PORT) -> dict:
    """The ``TF_CONFIG`` of node ``index`` (its Indexed Job completion index): every node a ``worker``, worker 0 the
    chief (https://www.tensorflow.org/guide/distributed_training#setting_up_the_tf_config_environment_variable)."""
    if not 0 <= index < num_nodes:
        raise TrainJobError(f"node index {index} is outside 0..{num_nodes - 1}: the TrainJob's Job must be Indexed")
    return {"cluster": {"worker": worker_hosts(name, num_nodes, port)}, "task": {"type": "worker", "index": index}}


def is_chief(config: dict) -> bool:
    """Worker 0 of a cluster without a ``chief`` task (or the chief task itself) writes checkpoints and the model."""
    task = config.get("task", {})
    if "chief" in config.get("cluster", {}):
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def _runtime_patch(config: LaunchConfig) -> list[dict]:
    """Node selector and GPU toleration of the node pods, as a TrainJob runtime patch (Trainer v2.2 ``runtimePatches``)."""
    pod: dict[str, Any] = {}
    if config.node_selector:
        pod["nodeSelector"] = dict(config.node_selector)
    if config.toleration_key and config.gpus_per_node:
        pod["tolerations"] = [{"key": config.toleration_key, "operator": "Exists", "effect": "NoSchedule"}]
    if not pod:
        return []
    job = {"name": NODE_JOB, "template": {"spec": {"template": {"spec": pod}}}}
    return [{"manager": "videogen", "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [job]}}}}]


def _resources_per_node(config: LaunchConfig) -> dict:
    r = config.resources
    requests = {k: v for k, v in (("cpu", r.get("cpu_request")), ("memory", r.get("memory_request"))) if v}
    limits = {k: v for k, v in (("cpu", r.get("cpu_limit")), ("memory", r.get("memory_limit"))) if v}
    if config.gpus_per_node:
        requests[config.gpu_resource] = limits[config.gpu_resource] = str(config.gpus_per_node)
    return {key: value for key, value in (("requests", requests), ("limits", limits)) if value}


def trainjob_manifest(name: str, num_nodes: int, work: dict, config: LaunchConfig,
                      env: dict | None = None) -> dict:
    """The TrainJob: ``num_nodes`` nodes of ``config.image`` running :func:`run_worker` on ``work``; the non-secret
    object-store settings of ``env`` (default: this process's) are passed on, the keys come from the runtime."""
    env = os.environ if env is None else env
    variables = [{"name": WORK_ENV, "value": json.dumps(work, sort_keys=True)},
                 {"name": NAME_ENV, "value": name}, {"name": NODES_ENV, "value": str(num_nodes)}]
    variables += [{"name": key, "value": env[key]} for key in _FORWARDED_ENV if env.get(key)]
    trainer = {"image": config.image, "command": ["python", "-m", "videogen.trainjob"], "numNodes": num_nodes,
               "env": variables}
    resources = _resources_per_node(config)
    if resources:
        trainer["resourcesPerNode"] = resources
    spec: dict[str, Any] = {"runtimeRef": {"name": config.runtime, "apiGroup": GROUP, "kind": "ClusterTrainingRuntime"},
                            "trainer": trainer}
    patches = _runtime_patch(config)
    if patches:
        spec["runtimePatches"] = patches
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
            "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "videogen"}}, "spec": spec}


def condition(trainjob: dict, kind: str) -> dict | None:
    """The ``Complete`` or ``Failed`` condition of a TrainJob when it is true (Trainer copies them from the JobSet)."""
    for cond in (trainjob.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def _last_error_line(message: str) -> str:
    """The line of a container's termination message (its log tail, by FallbackToLogsOnError) that says why."""
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("videogen") and "error:" in line:
            return line
    return lines[-1] if lines else ""


def worker_failure(pods: list[dict]) -> str:
    """``"<pod>: <last error line>"`` of the first node whose container exited non-zero, else ``""``."""
    for pod in sorted(pods, key=lambda p: p.get("metadata", {}).get("name", "")):
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            for state in (status.get("state") or {}, status.get("lastState") or {}):
                terminated = state.get("terminated") or {}
                if terminated.get("exitCode"):
                    detail = _last_error_line(terminated.get("message", "")) or terminated.get("reason", "")
                    return f"{pod['metadata']['name']}: {detail or 'exit code ' + str(terminated['exitCode'])}"
    return ""


def _api_message(error: Any) -> str:
    """The ``message`` of a Kubernetes API error body (a Status object), else its reason."""
    try:
        return str(json.loads(error.body).get("message") or error.reason)
    except (TypeError, ValueError, AttributeError):
        return str(getattr(error, "reason", error))


class TrainJobs:
    """Create, read and delete TrainJobs in one namespace with the ``kubernetes`` client's CustomObjectsApi."""

    def __init__(self, namespace: str, api_client: Any = None):
        from kubernetes import client

        self.namespace = namespace
        self.api_client = api_client or _load_api_client()
        self.custom = client.CustomObjectsApi(self.api_client)
        self.core = client.CoreV1Api(self.api_client)

    def _call(self, what: str, function, *args, **kwargs) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return function(*args, **kwargs)
        except ApiException as error:
            raise _explain(what, self.namespace, error) from None

    def create(self, body: dict) -> dict:
        return self._call("create", self.custom.create_namespaced_custom_object, GROUP, VERSION, self.namespace,
                          PLURAL, body)

    def get(self, name: str) -> dict | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise _explain("read", self.namespace, error) from None

    def delete(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:  # Foreground: the JobSet and its pods go first, so a new job of the same name can start cleanly
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name,
                                                        propagation_policy="Foreground")
        except ApiException as error:
            if error.status != 404:
                raise _explain("delete", self.namespace, error) from None

    def pods(self, name: str) -> list[dict]:
        pods = self._call("list the pods of", self.core.list_namespaced_pod, self.namespace,
                          label_selector=f"{JOBSET_NAME_LABEL}={name}")
        return self.api_client.sanitize_for_serialization(pods).get("items") or []


def _explain(what: str, namespace: str, error: Any) -> TrainJobError:
    message = _api_message(error)
    if error.status == 404 and what == "create":
        return TrainJobError(f"cannot create a TrainJob in namespace {namespace}: the cluster has no "
                             f"{PLURAL}.{GROUP} API ({message}): install Kubeflow Trainer v2.2 (docs/cluster.md) "
                             f"or set train_nodes 1")
    if error.status in (401, 403):
        return TrainJobError(f"not allowed to {what} TrainJobs in namespace {namespace} ({message}): deploy the "
                             f"manifests (make deploy) and run as the service account videogen-pipeline-runner")
    return TrainJobError(f"the cluster refused to {what} the TrainJob in namespace {namespace}: {message}"
                         + (": install the runtime with make deploy (docs/cluster.md)" if "untime" in message else ""))


def _load_api_client() -> Any:
    """An API client from the pod's service account, else from the kubeconfig."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as error:
            raise TrainJobError(f"train_nodes > 1 needs the Kubernetes API (no in-cluster service account and no "
                                f"kubeconfig: {error}): run the pipeline on a cluster, or set train_nodes 1") from None
    return client.ApiClient()


def current_namespace(env: dict | None = None) -> str:
    """The namespace of this pod (its service account's), or ``VIDEOGEN_TRAINJOB_NAMESPACE``."""
    env = os.environ if env is None else env
    if env.get("VIDEOGEN_TRAINJOB_NAMESPACE"):
        return env["VIDEOGEN_TRAINJOB_NAMESPACE"]
    try:
        return _SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    except OSError:
        raise TrainJobError("cannot tell which namespace to start the TrainJob in (no service account namespace "
                            "file): set VIDEOGEN_TRAINJOB_NAMESPACE") from None


class _Cancelled(BaseException):
    """SIGTERM reached the train step (KFP cancels a run, or its timeout, by terminating the pod)."""


def _raise_cancelled(signum, frame):
    raise _Cancelled()


def _start_or_adopt(jobs: TrainJobs, body: dict, model_uri: str) -> None:
    """Create the TrainJob; a job of that name that is still running (the step was retried in a fresh pod) is
    followed instead, a finished one is deleted and replaced."""
    name = body["metadata"]["name"]
    existing = jobs.get(name)
    if existing is not None and not (condition(existing, "Complete") or condition(existing, "Failed")):
        logger.info("TrainJob %s/%s is already running: following it", jobs.namespace, name)
        return
    if existing is not None:
        jobs.delete(name)
        deadline = time.monotonic() + _DELETE_TIMEOUT_S
        while jobs.get(name) is not None:  # Foreground deletion: wait until its pods are gone
            if time.monotonic() > deadline:
                raise TrainJobError(f"the finished TrainJob {jobs.namespace}/{name} is still being deleted after "
                                    f"{_DELETE_TIMEOUT_S} s: check its pods, then retry the run")
            time.sleep(1)
    for stale in storage.list_dir(model_uri):  # a model left by an earlier job must not mix with the new one
        storage.remove(storage.join_uri(model_uri, stale))
    jobs.create(body)
    logger.info("created TrainJob %s/%s: %d nodes of %s on runtime %s", jobs.namespace, name,
                body["spec"]["trainer"]["numNodes"], body["spec"]["trainer"]["image"], body["spec"]["runtimeRef"]["name"])


def wait_for(jobs: TrainJobs, name: str, poll_s: float = 10.0) -> dict:
    """Poll the TrainJob until it completes (returned) or fails (TrainJobError, one line); log its jobs' progress."""
    seen = None
    while True:
        job = jobs.get(name)
        if job is None:
            raise TrainJobError(f"TrainJob {jobs.namespace}/{name} was deleted before it finished: start the run "
                                f"again (it resumes from the last checkpoint)")
        if condition(job, "Complete"):
            return job
        failed = condition(job, "Failed")
        if failed:
            worker = worker_failure(jobs.pods(name))
            raise TrainJobError(f"TrainJob {jobs.namespace}/{name} failed ({failed.get('reason') or 'Failed'}: "
                                f"{failed.get('message') or 'no message'})" + (f"; {worker}" if worker else "")
                                + f"; see kubectl -n {jobs.namespace} describe trainjob {name}")
        progress = (job.get("status") or {}).get("jobsStatus")
        if progress != seen:
            logger.info("TrainJob %s: %s", name, json.dumps(progress) if progress else "waiting for its pods")
            seen = progress
        time.sleep(poll_s)


def train_on_nodes(dataset_uri: str, model_dir: Path, settings: Any, checkpoint_dir: str, *,
                   jobs: TrainJobs | None = None, launch: LaunchConfig | None = None) -> dict:
    """Train on ``settings.train_nodes`` nodes through a TrainJob and put the model in ``model_dir``.

    Args:
        dataset_uri: the dataset dir's object-storage URI (the prepare step's artifact).
        model_dir: local model dir to fill (the train step's output artifact).
        settings: the train stage's ``TrainSettings``.
        checkpoint_dir: object-storage URI of the run's checkpoints (the same as on one node).
        jobs: the TrainJob API (default: this pod's namespace, in-cluster credentials).
        launch: image, runtime, resources (default: :meth:`LaunchConfig.from_env`).

    Returns:
        The content of ``model.json``.

    Raises:
        TrainJobError: no cluster or Trainer, the job was refused, or it failed (one line).
    """
    from videogen.train.settings import validate_settings

    validate_settings(settings)
    launch = launch or LaunchConfig.from_env()
    if not storage.is_remote(checkpoint_dir) or not storage.is_remote(dataset_uri):
        raise TrainJobError(f"train_nodes > 1 needs the dataset and the checkpoints in object storage (got "
                            f"{dataset_uri} and {checkpoint_dir}): set checkpoint_root to an s3:// or minio:// URI")
    jobs = jobs or TrainJobs(current_namespace())
    name, model_uri = trainjob_name(checkpoint_dir), storage.join_uri(checkpoint_dir, MODEL_DIR)
    work = {"dataset": dataset_uri, "model": model_uri, "checkpoint_dir": checkpoint_dir,
            "settings": {**dataclasses.asdict(settings), "devices": "multiworker"}}
    body = trainjob_manifest(name, settings.train_nodes, work, launch)
    previous = signal.signal(signal.SIGTERM, _raise_cancelled)
    try:
        _start_or_adopt(jobs, body, model_uri)
        wait_for(jobs, name, launch.poll_s)
    except (_Cancelled, KeyboardInterrupt):
        logger.warning("cancelled: deleting TrainJob %s/%s", jobs.namespace, name)
        jobs.delete(name)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    model_dir = Path(model_dir)
    storage.download_dir(model_uri, model_dir)
    return json.loads((model_dir / artifacts.MODEL_INFO_FILE).read_text())


def run_worker(env: dict | None = None) -> dict:
    """One node of the TrainJob: ``TF_CONFIG`` (from JobSet's hostnames unless already set), the dataset from object
    storage, ``videogen.train`` under MultiWorkerMirroredStrategy, and (chief only) the model dir uploaded."""
    from videogen.train import TrainSettings, train

    env = os.environ if env is None else env
    work = json.loads(env[WORK_ENV])
    if not env.get("TF_CONFIG"):
        config = tf_config(env[NAME_ENV], int(env[NODES_ENV]), int(env.get("JOB_COMPLETION_INDEX", "-1")))
        os.environ["TF_CONFIG"] = json.dumps(config)
    chief = is_chief(json.loads(os.environ["TF_CONFIG"]))
    settings = TrainSettings(**{**work["settings"], "devices": "multiworker"})
    with tempfile.TemporaryDirectory(prefix="videogen-node-") as scratch:
        dataset_dir, model_dir = Path(scratch, "dataset"), Path(scratch, MODEL_DIR)
        storage.download_dir(work["dataset"], dataset_dir)
        info = train(dataset_dir, model_dir, settings, checkpoint_dir=work["checkpoint_dir"])
        if chief:
            storage.upload_dir(model_dir, work["model"])
    return info


def main() -> None:
    """``python -m videogen.trainjob``: what each node of the TrainJob runs."""
    from videogen.errors import exit_on_user_error

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with exit_on_user_error():
        run_worker()


if __name__ == "__main__":
    main()
