"""The paper stage's publishing: copies build/ to the git-tracked folders, adds metrics/headline/, and
rewrites only the results block of README.md."""
from __future__ import annotations

import json

import pytest

from stages import paper


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "build/metrics/leaderboard").mkdir(parents=True)
    (tmp_path / "build/metrics/leaderboard/leaderboard.json").write_text(json.dumps(
        {"submissions": {"v6": {"public": 0.91, "private": 0.92}}}))
    (tmp_path / "build/metrics/train/attn").mkdir(parents=True)
    (tmp_path / "build/metrics/train/attn/metrics.json").write_text(json.dumps({"oof_macro_auc": 0.8}))
    (tmp_path / "build/metrics/train/attn/model.onnx").write_bytes(b"big")  # not copied: not small
    (tmp_path / "build/tables").mkdir()
    (tmp_path / "build/figures").mkdir()
    (tmp_path / "README.md").write_text("# t\nprose 1\n<!-- results:start -->\nstale\n<!-- results:end -->\nprose 2\n")
    return tmp_path


PARAMS = {"submissions": {"v6": {"model": "attn", "tta": [0.0], "postprocess": True}}}


def test_publish_writes_headline_and_the_readme_block_only(workdir):
    result = paper.publish(PARAMS)
    assert json.loads((workdir / "metrics/headline/submissions/v6.json").read_text()) == {
        "head_oof": 0.8, "private": 0.92, "public": 0.91}
    assert json.loads((workdir / "metrics/headline/models/attn.json").read_text()) == {"oof": 0.8}
    assert not (workdir / "metrics/train/attn/model.onnx").exists()
    text = (workdir / "README.md").read_text()
    assert text.startswith("# t\nprose 1\n<!-- results:start -->\n") and text.endswith("<!-- results:end -->\nprose 2\n")
    assert "stale" not in text and "| attn | 0.800 |" in text
    assert result.readme_changed and "metrics/headline/models/attn.json" in result.files
    assert not paper.publish(PARAMS).readme_changed  # same metrics: same bytes


def test_a_readme_without_markers_is_a_clear_error(workdir):
    (workdir / "README.md").write_text("# t\n")
    with pytest.raises(ValueError, match="README.md.*results:start"):
        paper.publish(PARAMS)
