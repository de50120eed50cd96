"""The registry is the one description of every method and 2:4 backend: it imports without
torch, refuses a malformed registration by name, answers the reports' questions (pairs,
baselines, looks), and every built-in backend follows the one protocol; no method or backend
name is written as a literal anywhere else in the code."""

import ast
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from common.errors import CellSpecError, MatrixError
from kernels import registry
from kernels.backends.base import Backend
from kernels.methods import BlockShock, Method
from measure.checks import bounds as checks
from tests.conftest import ROOT, run_bench

CODE = ("common", "kernels", "measure", "reports", "scripts", "bench")
# Literals equal to a registered name that are not that name (checked by file and string):
NOT_NAMES = {
    # a record's `emulated` flag (the device was not a GPU), not the emulated backend
    ("reports/read/records.py", "emulated"),
    ("reports/read/load.py", "emulated"),
    ("reports/analysis/figures.py", "emulated"),
    ("reports/model/observations.py", "emulated"),
    # a machine description's rate keys (bf16_dense, bf16_sparse), not the dense kernel
    ("reports/model/machine.py", "dense"),
    ("reports/imports/original_study.py", "emulated"),
    # matplotlib's aspect="auto" and --bs-device's auto (cuda where one is visible), not the backend
    ("reports/planner.py", "auto"),
    ("measure/plugin/options.py", "auto"),
    # the folder of the sm90 kernels' C++ sources, not the backend
    ("kernels/sm90_24.py", "sm90"),
    # the Python package and its version, not the backend
    ("kernels/backends/triton_half.py", "triton"),
    ("measure/gate/machine.py", "triton"),
    ("measure/machine/environment.py", "triton"),
    ("scripts/kernel_bench.py", "triton"),
}


def test_no_method_or_backend_name_is_written_outside_the_registry():
    names = {*registry.method_names(), *registry.backend_names()}
    names |= {registry.DENSE_KERNEL, registry.MASKED_DENSE_KERNEL}
    found = set()
    for top in CODE:
        for path in (ROOT / top).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "kernels/registry.py" or rel.startswith("reports/published/"):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and node.value in names:
                    found.add((rel, node.value))
    assert found - NOT_NAMES == set(), "name these through kernels/registry.py"
    assert NOT_NAMES <= found, f"no longer needed, drop them: {NOT_NAMES - found}"


def test_the_registry_and_the_report_code_import_without_torch():
    blocked = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('torch is blocked here')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "from kernels import registry\n"
        "import reports.analysis.verdicts, reports.analysis.tables\n"
        "import reports.render.section, reports.render.train_section\n"
        "print(registry.style('block_shock').color, registry.pairs('H3')[0].denominator)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", blocked], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["tab:red", "block_shock"]


def test_the_reports_questions_come_from_the_roles():
    h1 = registry.pairs("H1")
    assert [(p.numerator, p.denominator, p.proxy) for p in h1] == [
        ("block_shock", "dense_tp_row", False),
        ("block_shock_half", "dense_half", True),
    ]
    assert registry.pairs("H2") == h1
    assert [(p.numerator, p.denominator) for p in registry.pairs("H3")] == [
        ("masked_split_dense", "block_shock")
    ]
    assert registry.baselines() == ("dense_single", "dense_tp_row")
    with pytest.raises(MatrixError, match="not a ratio question"):
        registry.pairs("baseline")


def test_every_method_has_a_colour_of_its_own_and_unknown_names_a_fixed_one():
    colors = [registry.style(m).color for m in registry.method_names()]
    assert len(set(colors)) == len(colors)
    assert registry.style("from_an_old_record") == registry.style("from_an_old_record")
    assert registry.label("from_an_old_record") == "from_an_old_record"


@pytest.mark.parametrize(
    "bad, rule",
    [
        ({"mask": "some"}, "mask rule 'some'"),
        ({"split": "B"}, "split 'B'"),
        ({"style": registry.Style("tab:red", "+")}, "marker '[+]'"),
        ({"roles": (registry.Role("H4", "dense_single"),)}, "role 'H4'"),
        ({"roles": (registry.Role("H1"),)}, "a H1 role needs one"),
        ({"label": "another look"}, "registered twice, with different specs"),
    ],
)
def test_a_malformed_registration_is_refused_naming_the_method(bad, rule):
    spec = registry.spec("dense_single")
    with pytest.raises(MatrixError, match=rf"dense_single.*{rule}|{rule}"):
        registry.register(replace(spec, **bad))
    assert registry.register(spec) is spec  # the same spec again (a re-import) is no change
    assert registry.spec("dense_single") is spec


def test_unknown_names_are_refused_naming_the_closest():
    with pytest.raises(MatrixError, match="did you mean 'block_shock'"):
        registry.spec("block_shok")
    with pytest.raises(MatrixError, match="did you mean 'cslt'"):
        registry.backend_spec("cslr")
    with pytest.raises(MatrixError, match="no 2:4 backend is the default on 'mps'"):
        registry.default_backend("mps")
    assert registry.default_backend("cuda") == "auto"
    assert registry.default_backend("cpu") == "emulated"


def test_a_method_class_learns_its_spec_and_a_planted_subclass_its_base():
    planted = type("PlantedBlockShock", (BlockShock,), {})
    assert registry.spec_for(planted) is registry.spec("block_shock")
    with pytest.raises(MatrixError, match="is not registered"):
        registry.spec_for(type("Unregistered", (Method,), {}))


@pytest.mark.parametrize("name", registry.backend_names())
def test_every_builtin_backend_says_why_it_cannot_run_and_refuses_shapes(name):
    backend = registry.backend(name)
    assert isinstance(backend, Backend) and backend.name == name
    reason = backend.available(torch.device("cpu"))
    if name == registry.default_backend("cpu"):
        assert reason is None
        backend.check_shape(128, 64, 3, torch.float32, "phase1[x]")  # any dtype and batch
        # but only a shape some GPU 2:4 kernel takes: the emulated result stands for one
        with pytest.raises(CellSpecError, match=r"phase1\[x\] .*no GPU could run it.*100 x 60"):
            backend.check_shape(100, 60, 3, torch.float32, "phase1[x]")
        return
    assert reason is not None and name in reason  # a GPU kernel: skipped here, with why
    with pytest.raises(CellSpecError, match=rf"phase1\[x\]: .*{name}.* bf16 or fp16"):
        backend.check_shape(128, 256, 16, torch.float32, "phase1[x]")


def test_cuSPARSELt_needs_B_a_multiple_of_8_and_its_padded_twin_does_not():
    with pytest.raises(CellSpecError, match="phase1\\[x\\]: cuSPARSELt needs B a multiple of 8"):
        registry.backend("cslt").check_shape(128, 256, 12, torch.bfloat16, "phase1[x]")
    registry.backend("cslt_padded").check_shape(128, 256, 12, torch.bfloat16, "phase1[x]")


def _assert_product(y: torch.Tensor, x, w, bias) -> None:
    """y against float64 under the bound the harness derives from dtype and K."""
    ref, absref = checks.reference(x, w, bias)
    bound = checks.bounds(y.dtype, x.shape[1], None, 1)
    figs = checks.error_figures(y, ref, absref, bound)
    checks.assert_correct(figs, "emulated half")
    assert figs.rel_fro > 0  # rounded: the comparison is not vacuous


def test_the_emulated_half_follows_the_protocol():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(64, 128, generator=g).bfloat16()
    keep = torch.rand(64, 128, generator=g) > 0.5
    bias, x = torch.randn(64, generator=g).bfloat16(), torch.randn(8, 128, generator=g).bfloat16()
    half = registry.backend("emulated").build(w * keep, bias, x, "test")
    _assert_product(half.mm(x), x, w * keep, bias)
    out = torch.full((8, 64), float("nan"), dtype=torch.bfloat16)
    assert half.mm_into(x, out) is out
    _assert_product(out, x, w * keep, bias)
    assert half.record.backend == "emulated" and half.stored_bytes == w.numel() * 2
    w2 = torch.randn(128, 64, generator=g).bfloat16().t()  # new values, a transposed view
    half.recompress(w2 * keep)
    _assert_product(half.mm(x), x, w2 * keep, bias)


def test_a_backend_option_typo_names_the_choices(tmp_path):
    run = run_bench("--bs-backend", "csl", "--co", "--bs-results", str(tmp_path), returncode=4)
    assert "--bs-backend 'csl' (did you mean 'cslt'?)" in run.stderr
    assert "choose one of" in run.stderr and "auto" in run.stderr
