"""What the CPU can do, as videogen reads it, including a oneDNN instruction-set cap (how an AVX2-only CPU is
reproduced on a newer one)."""

import logging

import pytest

from videogen import hardware


@pytest.fixture
def avx2_cap(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"})


def test_native_bf16_cpu_trains_and_generates_in_bfloat16_by_default(monkeypatch):
    """auto = bfloat16 on a CPU with AVX512_BF16 and no cap; the kind names it."""
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "fma", "avx512f", "avx512_bf16"})
    assert hardware.cpu_kind() == "bf16"
    assert hardware.resolve_precision("auto", on_gpu=False) == "bfloat16"
    assert hardware.resolve_precision("auto", on_gpu=False, training=True) == "bfloat16"


def test_a_cpu_with_amx_trains_in_float32_and_generates_in_bfloat16_by_default(monkeypatch):
    """auto on a CPU with AMX: float32 for training (mixed bfloat16 measured slower there), bfloat16 for generation;
    an explicit bfloat16 is kept, and the train setting resolves the same way."""
    from videogen.train.settings import resolve_precision

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16"})
    assert hardware.cpu_kind() == "bf16"
    assert hardware.resolve_precision("auto", on_gpu=False) == "bfloat16"
    assert hardware.resolve_precision("auto", on_gpu=False, training=True) == "float32"
    assert resolve_precision("auto", on_gpu=False) == "float32"
    assert resolve_precision("bfloat16", on_gpu=False) == "bfloat16"


def test_onednn_cap_at_avx2_makes_the_cpu_an_avx2_one(avx2_cap):
    """ONEDNN_MAX_CPU_ISA=AVX2 on a bf16 CPU: no bf16, kind avx2, auto = float32."""
    assert hardware.onednn_isa_cap() == "avx2"
    assert not hardware.cpu_has_bf16()
    assert hardware.cpu_kind() == "avx2"
    assert hardware.resolve_precision("auto", on_gpu=False) == "float32"


def test_asking_for_bfloat16_on_an_avx2_cpu_falls_back_to_float32_with_a_warning(avx2_cap, caplog):
    """oneDNN has no bf16 convolution on AVX2 (it fails when the step first runs), so an explicit bfloat16 there
    runs in float32 and says so; on a GPU the setting is kept."""
    with caplog.at_level(logging.WARNING, logger="videogen.hardware"):
        assert hardware.resolve_precision("bfloat16", on_gpu=False) == "float32"
    assert "using float32" in caplog.text
    assert hardware.resolve_precision("bfloat16", on_gpu=True) == "bfloat16"


def test_avx512_without_bf16_keeps_an_explicit_bfloat16(monkeypatch):
    """AVX-512 without native bf16: auto stays float32, an explicit bfloat16 is kept (oneDNN emulates it there)."""
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "fma", "avx512f"})
    assert hardware.cpu_kind() == "avx512"
    assert hardware.resolve_precision("auto", on_gpu=False) == "float32"
    assert hardware.resolve_precision("bfloat16", on_gpu=False) == "bfloat16"


def test_tensorflow_turns_onednn_on_by_itself_only_on_cpus_with_neural_network_features(monkeypatch):
    """TensorFlow's own default (port.cc): on with AVX512_BF16/VNNI/AMX, off on an AVX2-only CPU or under an AVX2 cap."""
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "fma", "avx512f", "avx512_vnni"})
    assert hardware.tensorflow_onednn_default()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not hardware.tensorflow_onednn_default()
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "fma"})
    assert not hardware.tensorflow_onednn_default()


ONEDNN_CHECK = ("import os, videogen, tensorflow as tf; from tensorflow.python.util import _pywrap_util_port as p; "
                "tf.constant(1.0) + 1.0; print(os.environ['TF_ENABLE_ONEDNN_OPTS'], videogen.ONEDNN_DEFAULTED, "
                "p.IsMklEnabled())")


def test_importing_videogen_turns_tensorflows_onednn_kernels_on_unless_the_user_chose(tmp_path):
    """Unset: videogen sets TF_ENABLE_ONEDNN_OPTS=1 before TensorFlow loads and TensorFlow runs oneDNN kernels (on an
    AVX2-only CPU it would otherwise use its 2x slower Eigen ones); a user's 0 is kept and TensorFlow obeys it."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    unset = subprocess.run([sys.executable, "-c", ONEDNN_CHECK], env=env, capture_output=True, text=True,
                           timeout=300, cwd=tmp_path)
    assert unset.stdout.split() == ["1", "True", "True"], unset.stderr[-2000:]
    chosen = subprocess.run([sys.executable, "-c", ONEDNN_CHECK], env={**env, "TF_ENABLE_ONEDNN_OPTS": "0"},
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert chosen.stdout.split() == ["0", "False", "False"], chosen.stderr[-2000:]
