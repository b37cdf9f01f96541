"""pipeline.kubeflow_runner through the real ``kfp.Client`` against a local HTTP server that answers the few KFP v2beta1 REST
endpoints our flow calls (healthz, pipelines list/upload, pipeline versions upload/list, experiments list/create, runs
create/get with ``run_details.task_details[].outputs``, and the ArtifactService's
``GET /apis/v2beta1/artifacts/{artifact_id}?view=DOWNLOAD``, shaped as kfp_server_api 2.17's models and KFP's
backend/api/v2beta1/artifacts.proto describe them).

The fake server checks *our requests* (what kfp.Client sends on our behalf: names, ids, parameters, auth header) and
*our handling of the answers*; it is not KFP, and passing here says nothing about how a real KFP backend behaves beyond
the API shapes it mimics (taken from kfp_server_api 2.17). fetch_result is tested against the moto S3 server.
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
import uuid
from pathlib import Path

import pytest

from pipeline import kubeflow_runner
from tests.json_http import JSONHandler
from tests.s3server import LOOPBACK
from videogen import runs, storage
from videogen.errors import StorageError, VideogenError

# The shared S3 server fixtures (tests.s3server), used by name below.

PIPELINE_YAML = """\
# PIPELINE DEFINITION
# Name: video-generation
components:
  comp-encode:
    executorLabel: exec-encode
deploymentSpec:
  executors:
    exec-encode:
      container:
        image: registry/videogen:{tag}
pipelineInfo:
  name: video-generation
root:
  dag:
    tasks: {{}}
schemaVersion: 2.1.0
sdkVersion: kfp-2.17.3
"""


class FakeKFP:
    """In-memory state of the fake API plus a log of the requests it got."""

    def __init__(self) -> None:
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, list[dict]] = {}
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.requests: list[dict] = []
        self.run_state = "SUCCEEDED"
        self.artifacts: dict[str, dict] = {}  # artifact_id -> Artifact (backend/api/v2beta1/artifacts.proto)
        self.artifact_api = True  # False: a backend without the ArtifactService (its routes answer 404)
        self.files: dict[str, bytes] = {}  # same-origin download URLs: /files/<name>, bearer token required
        self.lock = threading.Lock()


def _multipart_file(body: bytes, content_type: str) -> tuple[str, bytes]:
    boundary = content_type.split("boundary=")[1].strip('"').encode()
    for part in body.split(b"--" + boundary):
        head, sep, data = part.partition(b"\r\n\r\n")
        if sep and b'name="uploadfile"' in head:
            return head.decode(errors="replace"), data.rsplit(b"\r\n", 1)[0]
    raise AssertionError("no uploadfile part in the upload request")


def _matches(filter_json: str | None, item: dict) -> bool:
    if not filter_json:
        return True
    for predicate in json.loads(filter_json).get("predicates", []):
        assert predicate["operation"] in ("EQUALS", 1), predicate
        if item.get(predicate["key"]) != predicate.get("stringValue", predicate.get("string_value")):
            return False
    return True


def _handler(state: FakeKFP):
    class Handler(JSONHandler):
        def _reply(self, payload: dict, status: int = 200) -> None:
            self.send_json(payload, status)

        def _record(self, body: bytes = b"") -> tuple[str, dict]:
            split = urllib.parse.urlsplit(self.path)
            query = {k: v[0] for k, v in urllib.parse.parse_qs(split.query, keep_blank_values=True).items()}
            path = split.path.removeprefix("/pipeline")  # the host URL's path, as behind Kubeflow's gateway
            with state.lock:
                state.requests.append({"method": self.command, "path": path, "query": query,
                                       "auth": self.headers.get("Authorization"), "cookie": self.headers.get("Cookie"),
                                       "body": body})
            return path, query

        def do_GET(self):  # noqa: N802
            path, query = self._record()
            if path == "/apis/v2beta1/healthz":
                return self._reply({"multi_user": False})
            if path == "/apis/v2beta1/pipelines":
                found = [p for p in state.pipelines.values() if _matches(query.get("filter"), p)]
                return self._reply({"pipelines": found, "total_size": len(found)} if found else {})
            if path.startswith("/apis/v2beta1/pipelines/") and path.endswith("/versions"):
                pipeline_id = path.split("/")[4]
                found = [v for v in state.versions.get(pipeline_id, []) if _matches(query.get("filter"), v)]
                return self._reply({"pipeline_versions": found, "total_size": len(found)} if found else {})
            if path == "/apis/v2beta1/experiments":
                found = [e for e in state.experiments.values() if _matches(query.get("filter"), e)]
                return self._reply({"experiments": found, "total_size": len(found)} if found else {})
            if path.startswith("/apis/v2beta1/artifacts/") and state.artifact_api:
                artifact = state.artifacts.get(path.rsplit("/", 1)[1])
                if artifact is None:
                    return self._reply({"error": "artifact not found", "code": 5, "message": "not found"}, 404)
                if query.get("view") != "DOWNLOAD":  # BASIC (the default) leaves the signed URL out
                    artifact = {k: v for k, v in artifact.items() if k != "download_url"}
                return self._reply(artifact)
            if path.startswith("/files/") and path[len("/files/"):] in state.files:
                if not self.headers.get("Authorization"):
                    return self._reply({"error": "unauthenticated", "code": 16}, 401)
                body = state.files[path[len("/files/"):]]
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                return self.wfile.write(body)
            if path.startswith("/apis/v2beta1/runs/"):
                run = dict(state.runs[path.rsplit("/", 1)[1]])
                run["state"] = state.run_state
                return self._reply(run)
            self._reply({"error": "not found", "code": 5}, 404)

        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            path, query = self._record(body)
            if path in ("/apis/v2beta1/pipelines/upload", "/apis/v2beta1/pipelines/upload_version"):
                _, package = _multipart_file(body, self.headers["Content-Type"])
                assert package.startswith(b"# PIPELINE DEFINITION")
                if path.endswith("/upload"):
                    pipeline = {"pipeline_id": str(uuid.uuid4()), "display_name": query["name"],
                                "namespace": query.get("namespace", "")}
                    state.pipelines[pipeline["pipeline_id"]] = pipeline
                    # Like KFP: the first version comes with the pipeline.
                    state.versions[pipeline["pipeline_id"]] = [{
                        "pipeline_id": pipeline["pipeline_id"], "pipeline_version_id": str(uuid.uuid4()),
                        "display_name": query["name"], "package": package.decode()}]
                    return self._reply(pipeline)
                version = {"pipeline_id": query["pipelineid"], "pipeline_version_id": str(uuid.uuid4()),
                           "display_name": query["name"], "package": package.decode()}
                state.versions[query["pipelineid"]].append(version)
                return self._reply(version)
            if path == "/apis/v2beta1/experiments":
                experiment = json.loads(body)
                experiment["experiment_id"] = str(uuid.uuid4())
                state.experiments[experiment["experiment_id"]] = experiment
                return self._reply(experiment)
            if path == "/apis/v2beta1/runs":
                run = json.loads(body)
                run.update({"run_id": str(uuid.uuid4()), "state": "PENDING"})
                state.runs[run["run_id"]] = run
                return self._reply(run)
            self._reply({"error": "not found", "code": 5}, 404)

    return Handler


@pytest.fixture
def kfp_api():
    state = FakeKFP()
    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.host = f"http://{LOOPBACK}:{server.server_address[1]}/pipeline"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def no_kfp_context(tmp_path, monkeypatch):
    """kfp.Client reads ~/.config/kfp/context.json: point HOME at an empty dir so a developer's file cannot leak in."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    import kfp.client.client as kfp_client

    monkeypatch.setattr(kfp_client.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "home" / "context.json"))


def _package(tmp_path: Path, tag: str) -> Path:
    path = tmp_path / f"pipeline-{tag}.yaml"
    path.write_text(PIPELINE_YAML.format(tag=tag))
    return path


def _requests(state: FakeKFP, method: str, path: str) -> list[dict]:
    return [r for r in state.requests if r["method"] == method and r["path"] == path]


def test_first_submit_creates_pipeline_version_experiment_and_run(kfp_api, no_kfp_context, tmp_path):
    package = _package(tmp_path, "v1")
    arguments = {"video": "s3://videos/in.mp4", "max_epoch": 3, "deterministic": True, "video_identity": "etag=given"}
    result = kubeflow_runner.submit(kfp_api.host, package, arguments, experiment_name="videogen-test", run_name="first",
                           existing_token="tok-abc", service_account="videogen-pipeline-runner")

    assert len(kfp_api.pipelines) == 1
    pipeline = next(iter(kfp_api.pipelines.values()))
    assert pipeline["display_name"] == "video-generation"  # from the YAML's pipelineInfo.name
    assert result.pipeline_id == pipeline["pipeline_id"]
    assert result.version_name == kubeflow_runner.package_version_name(package) and result.new_version
    version_names = [v["display_name"] for v in kfp_api.versions[result.pipeline_id]]
    assert version_names == ["video-generation", result.version_name]

    (create_run,) = _requests(kfp_api, "POST", "/apis/v2beta1/runs")
    run = json.loads(create_run["body"])
    assert run["display_name"] == "first" and run["service_account"] == "videogen-pipeline-runner"
    assert run["runtime_config"]["parameters"] == arguments
    assert run["pipeline_version_reference"] == {"pipeline_id": result.pipeline_id,
                                                 "pipeline_version_id": result.version_id}
    assert run["experiment_id"] == next(iter(kfp_api.experiments.values()))["experiment_id"]
    assert next(iter(kfp_api.experiments.values()))["display_name"] == "videogen-test"
    assert result.run_id == next(iter(kfp_api.runs))
    assert result.url == f"{kfp_api.host}/#/runs/details/{result.run_id}"
    assert {r["auth"] for r in kfp_api.requests} == {"Bearer tok-abc"}


def test_same_yaml_reuses_the_version_and_changed_yaml_adds_one(kfp_api, no_kfp_context, tmp_path):
    first = kubeflow_runner.submit(kfp_api.host, _package(tmp_path, "v1"), {"video": "a"}, experiment_name="e")
    again = kubeflow_runner.submit(kfp_api.host, _package(tmp_path, "v1"), {"video": "b"}, experiment_name="e")
    assert (again.pipeline_id, again.version_id, again.new_version) == (first.pipeline_id, first.version_id, False)
    assert len(_requests(kfp_api, "POST", "/apis/v2beta1/pipelines/upload_version")) == 1
    assert len(_requests(kfp_api, "POST", "/apis/v2beta1/pipelines/upload")) == 1
    assert len(kfp_api.experiments) == 1, "the experiment is made once and then found by name"

    changed = kubeflow_runner.submit(kfp_api.host, _package(tmp_path, "v2"), {"video": "c"}, experiment_name="e")
    assert changed.pipeline_id == first.pipeline_id and changed.new_version
    assert changed.version_id != first.version_id
    assert len(kfp_api.versions[first.pipeline_id]) == 3
    assert again.run_id != first.run_id != changed.run_id
    runs = [json.loads(r["body"]) for r in _requests(kfp_api, "POST", "/apis/v2beta1/runs")]
    assert [r["pipeline_version_reference"]["pipeline_version_id"] for r in runs] == [
        first.version_id, first.version_id, changed.version_id]


def test_wait_returns_the_final_state_and_a_failed_run_raises(kfp_api, no_kfp_context, tmp_path):
    package = _package(tmp_path, "v1")
    done = kubeflow_runner.submit(kfp_api.host, package, {}, wait=True, timeout_s=30, poll_interval_s=0.1)
    assert done.state == "SUCCEEDED"
    kfp_api.run_state = "FAILED"
    with pytest.raises(VideogenError, match=r"run .* ended FAILED: see its logs at http://.*/#/runs/details/"):
        kubeflow_runner.submit(kfp_api.host, package, {}, wait=True, timeout_s=30, poll_interval_s=0.1)


def test_unreachable_or_refusing_host_is_one_line(no_kfp_context, tmp_path, kfp_api):
    package = _package(tmp_path, "v1")
    with pytest.raises(VideogenError, match="cannot reach Kubeflow Pipelines at http://127.0.0.1:9/x"):
        kubeflow_runner.submit("http://127.0.0.1:9/x", package, {})
    with pytest.raises(VideogenError, match="does not exist: run `videogen compile` first"):
        kubeflow_runner.submit(kfp_api.host, tmp_path / "missing.yaml", {})


def test_published_uri_is_derived_from_the_run_id():
    assert runs.publish_uri("minio://mlpipeline/videogen/", "1234-abcd") == \
        "minio://mlpipeline/videogen/1234-abcd/gen.mp4"
    assert runs.publish_uri("/tmp/out", "r1") == str(Path("/tmp/out/r1/gen.mp4"))


def test_fetch_result_downloads_the_published_video(s3_server, s3_bucket, tmp_path):
    client = storage.make_client(s3_server.storage_config())
    run_id = str(uuid.uuid4())
    video = tmp_path / "gen.mp4"
    video.write_bytes(b"mp4" * 1000)
    report = tmp_path / "report.html"
    report.write_text("<html></html>")
    output_root = f"minio://{s3_bucket}/videogen"
    storage.put(video, runs.publish_uri(output_root, run_id), client=client)
    storage.put(report, storage.join_uri(output_root, run_id, "report.html"), client=client)

    out = kubeflow_runner.fetch_result(run_id, tmp_path / "out" / "mine.mp4", output_root, report=True, client=client)
    assert out.read_bytes() == video.read_bytes()
    assert (out.parent / "report.html").read_text() == "<html></html>"

    with pytest.raises(StorageError, match="run nope has published no video at minio://.*/videogen/nope/gen.mp4"):
        kubeflow_runner.fetch_result("nope", tmp_path / "x.mp4", output_root, client=client)
    assert not (tmp_path / "x.mp4").exists()


def _publish_clips(s3_bucket: str, client, tmp_path: Path) -> tuple[str, str]:
    """A finished per-video run in the store: clips ``fire``, ``sea`` and ``smoke``, each with its video and report."""
    run_id = str(uuid.uuid4())
    output_root = f"minio://{s3_bucket}/videogen"
    for clip in ("smoke", "fire", "sea"):
        for name, data in (("gen.mp4", f"mp4 of {clip}" * 100), ("report.html", f"<html>{clip}</html>")):
            local = tmp_path / "src" / clip / name
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text(data)
            storage.put(local, runs.publish_uri(output_root, f"{run_id}/{clip}", name), client=client)
    return run_id, output_root


def test_every_clip_of_a_per_video_run_comes_back_named_as_a_local_run_names_them(s3_server, s3_bucket, tmp_path,
                                                                                  monkeypatch, capsys):
    """`videogen fetch --all` brings back each clip of a --per-video-models run: the first (by name) at --output, the
    others beside it as <output name>-<clip>.mp4 (the local runner's names); --clip NAME one clip; an unknown clip
    or a one-model run is one line naming what there is."""
    from pipeline import cli

    client = storage.make_client(s3_server.storage_config())
    run_id, output_root = _publish_clips(s3_bucket, client, tmp_path)
    assert kubeflow_runner.run_clips(run_id, output_root, client=client) == ["fire", "sea", "smoke"]
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "out" / "gen.mp4"
    assert cli.main(["fetch", "--run-id", run_id, "--output-root", output_root, "--output", str(out), "--all",
                     "--report"]) == 0
    assert out.read_text() == "mp4 of fire" * 100 and (out.parent / "report.html").read_text() == "<html>fire</html>"
    for clip in ("sea", "smoke"):
        assert Path(runs.clip_output(str(out), clip)).read_text() == f"mp4 of {clip}" * 100
        assert (out.parent / f"gen-{clip}.mp4").exists() and (out.parent / f"gen-{clip}.report.html").exists()
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "gen-sea.mp4", "gen-sea.report.html", "gen-smoke.mp4", "gen-smoke.report.html", "gen.mp4", "report.html"]
    assert capsys.readouterr().out.count("video: ") == 3

    one = tmp_path / "one.mp4"
    assert cli.main(["fetch", "--run-id", run_id, "--output-root", output_root, "--output", str(one),
                     "--clip", "smoke"]) == 0
    assert one.read_text() == "mp4 of smoke" * 100
    with pytest.raises(StorageError, match=r"has no clip rain; its clips: fire, sea, smoke"):
        kubeflow_runner.fetch_clips(run_id, tmp_path / "x.mp4", output_root, ["rain"], client=client)
    storage.put(out, runs.publish_uri(output_root, "single"), client=client)
    with pytest.raises(StorageError, match="run single has published no clip folders"):
        kubeflow_runner.fetch_clips("single", tmp_path / "x.mp4", output_root, client=client)
    assert not (tmp_path / "x.mp4").exists()
    with pytest.raises(SystemExit) as refused:
        cli.main(["fetch", "--run-id", run_id, "--output-root", output_root, "--clip", "rain"])
    assert refused.value.code != 0 and "has no clip rain" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- results through the artifact API
RESULTS = {"gen.mp4": b"mp4" * 1000, "report.html": b"<html>report</html>", "summary.md": b"# summary"}


def _finished_run(state: FakeKFP, outputs: dict[str, dict[str, str]]) -> str:
    """A run whose tasks have these output artifacts ({task name: {output name: artifact id}})."""
    run_id = str(uuid.uuid4())
    state.runs[run_id] = {"run_id": run_id, "display_name": "done", "state": "SUCCEEDED", "run_details": {
        "pipeline_context_id": "1", "pipeline_run_context_id": "2", "task_details": [
            {"run_id": run_id, "task_id": f"task-{name}", "display_name": name, "state": "SUCCEEDED",
             "inputs": {"generated": {"artifact_ids": ["90"]}},
             "outputs": {key: {"artifact_ids": [artifact_id]} for key, artifact_id in task_outputs.items()}}
            for name, task_outputs in outputs.items()]}}
    return run_id


ENCODE_AND_EVALUATE = {"encode-video": {"video": "11"},
                       "evaluate-model": {"metrics": "12", "report": "13", "summary": "14"}}
ARTIFACT_FILES = {"11": "gen.mp4", "13": "report.html", "14": "summary.md"}


def _artifact(artifact_id: str, download_url: str) -> dict:
    return {"artifact_id": artifact_id, "storage_provider": "minio", "storage_path": f"artifacts/{artifact_id}",
            "uri": f"minio://mlpipeline/artifacts/{artifact_id}", "download_url": download_url,
            "namespace": "kubeflow", "artifact_type": "system.Artifact", "artifact_size": "3000",
            "created_at": "2026-11-30T06:00:00Z", "last_updated_at": "2026-11-30T06:00:00Z"}


@pytest.fixture
def no_store_keys(monkeypatch):
    """No object-store credentials, and an endpoint where nothing listens: a fallback to the store would fail."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")


class _SignedStore(http.server.BaseHTTPRequestHandler):
    """Stands in for the object store behind a signed URL: serves ``/<bucket>/<key>?X-Amz-Signature=...`` and records
    the headers it got (a signed URL must carry no Authorization or Cookie of ours)."""

    objects: dict[str, bytes] = {}
    seen: list[dict] = []

    def do_GET(self):  # noqa: N802 - http.server API
        split = urllib.parse.urlsplit(self.path)
        self.seen.append({"path": split.path, "auth": self.headers.get("Authorization"),
                          "cookie": self.headers.get("Cookie")})
        body = self.objects.get(split.path)
        if body is None or "X-Amz-Signature" not in split.query:
            self.send_response(403 if body is not None else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def signed_store():
    _SignedStore.objects, _SignedStore.seen = {}, []
    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), _SignedStore)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://{LOOPBACK}:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_goes_through_the_artifact_apis_signed_urls_without_store_keys(
        kfp_api, no_kfp_context, no_store_keys, signed_store, tmp_path):
    """The run's encode/evaluate artifacts come through the signed URLs the API returns (on the store's host, which
    gets none of our credentials): no object-store keys, nothing read from the published location."""
    for artifact_id, name in ARTIFACT_FILES.items():
        _SignedStore.objects[f"/mlpipeline/artifacts/{artifact_id}"] = RESULTS[name]
        kfp_api.artifacts[artifact_id] = _artifact(
            artifact_id, f"{signed_store}/mlpipeline/artifacts/{artifact_id}?X-Amz-Expires=15&X-Amz-Signature=ab12")
    run_id = _finished_run(kfp_api, ENCODE_AND_EVALUATE)
    kfp_client = kubeflow_runner.make_kfp_client(kfp_api.host, existing_token="tok-abc", cookies="session=c1")

    out = kubeflow_runner.fetch_result(run_id, tmp_path / "out" / "gen.mp4", "minio://mlpipeline/videogen",
                                       report=True, kfp_client=kfp_client, host=kfp_api.host)
    for name, data in RESULTS.items():
        assert (out.parent / name).read_bytes() == data, name
    gets = [r for r in kfp_api.requests if r["path"].startswith("/apis/v2beta1/artifacts/")]
    assert sorted(r["path"].rsplit("/", 1)[1] for r in gets) == ["11", "13", "14"]
    assert {(r["query"].get("view"), r["auth"], r["cookie"]) for r in gets} == {
        ("DOWNLOAD", "Bearer tok-abc", "session=c1")}
    assert _requests(kfp_api, "GET", f"/apis/v2beta1/runs/{run_id}")
    assert len(_SignedStore.seen) == 3 and {(r["auth"], r["cookie"]) for r in _SignedStore.seen} == {(None, None)}


def test_a_download_url_on_the_kfp_host_gets_the_clients_token(kfp_api, no_kfp_context, no_store_keys, tmp_path):
    """A download URL served by the KFP host itself (relative, behind the gateway) is fetched with the token."""
    for artifact_id, name in ARTIFACT_FILES.items():
        kfp_api.files[name] = RESULTS[name]
        kfp_api.artifacts[artifact_id] = _artifact(artifact_id, f"/pipeline/files/{name}")
    run_id = _finished_run(kfp_api, ENCODE_AND_EVALUATE)
    kfp_client = kubeflow_runner.make_kfp_client(kfp_api.host, existing_token="tok-abc")
    out = kubeflow_runner.fetch_result(run_id, tmp_path / "gen.mp4", "minio://mlpipeline/videogen", report=True,
                                       kfp_client=kfp_client, host=kfp_api.host)
    assert out.read_bytes() == RESULTS["gen.mp4"] and (tmp_path / "summary.md").read_bytes() == RESULTS["summary.md"]
    downloads = [r for r in kfp_api.requests if r["path"].startswith("/files/")]
    assert len(downloads) == 3 and {r["auth"] for r in downloads} == {"Bearer tok-abc"}


def _publish(s3_server, bucket: str, run_id: str, tmp_path: Path) -> tuple[storage.StorageClient, str]:
    client = storage.make_client(s3_server.storage_config())
    output_root = f"minio://{bucket}/videogen"
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name, data in RESULTS.items():
        (tmp_path / name).write_bytes(data)
        storage.put(tmp_path / name, runs.publish_uri(output_root, run_id, name), client=client)
    return client, output_root


def test_fetch_falls_back_to_the_store_when_the_api_has_no_artifact_service(
        kfp_api, no_kfp_context, s3_server, s3_bucket, tmp_path):
    kfp_api.artifact_api = False  # GET /apis/v2beta1/artifacts/{id} answers 404, as on a backend without it
    run_id = _finished_run(kfp_api, ENCODE_AND_EVALUATE)
    client, output_root = _publish(s3_server, s3_bucket, run_id, tmp_path / "published")
    kfp_client = kubeflow_runner.make_kfp_client(kfp_api.host)
    out = kubeflow_runner.fetch_result(run_id, tmp_path / "out" / "gen.mp4", output_root, report=True, client=client,
                                       kfp_client=kfp_client, host=kfp_api.host)
    for name, data in RESULTS.items():
        assert (out.parent / name).read_bytes() == data, name
    gets = [r for r in kfp_api.requests if r["path"].startswith("/apis/v2beta1/artifacts/")]
    assert len(gets) == 1, "after the first 404 the API is not asked again"


def test_fetch_falls_back_to_the_store_when_the_run_has_no_such_artifacts(
        kfp_api, no_kfp_context, s3_server, s3_bucket, tmp_path):
    run_id = _finished_run(kfp_api, {"prepare-dataset": {"dataset": "10"}})
    client, output_root = _publish(s3_server, s3_bucket, run_id, tmp_path / "published")
    out = kubeflow_runner.fetch_result(run_id, tmp_path / "gen.mp4", output_root, client=client,
                                       kfp_client=kubeflow_runner.make_kfp_client(kfp_api.host), host=kfp_api.host)
    assert out.read_bytes() == RESULTS["gen.mp4"]
    assert not [r for r in kfp_api.requests if r["path"].startswith("/apis/v2beta1/artifacts/")]


def test_videogen_fetch_and_make_fetch_use_the_kfp_host(kfp_api, no_kfp_context, no_store_keys, tmp_path, monkeypatch,
                                                        capsys):
    from pipeline import cli

    for artifact_id, name in ARTIFACT_FILES.items():
        kfp_api.files[name] = RESULTS[name]
        kfp_api.artifacts[artifact_id] = _artifact(artifact_id, f"/pipeline/files/{name}")
    run_id = _finished_run(kfp_api, ENCODE_AND_EVALUATE)
    monkeypatch.setenv("KFP_TOKEN", "tok-env")
    assert cli.main(["fetch", "--host", kfp_api.host, "--run-id", run_id, "--output", str(tmp_path / "v.mp4"),
                     "--report"]) == 0
    assert (tmp_path / "v.mp4").read_bytes() == RESULTS["gen.mp4"]
    assert (tmp_path / "report.html").read_bytes() == RESULTS["report.html"]
    assert {r["auth"] for r in kfp_api.requests if r["path"].startswith("/files/")} == {"Bearer tok-env"}

    import subprocess

    dry = subprocess.run(["make", "-n", "--no-print-directory", "fetch", "RUN_ID=r1", "KFP_HOST=http://kfp:8080/p"],
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2]).stdout
    assert "fetch --host http://kfp:8080/p" in dry and "--run-id r1" in dry
