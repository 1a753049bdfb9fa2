"""The machine a result was computed on: the facts that decide whether training reproduces byte for byte.

The dataset, the ONNX conversion and the feature extraction reproduce across machines; a trained
head does so only on the same torch build, the same CPU code path and the same thread count
(docs/reproducibility.md). ``machine_record()`` collects those facts so that a manifest can
record them next to a result: two results whose fingerprints agree on ``training_key`` are expected
to be byte-identical; two that differ there are not, and a small difference is then no bug.
"""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

# environment variables that change which CPU kernels run or how many threads they use
DISPATCH_ENV = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA",
                "DNNL_MAX_CPU_ISA", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def cpu_info(cpuinfo: str | Path = "/proc/cpuinfo") -> dict:
    """CPU model and the SIMD flags that decide kernel dispatch (x86: avx2, avx512*, amx*)."""
    model, flags = "", []
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model Name") and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = value.split()
    simd = sorted(f for f in flags if f in ("sse4_2", "avx", "avx2", "fma", "f16c", "asimd", "sve")
                  or f.startswith(("avx512", "amx", "avx_vnni")))
    return {"model": model or platform.processor() or platform.machine(), "simd_flags": simd, "logical_cpus": os.cpu_count()}


def blas_info() -> list[dict]:
    """The BLAS / OpenMP libraries loaded in this process (threadpoolctl), without file paths."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("user_api", "internal_api", "version", "num_threads", "threading_layer", "architecture")
    return [{k: lib[k] for k in keep if k in lib} for lib in threadpool_info()]


def torch_libraries(config: str) -> list[str]:
    """The MKL / oneDNN / OpenMP lines of ``torch.__config__.show()`` (linked into libtorch, so
    threadpoolctl does not list them)."""
    keep = ("Math Kernel Library", "MKL-DNN", "oneDNN", "OpenMP", "OpenBLAS", "CPU capability")
    return [line.strip(" -\t") for line in config.splitlines() if any(k in line for k in keep)]


def machine_record() -> dict:
    """Versions, CPU and dispatch of this process, JSON-serialisable. ``training_key`` holds the
    fields that must agree for a trained head to reproduce byte for byte."""
    import numpy as np

    fp: dict = {"python": sys.version.split()[0], "platform": platform.platform(),
                "machine": platform.machine(), "numpy": np.__version__, "cpu": cpu_info(),
                "env": {k: os.environ[k] for k in DISPATCH_ENV if k in os.environ}}
    try:
        import torch
        fp["torch"] = {"version": torch.__version__,
                       "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                       "num_threads": torch.get_num_threads(),
                       "num_interop_threads": torch.get_num_interop_threads(),
                       "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
                       "mkldnn_enabled": bool(torch.backends.mkldnn.enabled),
                       "mkl_available": torch.backends.mkl.is_available(),
                       "cuda": torch.version.cuda,
                       "libraries": torch_libraries(torch.__config__.show())}
    except ImportError:
        fp["torch"] = None
    try:
        import onnxruntime
        fp["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        fp["onnxruntime"] = None
    fp["blas"] = blas_info()  # after the imports above: threadpoolctl sees only loaded libraries
    torch_fp = fp["torch"] or {}
    fp["training_key"] = {"torch": torch_fp.get("version"),
                          "cpu_capability": torch_fp.get("cpu_capability"),
                          "num_threads": torch_fp.get("num_threads"),
                          "mkl_cbwr": fp["env"].get("MKL_CBWR"),
                          "onednn_max_cpu_isa": fp["env"].get("ONEDNN_MAX_CPU_ISA")
                          or fp["env"].get("DNNL_MAX_CPU_ISA")}
    return fp


def what_bytes_depend_on() -> dict:
    """The short record a training manifest keeps: ``training_key`` plus the CPU model and SIMD
    flags (results agree byte for byte only where these agree; docs/reproducibility.md)."""
    fp = machine_record()
    return {**fp["training_key"], "cpu": fp["cpu"]["model"], "simd": fp["cpu"]["simd_flags"]}


if __name__ == "__main__":
    import json
    print(json.dumps(machine_record(), indent=2))
