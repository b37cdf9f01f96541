"""What the machine can do, and the settings that depend on it: device, bfloat16, XLA, the training devices.

One vocabulary for precision: ``"float32"`` or ``"bfloat16"``. Training maps ``"bfloat16"`` to Keras' mixed policy
(float32 variables, bf16 compute) in :func:`keras_training_policy`; generation builds its own bf16 inference copy
(``videogen.generator_io.inference_copy``). Parsing a setting needs no TensorFlow; detecting devices imports it.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import subprocess
from typing import Any

from videogen.errors import InputError

log = logging.getLogger("videogen.hardware")

def nvidia_smi_gpus() -> list[str]:
    """Names of the GPUs nvidia-smi sees (empty without the tool or a driver)."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def cpuinfo_field(prefix: str) -> str | None:
    """The value of the first /proc/cpuinfo line starting with ``prefix`` (e.g. "model name"), or None."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


# oneDNN's ISA names (ONEDNN_MAX_CPU_ISA, oneDNN docs "CPU Dispatcher Control") below the first one with native bf16
# math (AVX512_CORE_BF16); a cap at one of these makes TensorFlow's convolutions run without bf16 instructions.
_ONEDNN_ISAS_WITHOUT_BF16 = ("sse41", "avx", "avx2", "avx2_vnni", "avx2_vnni_2", "avx512_core", "avx512_core_vnni")


def onednn_isa_cap() -> str | None:
    """The instruction-set cap set for oneDNN (``ONEDNN_MAX_CPU_ISA``, or the older ``DNNL_MAX_CPU_ISA``), lower case;
    None when unset or ``default``."""
    value = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().lower()
    return value if value and value != "default" else None


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    return set((cpuinfo_field("flags") or "").split())


def cpu_has_bf16() -> bool:
    """The CPU computes bfloat16 natively (AVX512_BF16 or AMX) and oneDNN is allowed to use it: with
    ``ONEDNN_MAX_CPU_ISA=AVX2`` (how an AVX2-only CPU is reproduced on a newer one) this is False."""
    if onednn_isa_cap() in _ONEDNN_ISAS_WITHOUT_BF16:
        return False
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def tensorflow_onednn_default() -> bool:
    """Whether TensorFlow's Linux wheel turns its oneDNN kernels on by itself on this CPU (``DefaultOneDnnPolicy`` in
    tensorflow/core/util/port.cc: AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX). With a oneDNN ISA cap at AVX2 or below
    (reproducing an AVX2-only CPU) the answer is that CPU's: off."""
    if onednn_isa_cap() in ("sse41", "avx", "avx2"):
        return False
    return bool(cpu_flags() & {"avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"})


def cpu_kind() -> str:
    """``"bf16"``, ``"avx512"``, ``"avx2"`` or ``"other"``: the widest math TensorFlow's convolutions get here (after
    any oneDNN ISA cap). Benchmarks file their figures under it."""
    if cpu_has_bf16():
        return "bf16"
    cap, flags = onednn_isa_cap(), cpu_flags()
    if "avx512f" in flags and (cap is None or cap.startswith("avx512")):
        return "avx512"
    if "avx2" in flags and (cap is None or cap.startswith(("avx2", "avx512"))):
        return "avx2"
    return "other"


def gpu_supports_bf16() -> bool:
    """Every visible GPU has compute capability 8.0 or newer (and there is one)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for device in gpus:
        capability = tf.config.experimental.get_device_details(device).get("compute_capability", (0, 0))
        if tuple(capability) < (8, 0):
            return False
    return bool(gpus)


def _gpu_description(gpus: list) -> str:
    import tensorflow as tf

    try:
        details = tf.config.experimental.get_device_details(gpus[0])
        name = details.get("device_name", gpus[0].name)
        cc = details.get("compute_capability")
        if cc:
            name = f"{name} (compute capability {cc[0]}.{cc[1]})"
    except Exception:  # details are informational only
        name = gpus[0].name
    return f"GPU: {name}" + (f" (+{len(gpus) - 1} more)" if len(gpus) > 1 else "")


def detect_device() -> tuple[str, bool]:
    """``(description, on_gpu)`` of the device TensorFlow runs on.

    A GPU that TensorFlow cannot use (e.g. a K80, compute capability 3.7, with TensorFlow's CUDA 12 build, or a CPU-only
    TensorFlow on a GPU node) is reported with a warning and the work falls back to the CPU instead of failing.
    """
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return _gpu_description(gpus), True
    seen = nvidia_smi_gpus()
    if seen:
        log.warning("GPU present (%s) but TensorFlow cannot use it (CPU-only build, or a GPU too old for its CUDA "
                    "build, e.g. a K80 with CUDA 12); running on the CPU", ", ".join(seen))
    cpu = cpuinfo_field("model name") or platform.processor() or "CPU"
    return f"CPU: {cpu}, {os.cpu_count()} cores", False


def resolve_precision(setting: Any, on_gpu: bool, *, gpu_native: bool | None = None, training: bool = False) -> str:
    """``"float32"`` or ``"bfloat16"`` for a precision setting (auto, float32/fp32, bfloat16/bf16/mixed_bfloat16).

    ``auto`` is bfloat16 where the hardware computes it natively (faster at the same quality, docs/quality.md):
    on a GPU when ``gpu_native`` says so (default: any GPU), on a CPU with AVX512_BF16 or AMX, except for
    ``training`` on a CPU with AMX, where mixed-bfloat16 training measured 1.3-1.6x slower than float32 at 64, 128
    and 256 px (a 2-core Xeon with AMX, TensorFlow 2.21, also with oneDNN capped below AMX) while a CPU with
    AVX512_BF16 and no AMX trained 1.3-1.7x faster in it (a 2-core EPYC; docs/performance.md).
    """
    value = str(setting).strip().lower()
    if value in ("auto", ""):
        if on_gpu:
            return "bfloat16" if gpu_native is None or gpu_native else "float32"
        if training and "amx_bf16" in cpu_flags():
            return "float32"
        return "bfloat16" if cpu_has_bf16() else "float32"
    if value in ("float32", "fp32"):
        return "float32"
    if value in ("bfloat16", "bf16", "mixed_bfloat16"):
        if not on_gpu and cpu_kind() not in ("bf16", "avx512"):
            # oneDNN has bf16 convolutions on AVX-512 and newer only: on an AVX2 CPU they fail to build at run time.
            log.warning("precision bfloat16 needs a CPU with AVX-512 (native bf16: AVX512_BF16 or AMX); this one has "
                        "neither: using float32")
            return "float32"
        return "bfloat16"
    raise InputError(f"precision must be auto, float32 or bfloat16, got {setting!r}")


def keras_training_policy(precision: str) -> str:
    """The Keras dtype policy that trains at ``precision``: bf16 compute keeps float32 variables and losses."""
    return "mixed_bfloat16" if precision == "bfloat16" else "float32"


def resolve_jit(setting: Any, on_gpu: bool) -> bool:
    """XLA on or off for a jit_compile setting: ``auto`` is on for GPUs (fused element-wise ops after each conv) and
    off for CPUs, where it was slower."""
    value = str(setting).strip().lower()
    if value in ("auto", ""):
        return on_gpu
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise InputError(f"jit_compile must be auto, true or false, got {setting!r}")


# ------------------------------------------------------------------------------------------------- training devices
def parse_devices(value: Any) -> tuple[str, Any]:
    """Read the ``devices`` setting without TensorFlow: ``("auto", None)``, ``("single", None)``,
    ``("count", (kind, n or None for all))`` or ``("names", [device names])``. A list or tuple of names also works."""
    if isinstance(value, (list, tuple)):
        names = [str(v).strip() for v in value if str(v).strip()]
        if names:
            return "names", names
    else:
        text = str(value).strip()
        low = text.lower()
        if low == "auto":
            return "auto", None
        if low in ("single", "default", "one"):
            return "single", None
        if low == "multiworker":
            return "multiworker", None
        if low in ("gpu", "gpus", "all"):
            return "count", ("GPU", None)
        match = re.fullmatch(r"(cpu|gpu):(\d+)", low)
        if match and int(match.group(2)) >= 1:
            return "count", (match.group(1).upper(), int(match.group(2)))
        if text.startswith("/"):
            return "names", [part.strip() for part in text.split(",") if part.strip()]
    raise InputError(f"invalid train setting: devices must be auto, single, multiworker, gpu, gpu:N, cpu:N (N >= 1) "
                     f"or comma-separated device names starting with /, got {value!r}")


def _auto_devices(batch_size: int) -> list[str] | None:
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if len(gpus) > batch_size:
        log.warning("batch size %d is smaller than the %d GPUs: training on %d of them", batch_size, len(gpus),
                    batch_size)
        gpus = gpus[:batch_size]
    return gpus if len(gpus) > 1 else None


def resolve_devices(value: Any, batch_size: int) -> list[str] | None:
    """Device names for MirroredStrategy, or None for the plain single-device step (no strategy). ``multiworker``
    is not a device list (the caller builds MultiWorkerMirroredStrategy): None here."""
    import tensorflow as tf

    mode, arg = parse_devices(value)
    if mode in ("single", "multiworker"):
        return None
    if mode == "auto":
        return _auto_devices(batch_size)
    if mode == "count":
        kind, count = arg
        available = [d.name for d in tf.config.list_logical_devices(kind)]
        count = count or len(available)
        if not available or count > len(available):
            raise InputError(f"invalid train setting: devices={value!r} asks for {count or 1} {kind} devices, but "
                             f"{len(available)} are visible")
        names = available[:count]
    else:
        names = arg
    if batch_size < len(names):
        raise InputError(f"invalid train setting: batch_size {batch_size} is smaller than the {len(names)} devices of "
                         f"devices={value!r} (the batch is the global batch, split across them)")
    return names
