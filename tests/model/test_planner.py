"""The planner as a user runs it: answers for machines never run here, labelled extrapolated, a
calibrated answer where the records hold the machine, a region plot, and refusals by name."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import pytest

from reports import planner

ROOT = Path(__file__).resolve().parents[2]
SUBSET = ROOT / "tests/data/original_study/results/official"


def test_two_machines_never_run_here_are_answered_and_labelled_extrapolated(tmp_path, capsys):
    png = tmp_path / "regions.png"
    argv = ["--machine", "b200", "--machine", "a100_sxm_80gb", "--n", "32768", "--batch", "64"]
    assert planner.main([*argv, "--draws", "8", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    for name in ("B200", "A100 SXM 80GB"):
        assert f"EXTRAPOLATED: extrapolated to {name} from the fit on 220 cells of H100 SXM" in out
    assert out.count("winner: ") == 2 and out.count("decided by the ") == 2
    assert "collective model: nvlink4's (fit on 220 cells of H100 SXM" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(png).shape
    assert width > 2 * height > 500  # two panels side by side


def test_a_machine_in_the_records_is_calibrated_and_its_measured_half_composes(capsys):
    argv = [
        "--machine",
        "rtx_pro_4000_blackwell",
        "--records",
        str(SUBSET),
        "--records",
        str(ROOT / "reports/published/data/h100-2026-11-25c/backends.json"),
        "--source",
        "h100_sxm",
        "--mode",
        "eager",
        "--n",
        "16384",
        "--batch",
        "64",
    ]
    assert planner.main([*argv, "--draws", "8"]) == 0
    out = capsys.readouterr().out
    assert "calibrated: fit on 60 cells of H100 SXM, calibrated with 12 cells" in out
    assert "measured dense_single (metrics.jsonl) + link model" in out  # masked split, composed
    assert "collective model: calibrated with 9 collectives of RTX PRO 4000 Blackwell" in out


def test_one_gpu_dense_loses_to_tensor_parallel_when_memory_bound(capsys):
    """At B=64 a TP rank reads half the weight; the model must not crown one GPU there."""
    assert (
        planner.main(["--machine", "h100_sxm", "--n", "32768", "--batch", "64", "--draws", "4"])
        == 0
    )
    out = capsys.readouterr().out
    assert "winner: dense_tp_" in out and "decided by the" in out


def test_a_winner_resting_on_a_default_prior_is_called_a_guess(capsys):
    """No committed cell makes the padded cuSPARSELt path math-bound, so its math efficiency is
    the default prior: where that decides the winner, the planner must say so."""
    assert (
        planner.main(["--machine", "b200", "--n", "65536", "--batch", "4096", "--draws", "4"]) == 0
    )
    out = capsys.readouterr().out
    assert "GUESS: its math_eff is a default prior" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--machine", "h100_sxm", "--phase", "phase3"], "covers phase1 (the forward) only"),
        (["--machine", "h100"], "no machine description named 'h100'"),
        (["--machine", "h100_sxm", "--records", "README.md"], "README.md: not a benchmark JSON"),
    ],
)
def test_bad_questions_are_refused_by_name(argv, message, capsys):
    assert planner.main([*argv, "--n", "4096", "--batch", "16"]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1.255e-4, "126 us"),
        (9.162e-05, "91.6 us"),
        (0.0123, "12.3 ms"),
        (1.5, "1.50 s"),
        (9.996e-4, "1.00 ms"),
        (2.5e-7, "0.250 us"),
    ],
)
def test_times_print_in_s_ms_or_us_with_three_significant_digits(seconds, text):
    assert planner.fmt_time(seconds) == text
