"""The TrainJob of multi-node training (videogen/trainjob.py), without a cluster.

- TF_CONFIG from JobSet's pod hostnames, and the TrainJob object, checked against the Trainer v2.2.0 CRD's OpenAPI
  schema vendored in tests/schemas/kubeflow-trainer (strict: undeclared fields are errors).
- The create / follow / delete conversation with a stand-in API server on 127.0.0.1 that answers the way the
  Kubernetes API documents for custom resources (`/apis/<group>/<version>/namespaces/<ns>/<plural>[/<name>]`,
  201 on create, 404/409 with a `Status` body, DELETE with a propagation policy) and lists pods at
  `/api/v1/namespaces/<ns>/pods?labelSelector=...`, driven by the real `kubernetes` client. The stand-in validates
  each created TrainJob against the same schema (422 otherwise) and plays out a scripted status.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import urllib.parse
from http.server import ThreadingHTTPServer

import pytest

from tests.crd_schema import trainjob_errors
from tests.json_http import JSONHandler
from videogen import trainjob
from videogen.errors import VideogenError
from videogen.train import TrainSettings

NS = "team-a"
CKPT = "minio://mlpipeline/videogen-checkpoints/run-1/train"
DATASET = "minio://mlpipeline/v2/artifacts/video-generation/run-1/prepare-dataset/dataset"
LAUNCH = trainjob.LaunchConfig(
    image="registry.example.com/ml/videogen-gpu:0.1.0", gpus_per_node=2,
    resources={"cpu_request": "4", "cpu_limit": "8", "memory_request": "16Gi", "memory_limit": "32Gi"},
    node_selector={"cloud.google.com/gke-accelerator": "nvidia-tesla-v100"}, toleration_key="nvidia.com/gpu",
    poll_s=0.01)


def test_tf_config_names_jobsets_stable_pod_hostnames():
    """Node i of TrainJob NAME is pod NAME-node-0-i in subdomain NAME (Trainer runs the `node` Job once, with
    numNodes Indexed pods); every node is a worker, worker 0 the chief."""
    config = trainjob.tf_config("videogen-abc", 3, 1)
    assert config == {"cluster": {"worker": ["videogen-abc-node-0-0.videogen-abc:2222",
                                             "videogen-abc-node-0-1.videogen-abc:2222",
                                             "videogen-abc-node-0-2.videogen-abc:2222"]},
                      "task": {"type": "worker", "index": 1}}
    assert not trainjob.is_chief(config) and trainjob.is_chief(trainjob.tf_config("videogen-abc", 3, 0))
    with pytest.raises(VideogenError, match="Indexed"):
        trainjob.tf_config("videogen-abc", 3, -1)  # no JOB_COMPLETION_INDEX


def test_trainjob_name_is_stable_per_checkpoint_dir_and_leaves_room_for_pod_hostnames():
    name = trainjob.trainjob_name(CKPT)
    assert name == trainjob.trainjob_name(CKPT) != trainjob.trainjob_name(CKPT + "x")
    host = trainjob.worker_hosts(name, 1000)[-1].split(".")[0]
    assert len(host) <= 63 and name.replace("-", "").isalnum() and name[0].isalpha()


def _work() -> dict:
    return {"dataset": DATASET, "model": CKPT + "/model", "checkpoint_dir": CKPT,
            "settings": {**dataclasses.asdict(TrainSettings(train_nodes=4)), "devices": "multiworker"}}


def test_the_trainjob_validates_against_the_trainer_crd_schema():
    """The TrainJob the train step creates is valid for trainer.kubeflow.org/v1alpha1 (Trainer v2.2.0 and v2.3.0):
    runtimeRef, trainer (image, command, numNodes, env, resourcesPerNode) and the runtime patch with the GPU node
    selector and toleration; the forwarded env holds the endpoint but never the keys."""
    body = trainjob.trainjob_manifest("videogen-abc", 4, _work(), LAUNCH, env={
        "AWS_ENDPOINT_URL": "http://minio-service.kubeflow:9000", "AWS_SECRET_ACCESS_KEY": "secret"})
    assert trainjob_errors(body) == []
    trainer = body["spec"]["trainer"]
    assert trainer["numNodes"] == 4 and trainer["command"] == ["python", "-m", "videogen.trainjob"]
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "2"
    env = {e["name"]: e["value"] for e in trainer["env"]}
    assert json.loads(env[trainjob.WORK_ENV])["settings"]["train_nodes"] == 4
    assert env["AWS_ENDPOINT_URL"].startswith("http://") and "secret" not in json.dumps(body)
    pod = body["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    assert pod["name"] == "node" and pod["template"]["spec"]["template"]["spec"]["nodeSelector"]
    bad = json.loads(json.dumps(body))
    bad["spec"]["trainer"]["nodes"] = 4  # a misspelt field is caught
    caught = {error.split(":")[0] for error in trainjob_errors(bad) if "nodes" in error}
    assert caught == {"Trainer v2.2.0", "Trainer v2.3.0"}  # by each release's schema


def test_a_worker_failure_becomes_its_last_error_line():
    pods = [{"metadata": {"name": "videogen-abc-node-0-1-x"}, "status": {"containerStatuses": [{"state": {
        "terminated": {"exitCode": 2, "reason": "Error",
                       "message": "step 3/40 ...\nvideogen: error: dataset dir /tmp/d has no frames.npy\n"}}}]}},
            {"metadata": {"name": "videogen-abc-node-0-0-y"}, "status": {"containerStatuses": [{"state": {
                "terminated": {"exitCode": 0}}}]}}]
    assert trainjob.worker_failure(pods) == ("videogen-abc-node-0-1-x: videogen: error: dataset dir /tmp/d has no "
                                             "frames.npy")
    oom = [{"metadata": {"name": "p"}, "status": {"containerStatuses": [{"state": {"running": {}}, "lastState": {
        "terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}}]
    assert trainjob.worker_failure(oom) == "p: OOMKilled"


# ------------------------------------------------------------------------------------------- stand-in API server
class FakeCluster:
    """Custom objects and pods of one namespace; ``script`` maps the number of GETs of a job to its status."""

    def __init__(self, script=None, pods=()):
        self.jobs: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.gets = 0
        self.script = script or (lambda n: {})
        self.pods = list(pods)
        self.has_crd = True


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


def _handler(cluster: FakeCluster):
    prefix = f"/apis/{trainjob.GROUP}/{trainjob.VERSION}/namespaces/{NS}/{trainjob.PLURAL}"

    class Handler(JSONHandler):
        def _send(self, code: int, body: dict):
            self.send_json(body, code)

        def _route(self, method: str):
            url = urllib.parse.urlsplit(self.path)
            cluster.requests.append((method, url.path))
            if url.path == f"/api/v1/namespaces/{NS}/pods" and method == "GET":
                selector = urllib.parse.parse_qs(url.query)["labelSelector"][0]
                key, value = selector.split("=")
                items = [p for p in cluster.pods if p["metadata"].get("labels", {}).get(key) == value]
                return self._send(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
            if not cluster.has_crd or not url.path.startswith(prefix):
                return self._send(404, _status(404, "NotFound", "the server could not find the requested resource"))
            name = url.path[len(prefix) + 1:]
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if method == "DELETE":  # the API takes the policy as a query parameter or in a DeleteOptions body
                query = urllib.parse.parse_qs(url.query)
                body.setdefault("propagationPolicy", query.get("propagationPolicy", [None])[0])
            return getattr(self, f"_{method.lower()}")(name, body)

        def _post(self, name, body):
            errors = trainjob_errors(body)
            if errors:
                return self._send(422, _status(422, "Invalid", "; ".join(errors)))
            name = body["metadata"]["name"]
            if name in cluster.jobs:
                return self._send(409, _status(409, "AlreadyExists", f'trainjobs "{name}" already exists'))
            body["metadata"].update(namespace=NS, uid="uid-1")
            cluster.jobs[name] = body
            return self._send(201, body)

        def _get(self, name, body):
            if name not in cluster.jobs:
                return self._send(404, _status(404, "NotFound", f'trainjobs "{name}" not found'))
            cluster.gets += 1
            cluster.jobs[name]["status"] = cluster.script(cluster.gets)
            return self._send(200, cluster.jobs[name])

        def _delete(self, name, body):
            if cluster.jobs.pop(name, None) is None:
                return self._send(404, _status(404, "NotFound", f'trainjobs "{name}" not found'))
            assert body.get("propagationPolicy") == "Foreground", body
            return self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

        def do_GET(self):
            self._route("GET")

        def do_POST(self):
            self._route("POST")

        def do_DELETE(self):
            self._route("DELETE")

    return Handler


@pytest.fixture
def api(request):
    """``(cluster, TrainJobs)``: a stand-in API server on 127.0.0.1 and the real client pointed at it."""
    from kubernetes import client

    cluster = FakeCluster()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(cluster))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{server.server_address[1]}"
    yield cluster, trainjob.TrainJobs(NS, client.ApiClient(configuration))
    server.shutdown()


def _done(kind: str, reason: str = "", message: str = "") -> dict:
    return {"conditions": [{"type": kind, "status": "True", "reason": reason or kind, "message": message,
                            "lastTransitionTime": "2026-11-30T00:00:00Z"}]}


@pytest.fixture
def storage_stub(monkeypatch, tmp_path):
    """Object storage for train_on_nodes: the staged model the chief node uploads, as a local folder."""
    from videogen import storage

    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "model.json").write_text(json.dumps({"steps": 7}))
    (staged / "generator.keras").write_bytes(b"k")
    calls = []
    monkeypatch.setattr(storage, "list_dir", lambda uri, **kw: calls.append(("list", uri)) or ["old.bin"])
    monkeypatch.setattr(storage, "remove", lambda uri, **kw: calls.append(("remove", uri)))
    monkeypatch.setattr(storage, "download_dir", lambda uri, local, **kw: calls.append(("download", uri)) or
                        __import__("shutil").copytree(staged, local, dirs_exist_ok=True))
    return calls


def test_train_on_nodes_creates_follows_and_fetches_the_model(api, storage_stub, tmp_path):
    """Create (schema-valid, or the stand-in answers 422), poll until Complete, then the model the chief uploaded
    lands in the step's model dir; a stale model of an earlier job is removed before the job starts."""
    cluster, jobs = api
    cluster.script = lambda n: _done("Complete", "AllJobsCompleted") if n >= 3 else {"jobsStatus": [
        {"name": "node", "active": 4, "ready": 4, "succeeded": 0, "failed": 0, "suspended": 0}]}
    info = trainjob.train_on_nodes(DATASET, tmp_path / "model", TrainSettings(train_nodes=4), CKPT, jobs=jobs,
                                   launch=LAUNCH)
    assert info == {"steps": 7} and (tmp_path / "model" / "generator.keras").exists()
    name = trainjob.trainjob_name(CKPT)
    assert [m for m, _ in cluster.requests][:2] == ["GET", "POST"] and cluster.gets >= 3
    assert cluster.jobs[name]["spec"]["trainer"]["numNodes"] == 4
    assert ("remove", CKPT + "/model/old.bin") in storage_stub and ("download", CKPT + "/model") in storage_stub


def test_a_failed_trainjob_is_one_line_with_the_workers_error(api, storage_stub, tmp_path):
    """The Failed condition (Trainer copies JobSet's) and the failing node's last log line make one error line."""
    cluster, jobs = api
    name = trainjob.trainjob_name(CKPT)
    cluster.script = lambda n: _done("Failed", "FailedJobs", "jobset failed due to reaching max restarts")
    cluster.pods = [{"metadata": {"name": f"{name}-node-0-1-abcde", "labels": {trainjob.JOBSET_NAME_LABEL: name}},
                     "status": {"containerStatuses": [{"name": "node", "image": LAUNCH.image, "imageID": "",
                                                       "ready": False, "restartCount": 0, "state": {"terminated": {
                         "exitCode": 1, "reason": "Error",
                         "message": "Traceback ...\ntensorflow.python.framework.errors_impl.UnavailableError: "
                                    "socket closed\n"}}}]}}]
    with pytest.raises(VideogenError) as error:
        trainjob.train_on_nodes(DATASET, tmp_path / "model", TrainSettings(train_nodes=2), CKPT, jobs=jobs,
                                launch=LAUNCH)
    line = str(error.value)
    assert "\n" not in line and f"TrainJob {NS}/{name} failed (FailedJobs" in line
    assert "max restarts" in line and f"{name}-node-0-1-abcde: tensorflow" in line and "UnavailableError" in line
    assert f"kubectl -n {NS} describe trainjob {name}" in line
    assert not (tmp_path / "model").exists()


def test_a_retried_step_follows_the_running_job_and_replaces_a_finished_one(api, storage_stub, tmp_path):
    """A job of the same name that is still running is followed (no second POST); a finished one is deleted and
    created anew."""
    cluster, jobs = api
    name = trainjob.trainjob_name(CKPT)
    body = trainjob.trainjob_manifest(name, 2, _work(), LAUNCH, env={})
    cluster.jobs[name] = json.loads(json.dumps(body))
    cluster.script = lambda n: _done("Complete") if n >= 2 else {}
    trainjob.train_on_nodes(DATASET, tmp_path / "m1", TrainSettings(train_nodes=2), CKPT, jobs=jobs, launch=LAUNCH)
    assert "POST" not in [m for m, _ in cluster.requests]
    cluster.requests.clear()
    cluster.gets = 0
    cluster.script = lambda n: _done("Complete")
    trainjob.train_on_nodes(DATASET, tmp_path / "m2", TrainSettings(train_nodes=2), CKPT, jobs=jobs, launch=LAUNCH)
    assert [m for m, _ in cluster.requests][:4] == ["GET", "DELETE", "GET", "POST"]


def test_cancelling_the_step_deletes_the_trainjob(api, storage_stub, tmp_path):
    """SIGTERM (KFP cancelling the run or its timeout) while the job runs: the TrainJob is deleted, then the step
    ends."""
    cluster, jobs = api
    cluster.script = lambda n: (os.kill(os.getpid(), signal.SIGTERM) if n == 2 else None) or {}
    with pytest.raises(BaseException) as cancelled:
        trainjob.train_on_nodes(DATASET, tmp_path / "model", TrainSettings(train_nodes=2), CKPT, jobs=jobs,
                                launch=LAUNCH)
    assert type(cancelled.value).__name__ == "_Cancelled"
    assert cluster.jobs == {} and ("DELETE", f"/apis/{trainjob.GROUP}/{trainjob.VERSION}/namespaces/{NS}/"
                                             f"{trainjob.PLURAL}/{trainjob.trainjob_name(CKPT)}") in cluster.requests
    assert signal.getsignal(signal.SIGTERM) is not trainjob._raise_cancelled


def test_no_trainer_on_the_cluster_or_no_cluster_is_one_line(api, storage_stub, tmp_path, monkeypatch):
    """Without the TrainJob API the error says to install Trainer or train on one node; outside the compiled
    pipeline (no launch settings) it says train_nodes 1."""
    cluster, jobs = api
    cluster.has_crd = False
    with pytest.raises(VideogenError, match=r"no trainjobs\.trainer\.kubeflow\.org API .* or set train_nodes 1"):
        trainjob.train_on_nodes(DATASET, tmp_path / "model", TrainSettings(train_nodes=2), CKPT, jobs=jobs,
                                launch=LAUNCH)
    monkeypatch.delenv(trainjob.LAUNCH_ENV, raising=False)
    with pytest.raises(VideogenError, match="set train_nodes 1"):
        trainjob.train_on_nodes(DATASET, tmp_path / "model", TrainSettings(train_nodes=2), CKPT, jobs=jobs)
    with pytest.raises(VideogenError, match="object storage"):
        trainjob.train_on_nodes(DATASET, tmp_path / "model", TrainSettings(train_nodes=2), str(tmp_path),
                                jobs=jobs, launch=LAUNCH)


def test_train_on_several_nodes_outside_a_trainjob_is_refused_with_one_line(tmp_path):
    """`videogen train --train-nodes 2` (or the library on local paths) says where multi-node training runs."""
    from tests.unit.test_train import write_dataset
    from videogen.train import train

    with pytest.raises(VideogenError, match="TrainJob .* set train_nodes 1 to train here") as error:
        train(write_dataset(tmp_path / "dataset"), tmp_path / "model", TrainSettings(max_steps=1, train_nodes=2))
    assert "\n" not in str(error.value)
    with pytest.raises(VideogenError, match="batch_size 1 is smaller than train_nodes 2"):
        train(tmp_path / "dataset", tmp_path / "model", TrainSettings(max_steps=1, batch_size=1, train_nodes=2))
