"""The context every figure carries: software versions, the device, its clocks and the commit."""

from __future__ import annotations

import ctypes
import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

import torch

from measure.machine import nvml

ROOT = Path(__file__).resolve().parents[2]


def commit() -> str:
    """HEAD's hash, with '+dirty' when the working tree differs; 'unknown' outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty.strip() else "")


def cusparselt_version():
    """torch's compile-time cuSPARSELt version (it says 800 even when 0.10.0 is loaded)."""
    try:
        return torch.backends.cusparselt.version()
    except (AttributeError, RuntimeError):
        return None


_PROPERTIES = (0, 1, 2)  # libraryPropertyType: MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL


def cusparselt_runtime_version() -> str | None:
    """The version the loaded libcusparseLt reports (cusparseLtGetProperty), e.g. "0.8.0";
    None where no such library is loaded in this process or it cannot be asked."""
    path = (
        next(
            (
                line.split()[-1]
                for line in Path("/proc/self/maps").read_text().splitlines()
                if "libcusparseLt" in line and line.split()[-1].startswith("/")
            ),
            None,
        )
        if Path("/proc/self/maps").exists()
        else None
    )
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(path)
        parts = []
        for prop in _PROPERTIES:
            v = ctypes.c_int()
            if lib.cusparseLtGetProperty(prop, ctypes.byref(v)) != 0:
                return None
            parts.append(str(v.value))
    except (OSError, AttributeError):
        return None
    return ".".join(parts)


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, where platform.processor() is empty)."""
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def triton_version() -> str | None:
    """The installed Triton's version, read from its package metadata (importing triton takes
    seconds); None where it is not installed. Some torch builds ship it as pytorch-triton."""
    for dist in ("triton", "pytorch-triton"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def machine_info(device_type: str) -> dict:
    """The machine as pytest-benchmark's saved runs carry it (their `machine_info`, under
    "block_shock"), read in the pytest process before anything runs, so that a comparison can
    be refused before a cell is timed. Which fields a comparison checks, and why:
    measure/gate/machine.py. Lists have one entry per GPU torch sees, in CUDA order; on a
    machine with no GPU they are empty and `gpu` says so: no number is made up."""
    gpus = [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    facts: list[dict] = []
    for device in gpus:
        props = torch.cuda.get_device_properties(device)
        facts.append(
            {
                "name": props.name,
                "memory_bytes": props.total_memory,
                "compute_capability": f"{props.major}.{props.minor}",
                **nvml.static_info(device),
            }
        )
    info = {
        "device_type": device_type,
        "gpu_count": len(gpus),
        "gpu_models": [f["name"] for f in facts],
        "gpu_memory_bytes": [f["memory_bytes"] for f in facts],
        "compute_capabilities": [f["compute_capability"] for f in facts],
        "power_limits_w": [f.get("power_limit_w") for f in facts],
        "max_sm_clocks_mhz": [f.get("max_sm_clock_mhz") for f in facts],
        "max_mem_clocks_mhz": [f.get("max_mem_clock_mhz") for f in facts],
        "driver": next((f["driver"] for f in facts if "driver" in f), None),
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "cusparselt": cusparselt_version() if gpus else None,
        "cusparselt_runtime": cusparselt_runtime_version() if gpus else None,
        "triton": triton_version(),
        "cpu_model": cpu_model(),
        "cpu_count": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
    }
    if not gpus:
        info["gpu"] = "none: torch sees no CUDA device"
    unread = sorted({f["nvml"] for f in facts if "nvml" in f})
    if unread:
        info["nvml"] = "; ".join(unread)  # the caps above are None, and this says why
    return info


def describe(device: torch.device) -> dict:
    """Static facts about this process's software and its device."""
    env = {
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cusparselt": cusparselt_version(),
        "cusparselt_runtime": cusparselt_runtime_version() if device.type == "cuda" else None,
        "cpu": cpu_model(),
        "device_type": device.type,
        "commit": commit(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            {
                "gpu": props.name,
                "gpu_memory_bytes": props.total_memory,
                "sm_count": props.multi_processor_count,
                "l2_bytes": getattr(props, "L2_cache_size", None),
                "compute_capability": f"{props.major}.{props.minor}",
            }
        )
        env.update(nvml.static_info(device))
    return env


def describe_rank(ctx) -> dict:
    """describe() as a rank task (the session asks every rank of a pool once)."""
    return describe(ctx.device)
