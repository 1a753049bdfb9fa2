"""The surgery stage end to end on the perch_tiny fixture (in a scratch working directory)."""
import json
import shutil

import onnx
import pytest

from stages import surgery
from stages.paths import ARCHITECTURE_FIGURE, BACKBONE_JSON, BACKBONE_ONNX, BLOCKS_JSON, PROBED_ONNX
from tests.fakes.backbone_fixtures import perch_tiny

PARAMS = {"surgery": {"blocks": "all"}}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    path, spec = perch_tiny()
    (tmp_path / "models").mkdir()
    shutil.copy(path, tmp_path / BACKBONE_ONNX)
    (tmp_path / BACKBONE_JSON).write_text(json.dumps(spec))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_stage_writes_the_contract(workdir):
    result = surgery.run(PARAMS)
    assert result.n_found == 26 and result.stages == list(range(1, 8))
    record = json.loads(BLOCKS_JSON.read_text())
    assert [b["name"] for b in record["blocks"]] == [f"block_{i:02d}" for i in range(26)]
    for b in record["blocks"]:
        assert set(b) >= {"index", "name", "tensor", "stage", "channels", "spatial"}
    assert record["logits_output"] == "label" and record["embedding_output"] == "embedding"
    assert record["logits_channels"] == 32 and record["embedding_channels"] == 384
    outputs = [o.name for o in onnx.load(str(PROBED_ONNX)).graph.output]
    assert outputs[:4] == ["label", "embedding", "spatial_embedding", "spectrogram"]
    assert ARCHITECTURE_FIGURE.stat().st_size > 10_000
    first = (PROBED_ONNX.read_bytes(), BLOCKS_JSON.read_bytes())
    surgery.run(PARAMS)
    assert (PROBED_ONNX.read_bytes(), BLOCKS_JSON.read_bytes()) == first  # same params, same bytes


def test_missing_backbone_names_the_file(workdir):
    BACKBONE_ONNX.unlink()
    with pytest.raises(FileNotFoundError, match="models/backbone.onnx not found: run the checkpoint stage"):
        surgery.run(PARAMS)


def test_requested_block_missing(workdir):
    with pytest.raises(Exception, match=r"\[40\] do not exist; blocks found: 0 \(MBConv_0\)"):
        surgery.run({**PARAMS, "surgery": {"blocks": [40]}})
    assert not PROBED_ONNX.exists() and not BLOCKS_JSON.exists()  # nothing half-written
