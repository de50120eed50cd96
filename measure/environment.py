"""The context every figure carries: software versions, the device, its clocks and the commit."""

from __future__ import annotations

import platform
import socket
import subprocess
from pathlib import Path

import torch

from measure import nvml

ROOT = Path(__file__).resolve().parent.parent


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
    try:
        return torch.backends.cusparselt.version()
    except (AttributeError, RuntimeError):
        return None


def describe(device: torch.device) -> dict:
    """Static facts about this process's software and its device."""
    env = {
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cusparselt": cusparselt_version(),
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
