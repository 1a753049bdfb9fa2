"""birdclef_eos/io/files.py: atomic writes, the sha256 helper, readers that name the file."""
import json

import pytest

from birdclef_eos.io.files import (FileFormatError, atomic_dir, atomic_path, read_json, read_yaml, sha256_file,
                                   sha256_tree, write_json)


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
