"""The context every figure carries: software versions, the device, its clocks and the commit."""

from __future__ import annotations

import ctypes
import platform
import socket
import subprocess
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


def describe(device: torch.device) -> dict:
    """Static facts about this process's software and its device."""
    env = {
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cusparselt": cusparselt_version(),
        "cusparselt_runtime": cusparselt_runtime_version() if device.type == "cuda" else None,
        "cpu": platform.processor() or platform.machine(),
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
