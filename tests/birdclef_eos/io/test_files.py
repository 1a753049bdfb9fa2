"""birdclef_eos/io/files.py: atomic writes (temporaries carry their writer's PID, and a writer sweeps
the dead ones first), the sha256 helper, readers that name the file they fail on."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from birdclef_eos.io.files import (FileFormatError, atomic_dir, atomic_path, pid_alive, read_json, read_yaml,
                                   sha256_file, sha256_tree, sweep_stale, write_json)


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


def test_atomic_path_leaves_nothing_when_the_writer_fails(tmp_path):
    target = tmp_path / "out" / "result.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists() and list((tmp_path / "out").iterdir()) == []


def test_atomic_dir_swaps_in_a_complete_folder(tmp_path):
    target = tmp_path / "store"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
        assert (target / "old.txt").exists()  # the old folder stays until the new one is complete
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_write_json_is_byte_stable_and_refuses_nan(tmp_path):
    write_json(tmp_path / "a.json", {"b": 1, "a": [1.5]})
    assert (tmp_path / "a.json").read_text() == '{\n  "a": [\n    1.5\n  ],\n  "b": 1\n}\n'
    with pytest.raises(ValueError):
        write_json(tmp_path / "n.json", {"x": float("nan")})
    assert not (tmp_path / "n.json").exists()


def test_sha256_of_files_and_trees(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_bytes(b"abc")
    (tmp_path / "y").write_bytes(b"")
    assert sha256_file(tmp_path / "d" / "x") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    tree = sha256_tree([tmp_path / "y", tmp_path / "d"])
    assert list(tree) == sorted(tree) and len(tree) == 2


def test_readers_name_the_file_they_fail_on(tmp_path):
    bad = tmp_path / "meta.json"
    bad.write_text('{"blocks": [1, 2')
    with pytest.raises(FileFormatError, match=r"meta.json: not valid JSON \(the extract stage\)"):
        read_json(bad, "the extract stage")
    with pytest.raises(FileNotFoundError, match="nope.json: not found"):
        read_json(tmp_path / "nope.json")
    (tmp_path / "ok.json").write_text(json.dumps({"a": 1}))
    assert read_json(tmp_path / "ok.json") == {"a": 1}
    y = tmp_path / "p.yaml"
    y.write_text("lr: 3e-4\nk: [1, 2\n")
    with pytest.raises(FileFormatError, match=r"p.yaml, line \d+, column \d+: YAML syntax error"):
        read_yaml(y)
    y.write_text("lr: 3e-4\n")
    assert read_yaml(y) == {"lr": 3e-4}  # YAML 1.2, as DVC reads it: a float, not the string '3e-4'
