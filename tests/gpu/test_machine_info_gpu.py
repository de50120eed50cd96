"""The machine block saved runs carry, read on a GPU machine: `python -m pytest -m gpu tests`.

It is read in the pytest process before any rank starts (so a comparison can be refused before
a cell runs): every visible GPU, NVML's caps and the loaded cuSPARSELt must be there, not None.
Skipped with its reason where no CUDA device is visible.
"""

from __future__ import annotations

import re

import pytest
import torch

from measure.machine.environment import machine_info

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible)"),
]


def test_the_machine_block_names_every_gpu_its_caps_and_the_loaded_libraries():
    info = machine_info("cuda")
    n = torch.cuda.device_count()
    assert info["device_type"] == "cuda" and info["gpu_count"] == n
    assert info["gpu_models"] == [torch.cuda.get_device_name(i) for i in range(n)]
    assert "nvml" not in info, info.get("nvml")  # NVML answered for every GPU
    for key in ("power_limits_w", "max_sm_clocks_mhz", "max_mem_clocks_mhz"):
        assert len(info[key]) == n and all(v > 0 for v in info[key]), (key, info[key])
    assert re.fullmatch(r"\d+(\.\d+)+", info["driver"]), info["driver"]
    assert info["cuda"] == torch.version.cuda and info["torch"] == torch.__version__
    # the loaded library's own version, which can differ from torch's compile-time constant
    assert re.fullmatch(r"\d+\.\d+\.\d+", info["cusparselt_runtime"] or ""), info
    assert info["cusparselt"] == torch.backends.cusparselt.version()
