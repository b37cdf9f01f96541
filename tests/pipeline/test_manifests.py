"""The kustomize overlays in manifests/: they render, validate against the Kubernetes schemas, and are hardened.

Rendering uses the real `kubectl kustomize` on a copy of manifests/ whose secret.env is the committed example;
validation uses kubernetes-validate's bundled JSON schemas (offline). No cluster is involved.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
OVERLAYS = sorted(p.name for p in (MANIFESTS / "overlays").iterdir() if (p / "kustomization.yaml").exists())
K8S_VERSION = "1.32.0"  # the kubectl on the dev machines; kubernetes-validate ships schemas 1.25 to 1.37
POD_KINDS = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}

KUBECTL = shutil.which("kubectl") or shutil.which("kubectl", path=str(Path(sys.executable).parent))
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl (with kustomize) is not installed; CI installs it")


def _example_secret_values() -> dict[str, str]:
    lines = (MANIFESTS / "base" / "secret.env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))


def _render(target: Path) -> list[dict]:
    out = subprocess.run([KUBECTL, "kustomize", str(target)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module")
def manifests_copy(tmp_path_factory) -> Path:
    """manifests/ with secret.env made from the example (the real one is git-ignored and never read here)."""
    copy = tmp_path_factory.mktemp("manifests") / "manifests"
    shutil.copytree(MANIFESTS, copy, ignore=shutil.ignore_patterns("secret.env"))
    shutil.copy(copy / "base" / "secret.env.example", copy / "base" / "secret.env")
    return copy


@pytest.fixture(scope="module")
def rendered(manifests_copy) -> dict[str, list[dict]]:
    return {name: _render(manifests_copy / "overlays" / name) for name in OVERLAYS}


def _pod_specs(objects: list[dict]):
    for obj in objects:
        if obj["kind"] not in POD_KINDS:
            continue
        spec = obj["spec"]
        if obj["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if obj["kind"] != "Pod":
            spec = spec["template"]["spec"]
        yield f'{obj["kind"]}/{obj["metadata"]["name"]}', spec


def test_the_overlays_exist():
    assert {"kubeflow", "kubeflow-with-secret", "standalone-seaweedfs"} <= set(OVERLAYS)
    assert "standalone-minio" not in OVERLAYS  # MinIO publishes no server images since October 2025


def test_makefile_endpoint_for_the_standalone_overlay_is_its_service():
    """`make compile/deploy/run OVERLAY=standalone-seaweedfs` compiles in the overlay's Service and port."""
    out = subprocess.run(["make", "-s", "-p", "-n", "help", "OVERLAY=standalone-seaweedfs"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60).stdout
    variables = dict(line.split(" = ", 1) for line in out.splitlines() if line.startswith("S3_") and " = " in line)
    assert variables["S3_ENDPOINT_IN_CLUSTER"] == "http://videogen-seaweedfs:8333"
    assert variables["S3_SECRET"] == "videogen-s3-credentials"


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_objects_validate_against_kubernetes_schemas(rendered, overlay):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    assert rendered[overlay]
    for obj in rendered[overlay]:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_namespaced_object_gets_the_overlay_namespace(rendered, overlay):
    for obj in rendered[overlay]:
        assert obj["metadata"].get("namespace"), f'{obj["kind"]}/{obj["metadata"]["name"]} has no namespace'


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_meet_restricted_pod_security_and_have_resources(rendered, overlay):
    for name, spec in _pod_specs(rendered[overlay]):
        _assert_hardened(name, spec)


def _assert_hardened(name: str, spec: dict) -> None:
    """Pod Security Standards "restricted", no API token, resources, pinned images with a pull policy."""
    pod_sc = spec.get("securityContext", {})
    assert pod_sc.get("runAsNonRoot") is True, name
    assert pod_sc.get("runAsUser", 0) > 0, name
    assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
    assert spec.get("automountServiceAccountToken") is False, f"{name} needs no API token"
    for container in spec.get("initContainers", []) + spec["containers"]:
        where = f'{name}:{container["name"]}'
        sc = container.get("securityContext", {})
        assert sc.get("allowPrivilegeEscalation") is False, where
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
        assert sc.get("readOnlyRootFilesystem") is True, where
        assert not sc.get("privileged", False), where
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(kind, {})), f"{where} lacks {kind}"
        image = container["image"]
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), f"{where}: unpinned {image}"
        assert container.get("imagePullPolicy"), where


@needs_kubectl
def test_trainer_runtime_validates_against_the_trainer_crd_and_runs_the_node_command(manifests_copy):
    """manifests/trainer renders to one cluster-scoped ClusterTrainingRuntime, valid for the CRD schemas of
    Trainer v2.2.0 and v2.3.0 (vendored), whose `node` Job (Trainer's trainer step) is Indexed (stable hostnames, the completion index
    as the node's rank), runs `python -m videogen.trainjob` on the TF_CONFIG port, takes the object-store keys from
    the base's Secret and ConfigMap, and is hardened like every other pod."""
    from tests.crd_schema import runtime_errors
    from videogen import trainjob

    objects = _render(manifests_copy / "trainer")
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [("ClusterTrainingRuntime", trainjob.RUNTIME)]
    runtime = objects[0]
    assert "namespace" not in runtime["metadata"] and runtime_errors(runtime) == []
    jobs = runtime["spec"]["template"]["spec"]["replicatedJobs"]
    assert [j["name"] for j in jobs] == [trainjob.NODE_JOB]
    assert jobs[0]["template"]["metadata"]["labels"]["trainer.kubeflow.org/trainjob-ancestor-step"] == "trainer"
    assert jobs[0]["template"]["spec"]["completionMode"] == "Indexed"
    pod = jobs[0]["template"]["spec"]["template"]["spec"]
    _assert_hardened("ClusterTrainingRuntime/videogen-tensorflow", pod)
    node = pod["containers"][0]
    assert node["name"] == trainjob.NODE_JOB and node["command"] == ["python", "-m", "videogen.trainjob"]
    assert node["ports"][0]["containerPort"] == trainjob.WORKER_PORT
    assert node["terminationMessagePolicy"] == "FallbackToLogsOnError"
    refs = {e["name"]: e.get("valueFrom", {}) for e in node["env"]}
    assert refs["AWS_SECRET_ACCESS_KEY"]["secretKeyRef"] == {"name": "videogen-s3-credentials", "key": "secretkey"}
    assert refs["AWS_ENDPOINT_URL_S3"]["configMapKeyRef"]["name"] == "videogen-config"


@needs_kubectl
def test_the_runner_role_lets_the_train_step_manage_only_its_trainjobs(rendered):
    role = next(o for o in rendered["kubeflow"] if o["kind"] == "Role")
    rules = {tuple(r["resources"]): r for r in role["rules"]}
    assert rules[("trainjobs",)]["apiGroups"] == ["trainer.kubeflow.org"]
    assert rules[("trainjobs",)]["verbs"] == ["create", "get", "delete"]
    assert rules[("pods",)]["verbs"] == ["list"]


@needs_kubectl
def test_standalone_overlay_runs_seaweedfs_with_storage_probes_and_the_bucket(rendered):
    objects = {(o["kind"], o["metadata"]["name"]): o for o in rendered["standalone-seaweedfs"]}
    for key in [("Deployment", "videogen-seaweedfs"), ("PersistentVolumeClaim", "videogen-seaweedfs"),
                ("Service", "videogen-seaweedfs"), ("NetworkPolicy", "videogen-seaweedfs")]:
        assert key in objects, f"missing {key}"
    assert not [k for k in objects if "minio" in k[1]], "no MinIO objects are left"
    pod = objects[("Deployment", "videogen-seaweedfs")]["spec"]["template"]["spec"]
    server = pod["containers"][0]
    image, tag = server["image"].rsplit(":", 1)
    # KFP 2.17.0's own pin (manifests/kustomize/third-party/seaweedfs/base/seaweedfs/seaweedfs-deployment.yaml).
    assert (image, tag) == ("ghcr.io/chrislusf/seaweedfs", "4.34"), server["image"]
    args = server["args"]
    assert "server" in args and "-s3" in args and "-s3.port=8333" in args and "-dir=/data" in args
    assert "-s3.config=/run/seaweedfs/s3.json" in args
    for probe in ("livenessProbe", "readinessProbe"):
        assert server[probe]["httpGet"] == {"path": "/status", "port": "s3"}, probe
    assert server["ports"] == [{"name": "s3", "containerPort": 8333}]
    # The bucket (the base's VIDEOGEN_BUCKET) is created by the pod before it counts as started.
    assert "s3.bucket.create" in " ".join(server["lifecycle"]["postStart"]["exec"]["command"])
    assert {"name": "VIDEOGEN_BUCKET", "valueFrom": {"configMapKeyRef": {"name": "videogen-config",
                                                                       "key": "VIDEOGEN_BUCKET"}}} in server["env"]
    # Credentials reach SeaweedFS as mounted files (an identity file written by the init container), never as env.
    init = pod["initContainers"][0]
    assert init["image"] == server["image"]
    for container in (server, init):
        for env in container.get("env", []):
            assert "secretKeyRef" not in env.get("valueFrom", {}), env
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["credentials"]["secret"]["secretName"] == "videogen-s3-credentials"
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "videogen-seaweedfs"
    service = objects[("Service", "videogen-seaweedfs")]["spec"]
    assert service["ports"] == [{"name": "s3", "port": 8333, "targetPort": "s3"}]
    ingress = objects[("NetworkPolicy", "videogen-seaweedfs")]["spec"]["ingress"]
    assert ingress == [{"from": [{"podSelector": {}}], "ports": [{"port": 8333, "protocol": "TCP"}]}]
    config = objects[("ConfigMap", "videogen-config")]["data"]
    assert config["AWS_ENDPOINT_URL_S3"] == "http://videogen-seaweedfs:8333"


@needs_kubectl
def test_default_kubeflow_overlay_leaves_the_kfp_artifact_secret_to_kfp(rendered):
    """KFP's profile controller creates and owns mlpipeline-minio-artifact in profile namespaces: the default
    overlay must not apply its own (it would overwrite the keys the controller manages); the Role still names it."""
    secrets = {o["metadata"]["name"] for o in rendered["kubeflow"] if o["kind"] == "Secret"}
    assert secrets == {"videogen-s3-credentials"}
    role = next(o for o in rendered["kubeflow"] if o["kind"] == "Role")
    assert any("mlpipeline-minio-artifact" in rule.get("resourceNames", []) for rule in role["rules"])


@needs_kubectl
def test_opt_in_overlay_creates_the_kfp_artifact_secret_from_the_same_credentials(rendered):
    secrets = {o["metadata"]["name"]: o for o in rendered["kubeflow-with-secret"] if o["kind"] == "Secret"}
    assert set(secrets) == {"mlpipeline-minio-artifact", "videogen-s3-credentials"}
    kfp, ours = secrets["mlpipeline-minio-artifact"]["data"], secrets["videogen-s3-credentials"]["data"]
    assert set(kfp) == {"accesskey", "secretkey"}
    assert kfp == ours
    assert base64.b64decode(kfp["accesskey"]).decode() == _example_secret_values()["accesskey"]
    assert secrets["mlpipeline-minio-artifact"]["metadata"]["namespace"] == "kubeflow-user-example-com"
    # Otherwise the same objects as the default overlay.
    names = {(o["kind"], o["metadata"]["name"]) for o in rendered["kubeflow-with-secret"]}
    assert names - {("Secret", "mlpipeline-minio-artifact")} == {
        (o["kind"], o["metadata"]["name"]) for o in rendered["kubeflow"]}


@needs_kubectl
def test_kubeflow_overlay_rbac_is_limited_to_named_objects(rendered):
    roles = [o for o in rendered["kubeflow"] if o["kind"] in {"Role", "ClusterRole"}]
    assert [r["kind"] for r in roles] == ["Role"]
    for rule in roles[0]["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        if set(rule["resources"]) & {"secrets", "configmaps"}:
            assert rule["verbs"] == ["get"] and rule.get("resourceNames"), rule


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_namespace_override_used_by_make_deploy_reaches_every_object(manifests_copy, overlay):
    """`make deploy NAMESPACE=...` applies a throwaway kustomization in manifests/.deploy-XXXX (kustomize wants a
    relative path to the overlay) that sets the namespace on the overlay."""
    wrapper = manifests_copy / f".deploy-{overlay}"
    wrapper.mkdir()
    (wrapper / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: team-a\n"
        f"resources:\n  - ../overlays/{overlay}\n")
    objects = _render(wrapper)
    assert {o["metadata"]["namespace"] for o in objects} == {"team-a"}
    for binding in (o for o in objects if o["kind"] == "RoleBinding"):
        assert {s["namespace"] for s in binding["subjects"]} == {"team-a"}


def test_no_real_secret_is_committed():
    values = _example_secret_values()
    assert set(values) == {"accesskey", "secretkey"}
    assert all(v.startswith("CHANGE_ME") for v in values.values()), values
    ignored = subprocess.run(["git", "check-ignore", "-q", "manifests/base/secret.env"], cwd=ROOT)
    assert ignored.returncode == 0, "manifests/base/secret.env must be git-ignored"
    tracked = subprocess.run(["git", "ls-files", "manifests"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "secret.env\n" not in tracked.replace("secret.env.example", "")
    for path in MANIFESTS.rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "Secret":
                assert not doc.get("stringData"), path
                assert all(v == "" for v in (doc.get("data") or {}).values()), f"{path} holds secret data"


def _seaweedfs_pod_spec() -> dict:
    path = MANIFESTS / "overlays" / "standalone-seaweedfs" / "seaweedfs.yaml"
    return next(d for d in yaml.safe_load_all(path.read_text()) if d["kind"] == "Deployment")["spec"]["template"]["spec"]


@pytest.mark.parametrize(("accesskey", "secretkey", "ok"), [
    ("videogen", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY=", True),
    ("CHANGE_ME_ACCESS_KEY", "CHANGE_ME_SECRET_KEY", True),
    ("videogen", 'bad"quote', False),
    ("videogen", "back\\slash", False),
    ("", "secret123", False),
])
def test_seaweedfs_init_container_writes_a_valid_identity_file(tmp_path, accesskey, secretkey, ok):
    """The init container's script (run here with the local sh) turns the mounted Secret files into SeaweedFS's
    -s3.config JSON, and refuses values that would break the JSON."""
    pod = _seaweedfs_pod_spec()
    init = pod["initContainers"][0]
    assert init["command"] == ["/bin/sh", "-ec"]
    secrets, config = tmp_path / "secrets", tmp_path / "config"
    secrets.mkdir()
    config.mkdir()
    (secrets / "accesskey").write_text(accesskey)
    (secrets / "secretkey").write_text(secretkey)
    script = init["args"][0].replace("/run/secrets/videogen", str(secrets)).replace("/run/seaweedfs", str(config))
    out = subprocess.run(["sh", "-ec", script], capture_output=True, text=True, timeout=30)
    assert (out.returncode == 0) == ok, out.stderr
    if ok:
        identities = json.loads((config / "s3.json").read_text())["identities"]
        assert identities[0]["credentials"] == [{"accessKey": accesskey, "secretKey": secretkey}]
        assert "Admin" in identities[0]["actions"]
        assert (config / "s3.json").stat().st_mode & 0o077 == 0
    else:
        assert len(out.stderr.strip().splitlines()) == 1 and not (config / "s3.json").exists()
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert "/run/seaweedfs" in mounts and "-s3.config=/run/seaweedfs/s3.json" in pod["containers"][0]["args"]


def test_seaweedfs_bucket_script_is_valid_sh():
    command = _seaweedfs_pod_spec()["containers"][0]["lifecycle"]["postStart"]["exec"]["command"]
    assert command[:2] == ["/bin/sh", "-ec"]
    assert subprocess.run(["sh", "-n", "-c", command[2]], capture_output=True, timeout=30).returncode == 0
