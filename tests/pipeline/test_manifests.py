"""The kustomize overlays in manifests/: they render, validate against the Kubernetes schemas, and are hardened.

Rendering uses the real `kubectl kustomize` on a copy of manifests/ whose secret.env is the committed example;
validation uses kubernetes-validate's bundled JSON schemas (offline). No cluster is involved.
"""

from __future__ import annotations

import base64
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


def test_both_overlays_exist():
    assert {"kubeflow", "standalone-minio"} <= set(OVERLAYS)


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
def test_standalone_overlay_runs_minio_with_storage_and_creates_the_bucket(rendered):
    objects = {(o["kind"], o["metadata"]["name"]): o for o in rendered["standalone-minio"]}
    for key in [("Deployment", "videogen-minio"), ("PersistentVolumeClaim", "videogen-minio"),
                ("Service", "videogen-minio"), ("Job", "videogen-minio-create-bucket")]:
        assert key in objects, f"missing {key}"
    minio = objects[("Deployment", "videogen-minio")]["spec"]["template"]["spec"]["containers"][0]
    assert minio["livenessProbe"]["httpGet"]["path"] == "/minio/health/live"
    assert minio["readinessProbe"]["httpGet"]["path"] == "/minio/health/ready"
    config = objects[("ConfigMap", "videogen-config")]["data"]
    assert config["AWS_ENDPOINT_URL_S3"] == "http://videogen-minio:9000"
    job_args = objects[("Job", "videogen-minio-create-bucket")]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert job_args[:2] == ["mb", "--ignore-existing"]


@needs_kubectl
def test_kubeflow_overlay_creates_the_kfp_artifact_secret_from_the_same_credentials(rendered):
    secrets = {o["metadata"]["name"]: o for o in rendered["kubeflow"] if o["kind"] == "Secret"}
    assert "mlpipeline-minio-artifact" in secrets
    kfp, ours = secrets["mlpipeline-minio-artifact"]["data"], secrets["videogen-s3-credentials"]["data"]
    assert set(kfp) == {"accesskey", "secretkey"}
    assert kfp == ours
    assert base64.b64decode(kfp["accesskey"]).decode() == _example_secret_values()["accesskey"]


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
