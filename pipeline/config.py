"""Cluster settings that are fixed when the pipeline is compiled: images, GPU node pools, object store, secrets.

Reads environment variables (set by the Makefile from ``REGISTRY``, ``TAG``, ``TRAIN_NODE_SELECTOR``, ...) and CLI
flags; writes nothing. The pipeline file takes one :class:`ClusterConfig` and uses nothing else, so every cluster-specific
literal lives here, but the default registry and tag: the components bake the default image into their decorators and
hold them (``components._base``), and this module reads them from there, so imports run pipeline -> components only.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field

from components._base import DEFAULT_IMAGE, DEFAULT_REGISTRY, DEFAULT_TAG
from videogen.errors import InputError

GKE_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"


def parse_node_selector(text: str) -> tuple[str, str]:
    """Parse ``KEY=VALUE`` (e.g. ``cloud.google.com/gke-accelerator=nvidia-tesla-v100``)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise InputError(f"node selector {text!r} is not KEY=VALUE: pass e.g. {GKE_ACCELERATOR_LABEL}=nvidia-tesla-v100")
    return key.strip(), value.strip()


@dataclass(frozen=True)
class ClusterConfig:
    """Everything about the cluster that ends up in the compiled pipeline YAML (never a secret value)."""

    image: str = DEFAULT_IMAGE
    """CPU image: prepare, encode, evaluate."""
    gpu_image: str = f"{DEFAULT_REGISTRY}/videogen-gpu:{DEFAULT_TAG}"
    """CUDA 12 TensorFlow image: train (V100 and newer)."""
    generate_image: str = f"{DEFAULT_REGISTRY}/videogen-gpu-k80:{DEFAULT_TAG}"
    """Image of the generate step: CUDA 11.8 / TF 2.14, the last line with K80 kernels (docs/cluster.md: The K80 pool)."""
    train_node_selector: tuple[str, str] | None = (GKE_ACCELERATOR_LABEL, "nvidia-tesla-v100")
    generate_node_selector: tuple[str, str] | None = (GKE_ACCELERATOR_LABEL, "nvidia-tesla-k80")
    gpu_resource: str = "nvidia.com/gpu"
    """Accelerator type: the open-source KFP backend uses it as the literal resource name."""
    train_gpus: int = 1
    generate_gpus: int = 1
    gpu_toleration_key: str = "nvidia.com/gpu"
    s3_endpoint: str = "http://minio-service.kubeflow:9000"
    """Object-store endpoint for the stages that read or write object storage directly (empty: leave env alone)."""
    config_map: str = "videogen-config"
    """ConfigMap installed by ``make deploy`` (manifests/base): its ``AWS_ENDPOINT_URL_S3`` and ``AWS_REGION`` reach the
    storage stages as environment variables and win over ``s3_endpoint``; optional, so a cluster without our
    manifests runs with the compiled-in endpoint."""
    s3_secret: str = "mlpipeline-minio-artifact"
    s3_secret_access_key_field: str = "accesskey"
    s3_secret_secret_key_field: str = "secretkey"
    run_as_user: int = 1000
    run_as_group: int = 1000
    retries: dict = field(default_factory=lambda: {
        "prepare": 0, "train": 3, "generate": 2, "encode": 1, "evaluate": 1})
    """set_retry per stage: container failures (error exit, OOM kill) are retried with backoff; train and generate
    resume from their checkpoints. Prepare gets none: its failures are almost always the input (a retry only delays
    the one-line error), and its download is already retried inside videogen.storage. A deleted pod (node loss) is
    retried only by the cluster's Argo retry policy."""
    timeouts_s: dict = field(default_factory=lambda: {
        "prepare": 2 * 3600, "train": 48 * 3600, "generate": 6 * 3600, "encode": 2 * 3600, "evaluate": 2 * 3600})
    cpu_stage_resources: dict = field(default_factory=lambda: {
        "cpu_request": "1", "cpu_limit": "4", "memory_request": "2Gi", "memory_limit": "8Gi"})
    gpu_stage_resources: dict = field(default_factory=lambda: {
        "cpu_request": "4", "cpu_limit": "8", "memory_request": "16Gi", "memory_limit": "32Gi"})
    prepare_parallelism: int = 8
    """How many videos of a run are prepared at once (the ParallelFor's parallelism); with per_video_models, how many
    clips are prepared, trained, generated, encoded and evaluated at once."""
    kubernetes: bool = True
    """False for kfp.local runs: no Kubernetes settings, no secret env, no endpoint override."""
    trainjob_runtime: str = "videogen-tensorflow"
    """ClusterTrainingRuntime of multi-node training (train_nodes > 1), installed from manifests/trainer."""

    @classmethod
    def from_env(cls, env: dict | None = None, **overrides) -> ClusterConfig:
        """Defaults, then ``VIDEOGEN_*`` environment variables, then explicit ``overrides`` (None values ignored)."""
        env = os.environ if env is None else env
        values: dict = {}
        registry = env.get("VIDEOGEN_REGISTRY") or DEFAULT_REGISTRY
        tag = env.get("VIDEOGEN_TAG") or DEFAULT_TAG
        values["image"] = env.get("VIDEOGEN_IMAGE") or f"{registry}/videogen:{tag}"
        values["gpu_image"] = env.get("VIDEOGEN_GPU_IMAGE") or f"{registry}/videogen-gpu:{tag}"
        values["generate_image"] = env.get("VIDEOGEN_GENERATE_IMAGE") or f"{registry}/videogen-gpu-k80:{tag}"
        for name in ("train_node_selector", "generate_node_selector"):
            text = env.get(f"VIDEOGEN_{name.upper()}")
            if text is not None:
                values[name] = parse_node_selector(text) if text.strip() else None
        if env.get("VIDEOGEN_TRAIN_GPUS"):
            try:
                values["train_gpus"] = int(env["VIDEOGEN_TRAIN_GPUS"])
            except ValueError:
                raise InputError(f"TRAIN_GPUS must be a whole number, got {env['VIDEOGEN_TRAIN_GPUS']!r}") from None
        if "VIDEOGEN_S3_ENDPOINT" in env:
            values["s3_endpoint"] = env["VIDEOGEN_S3_ENDPOINT"]
        if env.get("VIDEOGEN_S3_SECRET"):
            values["s3_secret"] = env["VIDEOGEN_S3_SECRET"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def trainjob_launch(self) -> str:
        """The train step's settings for the nodes of a TrainJob (``videogen.trainjob.LaunchConfig``) as JSON: each
        node gets the train step's image, GPUs, resources, node pool and GPU toleration."""
        return json.dumps({
            "image": self.gpu_image, "runtime": self.trainjob_runtime, "gpus_per_node": self.train_gpus,
            "gpu_resource": self.gpu_resource, "resources": self.gpu_stage_resources,
            "node_selector": dict([self.train_node_selector]) if self.train_node_selector else {},
            "toleration_key": self.gpu_toleration_key}, sort_keys=True)

    def for_local(self) -> ClusterConfig:
        """The same pipeline for kfp.local: no Kubernetes settings; the caller's environment supplies S3 settings."""
        return dataclasses.replace(self, kubernetes=False, s3_endpoint="")
