"""Inputs are sacred, temporary files do not pile up, one run per output folder (issue 15).

For every command and output option: writing onto an input (same path, a symlink or a
hard link to it) is refused with exit status 2 and the input is unchanged, --force
included. Then the atomic writer (errors name the target, no temporary file left on
failure, stale ones from killed runs removed), the output-folder lock and the order of
the first checkpoint and result.json.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

import chasm.project.checkpoint as checkpoint_module
import chasm.project.outputs as outputs_module
from chasm.cli import main
from chasm.errors import InputError
from chasm.examples.seed_project import write_seed_project
from chasm.io import atomic
from chasm.io.atomic import (
    TEMP_PATTERN,
    clean_stale_temp,
    protect_inputs,
    same_file,
    write_text_atomic,
)
from chasm.io.lock import LOCK_NAME, FolderLock
from safety_helpers import PROJECT, snapshot, urea_project


def _refused(capsys, argv, folder: Path) -> str:
    """Run the CLI: exit 2, one line saying the input is kept, nothing in ``folder`` changed."""
    before = snapshot(folder)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "inputs are never overwritten" in err, err
    assert snapshot(folder) == before
    assert not [p for p in folder.rglob("*") if TEMP_PATTERN.match(p.name)]
    return err


# ----------------------------------------------------------------------------- chasm sf
@pytest.mark.parametrize("target", ["hkl", "cif", "symlink", "hardlink"])
def test_sf_never_writes_onto_its_inputs(tmp_path, capsys, target):
    """D1: chasm sf iam.cif iam.hkl --out iam.hkl replaced the data with the CSV."""
    urea_project(tmp_path)
    cif, hkl = tmp_path / "urea.cif", tmp_path / "urea.hkl"
    out = {"hkl": hkl, "cif": cif, "symlink": tmp_path / "l.hkl", "hardlink": tmp_path / "h.hkl"}
    if target == "symlink":
        out[target].symlink_to(hkl)
    if target == "hardlink":
        os.link(hkl, out[target])
    err = _refused(capsys, ["sf", str(cif), str(hkl), "--out", str(out[target])], tmp_path)
    assert err.startswith(f"chasm: error: {out[target]}: refusing to write here")


# ----------------------------------------------------------------------------- chasm init
@pytest.mark.parametrize("target", ["cif", "hkl"])
def test_init_never_writes_onto_its_inputs_even_with_force(tmp_path, capsys, target):
    urea_project(tmp_path)
    cif, hkl = tmp_path / "urea.cif", tmp_path / "urea.hkl"
    out = cif if target == "cif" else hkl
    argv = ["init", str(cif), "--xray", str(hkl), "-o", str(out), "--force"]
    _refused(capsys, argv, tmp_path)


# ----------------------------------------------------------------------------- chasm refine
def test_refine_output_dot_with_structure_model_cif(tmp_path, capsys):
    """output = "." with structure model.cif replaced the structure with the refined model."""
    p = urea_project(tmp_path, cif="model.cif", output=".")
    err = _refused(capsys, ["refine", str(p), "-q", "--no-report"], tmp_path)
    assert "model.cif: refusing to write here: this is the structure file" in err


@pytest.mark.parametrize("name", ["result.json", "listing.txt", "checkpoint.json"])
def test_refine_output_option_onto_a_data_file(tmp_path, capsys, name):
    p = urea_project(tmp_path, hkl=name)
    argv = ["refine", str(p), "-q", "--no-report", "--output", str(tmp_path)]
    assert "this is the data file of datasets[0] (xray)" in _refused(capsys, argv, tmp_path)


def test_refine_project_file_in_the_output_folder_under_an_output_name(tmp_path, capsys):
    urea_project(tmp_path)
    p = tmp_path / "report.md"
    p.write_text(PROJECT.format(cif="urea.cif", hkl="urea.hkl", output="."), encoding="utf-8")
    assert "this is the project file" in _refused(capsys, ["refine", str(p), "-q"], tmp_path)


def test_refine_writes_the_first_checkpoint_before_result_json(tmp_path, monkeypatch):
    p = urea_project(tmp_path)
    order = []

    def spy(path, text):
        order.append(Path(path).name)
        write_text_atomic(path, text)

    for module in (checkpoint_module, outputs_module):  # the two writers of a run
        monkeypatch.setattr(module, "write_text_atomic", spy)
    assert main(["refine", str(p), "-q", "--no-report"]) == 0
    assert order[0] == "checkpoint.json" and "result.json" in order
    assert order.index("checkpoint.json") < order.index("result.json")
    ck = json.loads((tmp_path / "out" / "checkpoint.json").read_text(encoding="utf-8"))
    assert ck["status"] == "finished"


# ----------------------------------------------------------------------------- chasm simulate
@pytest.fixture(scope="module")
def seed_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("seed")
    write_seed_project(folder, xray_smax=0.3, und_count=20)
    return folder


@pytest.mark.parametrize("victim", ["truth.cif", "project.toml"])
def test_simulate_force_never_writes_onto_the_structure_or_the_project(
    tmp_path, capsys, seed_folder, victim
):
    for f in seed_folder.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    p = tmp_path / "project.toml"
    p.write_text(
        p.read_text(encoding="utf-8").replace('file = "und.hkl"', f'file = "{victim}"'),
        encoding="utf-8",
    )
    err = _refused(capsys, ["simulate", str(p), "--force", "-q"], tmp_path)
    assert f"{victim}: refusing to write here" in err


def test_simulate_output_folder_onto_the_structure(tmp_path, capsys, seed_folder):
    for f in seed_folder.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    p = tmp_path / "project.toml"
    p.write_text(
        p.read_text(encoding="utf-8").replace('file = "und.hkl"', 'file = "../truth.cif"'),
        encoding="utf-8",
    )
    sub = tmp_path / "sub"
    sub.mkdir()
    argv = ["simulate", str(p), "--force", "-q", "--output", str(sub)]
    assert "truth.cif: refusing to write here" in _refused(capsys, argv, tmp_path)


# ----------------------------------------------------------------------------- chasm report
def test_report_protects_its_inputs(tmp_path):
    (tmp_path / "result.json").write_text("{}", encoding="utf-8")
    with protect_inputs({"result file": tmp_path / "result.json"}):
        with pytest.raises(InputError, match="this is the result file"):
            write_text_atomic(tmp_path / "result.json", "x")
        write_text_atomic(tmp_path / "other.txt", "x")
    write_text_atomic(tmp_path / "result.json", "y")  # outside the block: allowed
    assert (tmp_path / "result.json").read_text() == "y"


# ----------------------------------------------------------------------------- atomic writes
def test_same_file_by_path_symlink_and_inode(tmp_path):
    a = tmp_path / "a"
    a.write_text("x")
    (tmp_path / "s").symlink_to(a)
    os.link(a, tmp_path / "h")
    assert same_file(a, tmp_path / "s") and same_file(a, tmp_path / "h")
    assert same_file(a, tmp_path / "." / "a")
    assert not same_file(a, tmp_path / "missing") and not same_file(a, tmp_path)


def test_write_error_names_the_target_not_the_temp_file(tmp_path):
    target = tmp_path / "no-such-folder" / "result.json"
    with pytest.raises(OSError) as info:
        write_text_atomic(target, "x")
    assert info.value.filename == str(target)
    assert ".tmp" not in str(info.value)


def test_failed_write_leaves_no_temp_file(tmp_path, monkeypatch):
    (tmp_path / "a.txt").write_text("old")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(OSError, match="a.txt") as info:
        write_text_atomic(tmp_path / "a.txt", "new")
    assert info.value.filename == str(tmp_path / "a.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    assert (tmp_path / "a.txt").read_text() == "old"


def test_stale_temp_files_are_removed_live_ones_kept(tmp_path):
    dead = 2**22 + 12345  # beyond pid_max on most systems: no such process
    stale = tmp_path / f".result.json.{'a' * 12}.{dead}.tmp"
    live = tmp_path / f".result.json.{'b' * 12}.{os.getppid()}.tmp"
    legacy_old = tmp_path / f".model.cif.{'c' * 12}.tmp"
    legacy_new = tmp_path / f".model.cif.{'d' * 12}.tmp"
    other = tmp_path / ".notes.tmp"
    for f in (stale, live, legacy_old, legacy_new, other):
        f.write_text("partial")
    old = time.time() - 2 * atomic.LEGACY_AGE
    os.utime(legacy_old, (old, old))
    removed = clean_stale_temp(tmp_path)
    assert sorted(removed) == sorted([stale, legacy_old])
    assert live.exists() and legacy_new.exists() and other.exists()


def test_refine_removes_stale_temp_files_of_a_killed_run(tmp_path):
    p = urea_project(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".checkpoint.json.{'e' * 12}.{2**22 + 777}.tmp"
    stale.write_text("{")
    assert main(["refine", str(p), "-q", "--no-report"]) == 0
    assert not stale.exists()
    assert not [f for f in out.iterdir() if TEMP_PATTERN.match(f.name)]


# ----------------------------------------------------------------------------- lock
def test_second_run_on_a_locked_output_folder_is_refused(tmp_path, capsys):
    p = urea_project(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    with FolderLock(out, "chasm refine"):
        assert main(["refine", str(p), "-q", "--no-report"]) == 2
        err = capsys.readouterr().err
        assert re.search(
            rf"{re.escape(str(out))}: the output folder is in use by another chasm refine "
            rf"\(PID {os.getpid()}\)",
            err,
        )
        assert not (out / "result.json").exists()
    assert main(["refine", str(p), "-q", "--no-report"]) == 0


def test_a_lock_left_by_a_dead_run_is_taken_over(tmp_path):
    p = urea_project(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text(f"{2**22 + 99}\n")  # written by a run killed long ago
    assert main(["refine", str(p), "-q", "--no-report"]) == 0
    assert (out / "result.json").is_file()


def test_sigterm_unwinds_with_status_143_and_releases_the_lock(tmp_path, monkeypatch, capsys):
    """SIGTERM raises through the command (finally blocks run: temp files, lock)."""
    import signal

    import chasm.report.report as report_module

    (tmp_path / "result.json").write_text("{}", encoding="utf-8")

    def killed(folder, **kwargs):
        lock = FolderLock(tmp_path, "test")
        lock.acquire()

        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler interrupts this
        finally:
            lock.release()
        raise AssertionError("SIGTERM did not interrupt the command")

    monkeypatch.setattr(report_module, "write_report", killed)
    before = signal.getsignal(signal.SIGTERM)
    t0 = time.perf_counter()
    assert main(["report", str(tmp_path)]) == 143
    assert time.perf_counter() - t0 < 4
    assert "chasm: terminated (SIGTERM)" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == before
    with FolderLock(tmp_path, "test"):  # released: a new lock is granted
        pass
