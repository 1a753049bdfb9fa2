"""Atomic writers: temporaries carry their writer's PID, and a writer sweeps the dead ones first."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from birdclef_eos.io.files import (FileFormatError, atomic_dir, atomic_path, pid_alive, read_json,
                                   sweep_stale, write_json)


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not pid_alive(proc.pid)
    return proc.pid


def test_temporary_names_carry_the_pid(tmp_path):
    with atomic_path(tmp_path / "attn.npz") as tmp:
        assert tmp.name.startswith(f".attn.{os.getpid()}-") and tmp.name.endswith(".tmp.npz")
        np.savez(tmp, x=np.arange(3))
    with atomic_dir(tmp_path / "attn") as tmp:
        assert tmp.name.startswith(f".attn.{os.getpid()}-") and tmp.name.endswith(".tmp")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attn", "attn.npz"]


def test_a_file_writer_sweeps_only_dead_leftovers(tmp_path, dead_pid):
    target = tmp_path / "train@attn.ipynb"
    dead = tmp_path / f".train@attn.{dead_pid}-abc123_x.tmp.ipynb"
    live = tmp_path / f".train@attn.{os.getpid()}-zz9.tmp.ipynb"
    other = tmp_path / f".train@attnx.{dead_pid}-abc.tmp.ipynb"  # another target's: not ours to touch
    other_suffix = tmp_path / f".train@attn.{dead_pid}-abc.tmp.json"
    for p in (dead, live, other, other_suffix):
        p.write_text("half written")
    write_json(tmp_path / "unrelated.json", {})  # a writer of another target sweeps nothing here
    assert dead.exists()
    with atomic_path(target) as tmp:
        tmp.write_text("{}")
    assert not dead.exists()
    assert live.exists() and other.exists() and other_suffix.exists() and target.exists()


def test_a_folder_writer_sweeps_dead_temporaries_and_old(tmp_path, dead_pid):
    metrics = tmp_path / "build" / "metrics" / "train"
    dead = metrics / f".attn.{dead_pid}-k2j4.tmp"
    live = metrics / f".attn.{os.getpid()}-q8w1.tmp"
    old = metrics / ".attn.old"
    for p in (dead, live, old):
        (p / "sub").mkdir(parents=True)
        (p / "sub" / "metrics.json").write_text("{}")
    with atomic_dir(metrics / "attn") as tmp:
        (tmp / "metrics.json").write_text("{}")
    assert not dead.exists() and not old.exists()
    assert live.exists() and (metrics / "attn" / "metrics.json").exists()


def test_legacy_names_without_a_pid_go_after_a_day(tmp_path):
    fresh = tmp_path / ".attn.ab12cd_3.tmp"
    stale = tmp_path / ".attn.zz12cd_3.tmp"
    for p in (fresh, stale):
        p.mkdir()
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(stale, (day_ago, day_ago))
    assert sweep_stale(tmp_path / "attn", folder=True) == [stale]
    assert fresh.exists()


def test_read_json_names_a_corrupt_file(tmp_path):
    bad = tmp_path / "meta.json"
    bad.write_text("{not json")
    with pytest.raises(FileFormatError, match="meta.json: not valid JSON"):
        read_json(bad)


def test_folder_fingerprint_changes_exactly_when_the_folder_does(tmp_path):
    from birdclef_eos.io.files import folder_fingerprint

    root = tmp_path / "kaggle"
    (root / "train_audio" / "aaa1").mkdir(parents=True)
    (root / "train_audio" / "aaa1" / "XC1.ogg").write_bytes(b"abc")
    (root / "train.csv").write_text("primary_label\naaa1\n")
    first = folder_fingerprint(root)
    assert first == folder_fingerprint(root)  # reading changes nothing
    (root / "train.csv").read_text()
    assert first == folder_fingerprint(root)
    assert first["files"] == 2 and first["bytes"] == 3 + len("primary_label\naaa1\n")
    assert sorted(first["entries"]) == ["train.csv", "train_audio"]

    (root / "train_audio" / "aaa1" / "XC2.ogg").write_bytes(b"d")  # added
    added = folder_fingerprint(root)
    assert added["sha256"] != first["sha256"] and added["files"] == 3
    assert added["entries"]["train.csv"] == first["entries"]["train.csv"]  # says which part changed
    st = (root / "train.csv").stat()
    os.utime(root / "train.csv", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched, same bytes
    touched = folder_fingerprint(root)
    assert touched["entries"]["train.csv"] != added["entries"]["train.csv"]
    assert touched["entries"]["train_audio"] == added["entries"]["train_audio"]
    (root / "train_audio" / "aaa1" / "XC2.ogg").unlink()  # removed
    assert folder_fingerprint(root)["files"] == 2
    with pytest.raises(FileNotFoundError, match="no such folder"):
        folder_fingerprint(tmp_path / "absent")
