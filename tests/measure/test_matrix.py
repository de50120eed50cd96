"""benchmarks.json: loads, expands, and refuses bad input with a message naming file and key."""

import json
import subprocess
import sys

import pytest

from common.errors import MatrixError
from kernels import registry
from kernels.masks import PERIODIC_MASKS
from measure.cells.matrix import DEFAULT_PATH, load_matrix
from tests.conftest import ROOT


def test_smoke_suite_covers_every_method_and_mask_in_40_or_more_phase0_cells():
    smoke = load_matrix().suite("smoke")
    phase0 = [c for c in smoke.cells if c.phase == "phase0"]
    assert len(phase0) >= 40
    two_rank_methods = {m.name for m in registry.methods() if m.world_size != 1}
    assert two_rank_methods | {"dense_single"} <= {c.method for c in phase0}
    assert set(load_matrix().axes["mask"]) <= {c.mask for c in phase0}
    assert {1, 2} <= {c.world_size for c in phase0}


def test_ids_are_readable():
    cells = {c.name for c in load_matrix().suite("smoke").cells}
    assert "phase0[block_shock-N256-B64-bf16-complement_1100_0011-gaussian-ws2]" in cells
    assert "phase0[dense_tp_row-N256x128-B64-fp16-gaussian-ws2-bias]" in cells


@pytest.fixture
def write(tmp_path):
    base = json.loads(DEFAULT_PATH.read_text())

    def _write(mutate):
        doc = json.loads(json.dumps(base))
        mutate(doc)
        p = tmp_path / "benchmarks.json"
        p.write_text(json.dumps(doc))
        return p

    return _write


def _block(doc, i=0, suite="smoke"):
    return doc["suites"][suite]["blocks"][i]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda d: _block(d, 3).update(method=["block_shok"]),
            r"suites\.smoke\.blocks\[3\]\.method: unknown value 'block_shok' \(did you mean "
            r"'block_shock'\?\); allowed: \[",
        ),
        (lambda d: _block(d).update(N=[128, -4]), r"blocks\[0\]\.N: must be positive integers"),
        (lambda d: _block(d).update(B=[0]), r"blocks\[0\]\.B: must be positive integers, got 0"),
        (lambda d: _block(d).update(Bs=[8]), r"unknown key 'Bs' \(did you mean 'B'\?\)"),
        (
            lambda d: _block(d, 3).update(world_size=[1]),
            r"masked_split_dense runs with world_size 2 only, and this block has \[1\]",
        ),
        (lambda d: _block(d, 2).update(mask=["random_2of4"]), r"needs a periodic mask"),
        (lambda d: _block(d, 3).update(N=[130]), r"N \(input features\) a multiple of 4"),
        (lambda d: _block(d, 3).update(workload=["gausian"]), r"did you mean 'gaussian'"),
        (lambda d: d["suites"]["smoke"].update(timing={"max_noise": -1}), r"positive number"),
        (lambda d: d["suites"]["smoke"].update(timing={"max_duty": 1.5}), r"at most 1; got 1.5"),
        (lambda d: d["suites"]["smoke"].update(timing={"min_time_s": 0}), r"positive number"),
        (
            lambda d: d["axes"]["method"].append("sparse_magic"),
            r"'sparse_magic' is not implemented",
        ),
        (lambda d: d.update(schema_version=7), r"schema_version: expected 1"),
    ],
)
def test_bad_matrix_names_file_key_and_value(write, mutate, message):
    path = write(mutate)
    with pytest.raises(MatrixError, match=message) as e:
        load_matrix(path)
    assert str(path) in str(e.value)


def test_unknown_suite_lists_the_suites():
    with pytest.raises(MatrixError, match=r"no suite 'smok' \(did you mean 'smoke'\?\)"):
        load_matrix().suite("smok")


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(MatrixError, match="file not found"):
        load_matrix(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    with pytest.raises(MatrixError, match="not valid JSON"):
        load_matrix(bad)


def test_every_periodic_mask_is_in_the_axes():
    assert set(PERIODIC_MASKS) <= set(load_matrix().axes["mask"])


def test_gpu_only_rules_are_checked_before_anything_runs():
    from common.cell import CellSpec
    from common.errors import CellSpecError
    from measure.cells.build import preflight

    odd = CellSpec(
        "phase0", "block_shock", 132, 128, 64, "bf16", "random_2of4", "gaussian", 2, False
    )
    # emulated on a CPU it would run, but stand for no GPU run: refused there too (issue #23)
    with pytest.raises(CellSpecError, match=r"N132x128.*no GPU could run it.*got 128 x 132"):
        preflight(odd, "cpu")
    with pytest.raises(
        CellSpecError, match=r"block_shock-N132x128.*multiples of 64, got 128 x 132"
    ):
        preflight(odd, "cuda", "cslt")
    fp32 = CellSpec(
        "phase0", "block_shock", 256, 256, 64, "fp32", "random_2of4", "gaussian", 2, False
    )
    with pytest.raises(CellSpecError, match="need bf16 or fp16"):
        preflight(fp32, "cuda", "cslt")
    # auto (the default on a GPU) takes a shape some candidate takes, and refuses one that none
    # takes with every candidate's reason
    with pytest.raises(CellSpecError, match=r"no candidate of the auto backend.*cslt: .*bf16"):
        preflight(fp32, "cuda")
    ragged = CellSpec(
        "phase0", "block_shock", 256, 256, 12, "bf16", "random_2of4", "gaussian", 2, False
    )
    with pytest.raises(CellSpecError, match="B a multiple of 8, got 12"):
        preflight(ragged, "cuda", "cslt")
    preflight(ragged, "cuda")  # cuSPARSELt cannot, but auto's padded cuSPARSELt can


def test_a_zero_warm_up_is_a_valid_policy(write):
    path = write(lambda d: d["suites"]["smoke"]["timing"].update(warmup_s=0, max_duty=0.4))
    timing = load_matrix(path).suite("smoke").timing
    assert timing.warmup_s == 0 and timing.max_duty == 0.4


def test_the_registry_and_benchmarks_json_name_the_same_methods():
    """Every method the matrix offers is registered, and every registered method is offered:
    a method added in one place and forgotten in the other fails here, not in a sweep."""
    assert set(load_matrix().axes["method"]) == set(registry.method_names())
    for spec in registry.methods():
        assert registry.spec_for(spec.cls) is spec  # a built method learns its own spec


def test_smoke_and_gpu_check_hold_every_registered_method():
    """README says the smoke and gpu_check suites cover every method: this keeps it true."""
    for name in ("smoke", "gpu_check"):
        cells = load_matrix().suite(name).cells
        assert {c.method for c in cells} == set(registry.method_names()), name


@pytest.mark.parametrize(
    "axis, typo, closest",
    [
        ("phase", "phasee3", "phase3"),
        ("method", "block_shok", "block_shock"),
        ("dtype", "bf61", "bf16"),
        ("mask", "random_2of5", "random_2of4"),
        ("workload", "attention_lik", "attention_like"),
        ("bias", 1, None),  # JSON 1 is not true: bias takes booleans only
        ("backend", "cslt_pad", "cslt_padded"),
        ("optimizer", "adam", "adamw"),
        ("variant", "T1mm", "T1m"),
    ],
)
def test_a_typo_in_any_axis_names_the_value_the_closest_choice_and_all(write, axis, typo, closest):
    """Each axis is checked against where its values are implemented (masks, workloads, 2:4
    backends, optimizers, variants, phases, methods, dtypes), not only against itself."""
    from measure.cells.matrix import implemented_values

    choices = implemented_values()[axis]
    path = write(lambda d: d["axes"][axis].append(typo))
    with pytest.raises(MatrixError) as e:
        load_matrix(path)
    hint = f" (did you mean {closest!r}?)" if closest else ""
    assert str(e.value) == (
        f"{path}: axes.{axis}: {typo!r} is not implemented{hint}; implemented: {list(choices)}"
    )


def test_the_axes_offer_only_what_is_implemented_and_every_mask_workload_and_backend():
    from kernels.masks import MASKS
    from measure.cells.workloads import WORKLOADS

    axes = load_matrix().axes
    assert set(axes["mask"]) == set(MASKS)
    assert set(axes["workload"]) == set(WORKLOADS)
    offered = {b.name for b in registry.backend_specs() if b.shown}  # emulated: chosen on a CPU
    assert set(axes["backend"]) == offered


def test_a_typo_in_the_matrix_fails_collection(write, tmp_path):
    path = write(lambda d: d["axes"]["mask"].append("random_2of5"))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "bench", "--co", "-q", "-p", "no:cacheprovider",
         "--bs-matrix", str(path), "--bs-results", str(tmp_path / "results")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == pytest.ExitCode.USAGE_ERROR
    assert "axes.mask: 'random_2of5' is not implemented (did you mean 'random_2of4'?)" in run.stderr
