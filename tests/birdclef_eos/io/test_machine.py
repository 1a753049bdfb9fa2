"""birdclef_eos/io/machine.py: what a manifest records about the machine a result was computed on."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from birdclef_eos.io import machine as fingerprint

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw amx_tile avx_vnni
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw amx_tile avx_vnni
"""


def test_cpu_info_reads_model_and_simd_flags(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    info = fingerprint.cpu_info(path)
    assert info["model"] == "Intel(R) Xeon(R) Platinum 8480+"
    assert info["simd_flags"] == ["amx_tile", "avx", "avx2", "avx512bw", "avx512f", "avx_vnni", "fma", "sse4_2"]


def test_cpu_info_without_proc_cpuinfo(tmp_path):
    info = fingerprint.cpu_info(tmp_path / "missing")
    assert info["model"] and info["simd_flags"] == []


def test_machine_record_is_json_and_names_the_training_key():
    fp = json.loads(json.dumps(fingerprint.machine_record()))
    assert fp["torch"]["version"] == torch.__version__
    assert fp["torch"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert fp["torch"]["num_threads"] == torch.get_num_threads()
    assert fp["training_key"] == {"torch": torch.__version__,
                                  "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                                  "num_threads": torch.get_num_threads(),
                                  "mkl_cbwr": os.environ.get("MKL_CBWR"),
                                  "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA")
                                  or os.environ.get("DNNL_MAX_CPU_ISA")}
    assert any(lib.get("user_api") == "blas" for lib in fp["blas"])  # numpy's BLAS, via threadpoolctl
    assert "/" not in json.dumps(fp["blas"])  # no file paths of the machine
    assert "onnxruntime" in fp


def test_fingerprint_follows_the_dispatch_environment():
    """ATEN_CPU_CAPABILITY=default is honoured on any x86 CPU and shows in the fingerprint."""
    code = ("import json; from birdclef_eos.io.machine import machine_record as f; "
            "print(json.dumps(f()))")
    env = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         cwd=fingerprint.__file__.rsplit("/birdclef_eos/", 1)[0])
    fp = json.loads(out.stdout)
    assert fp["torch"]["cpu_capability"] == "DEFAULT"
    assert fp["env"] == {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}
    assert fp["training_key"]["cpu_capability"] == "DEFAULT"
    assert fp["training_key"]["mkl_cbwr"] == "COMPATIBLE"
