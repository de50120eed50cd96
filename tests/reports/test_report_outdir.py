"""`reports build --out DIR` replaces DIR only when it is a report folder it made (#12.1)."""

import os
import stat

import pytest

from common.errors import ReportOutputError
from reports.__main__ import main
from reports.build import build
from reports.render.outdir import MARKER, PROJECT_ROOT, check_target
from tests.reports.report_inputs import passed_run


@pytest.fixture
def run(tmp_path):
    return passed_run(tmp_path / "results" / "run1")


def test_a_folder_it_did_not_make_is_refused_and_kept(run, tmp_path, capsys):
    out = tmp_path / "work"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / ".git").mkdir()
    assert main(["build", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--out {out}" in err and MARKER in err and "not a report folder" in err
    assert sorted(p.name for p in out.iterdir()) == [".git", "notes.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".work-")]


def test_the_current_folder_is_refused_even_when_empty(run, tmp_path, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    with pytest.raises(ReportOutputError, match="current folder or the project root"):
        build([run], ".")
    assert here.is_dir()


def test_the_project_root_is_refused(run):
    with pytest.raises(ReportOutputError, match="project root"):
        check_target(PROJECT_ROOT, [run])


def test_an_input_or_a_folder_holding_one_is_refused_even_with_a_marker(run, tmp_path):
    for holder in (run, run.parent, tmp_path):
        (holder / MARKER).write_text("a report folder\n")
        with pytest.raises(ReportOutputError, match="holds the input"):
            build([run], holder)
    assert (run / "run.json").is_file()


def test_a_file_is_refused(run, tmp_path):
    out = tmp_path / "report.txt"
    out.write_text("not a folder")
    with pytest.raises(ReportOutputError, match="not a folder"):
        build([run], out)
    assert out.read_text() == "not a folder"


def test_its_own_report_folder_is_replaced_whole(run, tmp_path):
    out = tmp_path / "report"
    build([run], out)
    assert (out / MARKER).is_file()
    (out / "stale.png").write_bytes(b"old")
    build([run], out)
    assert (out / MARKER).is_file() and (out / "report.md").is_file()
    assert not (out / "stale.png").exists()


def test_an_empty_folder_becomes_the_report(run, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    build([run], out)
    assert (out / "report.html").is_file() and (out / MARKER).is_file()


def test_report_folders_and_files_are_world_readable(run, tmp_path):
    old = os.umask(0o077)
    try:
        out = build([run], tmp_path / "report")
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "tables").stat().st_mode) == 0o755
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files and {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o644}
