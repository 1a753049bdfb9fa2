"""The probe stage on a hand-made index and a fake backbone: outputs, selection, determinism."""
import json

import pytest

from stages import probe
from tests.fakes.probe_fakes import FakeBackbone, make_index
from tests.fakes.runtime import runtime

PARAMS = {
    "probe": {"species": 4, "clips": 6, "min_recordings": 3, "blocks": "all", "k": 3, "folds": 3,
              "distance": "cosine", "normalisation": "standardize", "bootstrap": 100,
              "linear_probe": True, "linear_c": 1.0, "linear_max_iter": 200, "select": 2, "seed": 0},
    "backbone": {"name": "fake", "chunk_mapping": "center", "batch_size": 4, "threads": 1, "frontend": "graph"},
    "dataset": {"sample_rate": 32000},
    "runtime": runtime(),
}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    make_index(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_probe_writes_table_metrics_figure_and_selection(workdir):
    out = probe.run(PARAMS, runner=FakeBackbone())
    metrics = json.loads((workdir / "build/metrics/probe/probe.json").read_text())
    assert metrics["n_clips"] == 24 and metrics["n_recordings"] == 12
    assert metrics["blocks"]["block_02"]["rank"] == 1
    assert metrics["blocks"]["block_02"]["accuracy"] > 0.9
    assert 2 in metrics["selected"] and len(metrics["selected"]) == 2
    assert json.loads((workdir / "models/probe_selected.json").read_text()) == {"blocks": metrics["selected"]}
    table = (workdir / "build/tables/table1.md").read_text()
    assert table.count("\n| ") == 4 and "reported" not in table  # header + 3 blocks; no paper column
    assert (workdir / "build/figures/probe.png").stat().st_size > 1000
    assert out.selected == metrics["selected"]


def test_probe_marks_its_selection_on_figure_1(workdir, monkeypatch):
    drawn = {}
    original = probe.draw_architecture

    def spy(inventory, path, head_blocks=None, title=None):
        drawn.update(path=str(path), head_blocks=head_blocks, n_blocks=len(inventory["blocks"]))
        original(inventory, path, head_blocks, title)

    monkeypatch.setattr(probe, "draw_architecture", spy)
    out = probe.run(PARAMS, runner=FakeBackbone())
    assert drawn == {"path": "build/figures/architecture_selected.png", "head_blocks": out.selected, "n_blocks": 3}
    assert (workdir / "build/figures/architecture_selected.png").stat().st_size > 1000


def test_probe_is_byte_stable(workdir):
    probe.run(PARAMS, runner=FakeBackbone())
    first = (workdir / "build/metrics/probe/probe.json").read_bytes()
    probe.run(PARAMS, runner=FakeBackbone())
    assert (workdir / "build/metrics/probe/probe.json").read_bytes() == first


def test_reported_column_only_for_perch(workdir):
    (workdir / "paper").mkdir(exist_ok=True)
    (workdir / "paper/reported.yaml").write_text('table1:\n  knn5: {"1": 0.072, "2": 0.5}\n')
    params = {**PARAMS, "backbone": {**PARAMS["backbone"], "name": "perch_v2"}}
    probe.run(params, runner=FakeBackbone())
    table = (workdir / "build/tables/table1.md").read_text()
    assert "kNN-5 reported" in table and "| 0.500 |" in table


def test_too_few_species_is_a_clear_error(workdir):
    params = {**PARAMS, "probe": {**PARAMS["probe"], "species": 9}}
    with pytest.raises(ValueError, match="recordings.csv"):
        probe.run(params, runner=FakeBackbone())


def test_repository_holds_the_papers_table1(monkeypatch):
    from stages.paths import ROOT
    monkeypatch.chdir(ROOT)
    reported = probe.reported_table1("perch_v2")
    assert sorted(reported) == [1, 4, 7, 12, 17, 21, 22, 23, 24, 25]
    assert reported[24] == 0.648 and reported[25] == 0.595
    assert probe.reported_table1("birdnet_v24") == {}  # block numbers differ: no paper column
