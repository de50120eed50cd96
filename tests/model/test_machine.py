"""Machine descriptions: every committed one loads and is sourced; a broken one is refused by
file and field before any model runs; a user's own file is found by name or path."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from common.errors import ReportInputError
from reports.model import machine

GPUS = machine.load_all()


def test_the_issue_s_gpus_are_described_with_a_source_for_every_number():
    assert {"h100_sxm", "h200", "b200", "rtx_pro_4000_blackwell", "a100_sxm_80gb", "l40s"} <= set(
        GPUS
    )
    for g in GPUS.values():
        assert set(g.sources) == set(machine.GPU_SOURCED)
        assert all(len(s) > 20 for s in g.sources.values()), g.path
        assert set(g.link.sources) == set(machine.LINK_NUMBERS)
        assert g.memory_bytes_per_s > 0 and g.l2_bytes > 0 and g.sm_count > 0


def test_sparse_rates_are_twice_the_dense_ones():
    """Datasheets give 2:4 rates 'with sparsity'; a description halves them for dense."""
    for g in GPUS.values():
        for dtype in ("bf16", "fp16"):
            ratio = g.math_rate(dtype, sparse=True) / g.math_rate(dtype, sparse=False)
            assert ratio == pytest.approx(2.0, rel=0.015), (g.key, dtype)


def test_no_sparse_fp32_rate_is_refused_by_name():
    with pytest.raises(ReportInputError, match="no math_flop_per_s.fp32_sparse"):
        GPUS["h100_sxm"].math_rate("fp32", sparse=True)


def _copy(tmp_path: Path, key: str = "h100_sxm") -> Path:
    root = tmp_path / "machines"
    shutil.copytree(machine.MACHINES_DIR, root)
    return root / "gpus" / f"{key}.toml"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("sm_count = 132\n", "", "field sm_count is missing"),
        ("sm_count = 132\n", "sm_count = 132\nsm_cout = 1\n", "unknown field sm_cout"),
        ("sm_count = 132", "sm_count = 0", "field sm_count is 0, not a positive integer"),
        ("sm_count = 132", "sm_count = 13.2", "field sm_count is 13.2, not a positive integer"),
        ("memory_bytes_per_s = 3.35e12", "memory_bytes_per_s = -3.35e12", "memory_bytes_per_s"),
        ("memory_bytes_per_s = 3.35e12", 'memory_bytes_per_s = "fast"', "not a positive number"),
        ("memory_bytes_per_s = 3.35e12", "memory_bytes_per_s = true", "not a positive number"),
        ("bf16_sparse = 1978.9e12\n", "", "field math_flop_per_s.bf16_sparse is missing"),
        ("fp32_dense = 66.9e12", "fp32_dense = 0.0", "math_flop_per_s.fp32_dense is 0.0"),
        ('link = "nvlink4"', 'link = "nvlink9"', "field link is 'nvlink9'"),
        ('sm_count = "132', "", "sources.sm_count is missing"),
        ("device_names = [", "device_names = []\nx = [", "unknown field x"),
    ],
)
def test_a_broken_description_is_refused_naming_file_and_field(tmp_path, old, new, message):
    path = _copy(tmp_path)
    text = path.read_text()
    if old == 'sm_count = "132':  # drop the source line of sm_count
        text = re.sub(r"^sm_count = \"132 SMs.*\n", "", text, flags=re.M)
    else:
        assert old in text
        text = text.replace(old, new, 1)
    path.write_text(text)
    with pytest.raises(ReportInputError) as err:
        machine.load_gpu(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_a_link_with_an_unknown_kind_is_refused(tmp_path):
    path = _copy(tmp_path).parent.parent / "links" / "nvlink4.toml"
    path.write_text(path.read_text().replace('kind = "nvlink"', 'kind = "infiniband"'))
    with pytest.raises(ReportInputError, match=r"nvlink4.toml: field kind is 'infiniband'"):
        machine.load_link(path)


def test_a_user_adds_a_gpu_by_copying_one(tmp_path):
    path = _copy(tmp_path, "h200")
    mine = path.with_name("my_h200_nvl.toml")
    text = path.read_text().replace('name = "H200"', 'name = "H200 NVL"')
    mine.write_text(
        text.replace('device_names = ["NVIDIA H200"]', 'device_names = ["NVIDIA H200 NVL"]')
    )
    root = path.parent.parent
    found = machine.find("H200 NVL", root)
    assert found.key == "my_h200_nvl" and found.memory_bytes_per_s == 4.8e12
    assert machine.find(str(mine)).name == "H200 NVL"
    assert machine.find("NVIDIA H200 NVL", root).key == "my_h200_nvl"


def test_an_unknown_machine_is_refused_with_the_known_ones():
    with pytest.raises(ReportInputError, match=r"no machine description named 'h100'.*h100_sxm"):
        machine.find("h100")
    assert machine.for_device("NVIDIA H100 80GB HBM3", GPUS).key == "h100_sxm"
    assert machine.for_device("NVIDIA GeForce RTX 4090", GPUS) is None
