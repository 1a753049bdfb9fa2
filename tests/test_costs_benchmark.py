"""The cost benchmark's pure parts (benchmarks/costs.py): the stage order, the sizes, the fit and its
extrapolation, the page. The stage runs themselves take minutes per size and are not run here."""
from __future__ import annotations

import json

import yaml

import benchmarks.costs as costs
from tests.fakes.repo_copy import REPO

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
MACS = {"birdnet_macs_per_window": 100, "perch_v2_shaped_macs_per_window": 200, "perch_tiny_macs_per_window": 10,
        "ratio": 2.0}


def test_dependency_order_follows_dvc_yaml_except_where_a_stage_reads_a_later_one():
    graph = {"dataset": set(), "extract": {"dataset"}, "blend": {"extract", "sidecar"}, "paper": {"blend"},
             "sidecar": {"extract"}}
    order = costs.dependency_order(graph, ["dataset", "extract", "blend", "paper", "sidecar"])
    assert order == ["dataset", "extract", "sidecar", "blend", "paper"]
    assert costs.dependency_order({"b": set(), "a": set()}, []) == ["a", "b"]  # unlisted: by name
    # a stage written after blend that blend does not read keeps its place after blend
    order = costs.dependency_order({"a": set(), "blend": {"side"}, "sweep": {"a"}, "side": {"a"}},
                                   ["a", "blend", "sweep", "side"])
    assert order == ["a", "side", "blend", "sweep"]


def test_scaled_multiplies_recordings_and_soundscapes_only():
    smoke = PARAMS["dataset"]["scales"]["smoke"]
    x2 = costs.scaled(smoke, 2)
    assert x2["head_recordings"] == [2 * v for v in smoke["head_recordings"]]
    assert x2["test"] == 2 * smoke["test"] and x2["species"] == smoke["species"]
    assert costs.scaled(smoke, 0.1)["labelled"] == 1  # never below one


def test_expected_windows_match_the_recorded_smoke_run_and_place_the_default_set():
    smoke = costs.expected_windows(PARAMS["dataset"]["scales"]["smoke"], PARAMS)
    recorded = json.loads((REPO / "benchmarks/results/costs.json").read_text())["runs"][0]["windows"]
    for split in ("labelled", "test", "unlabelled"):   # deterministic given the scale
        assert smoke[split] == recorded[split]
    assert abs(smoke["focal"] - recorded["focal"]) <= 0.2 * recorded["focal"]  # recordings are drawn
    rel = costs.default_set(PARAMS)
    assert rel["default_windows"] > 10 * rel["smoke_windows"] and rel["ratio"] > 10


def test_power_fit_recovers_a_power_law_and_needs_two_sizes():
    fit = costs.power_fit([10, 20, 40], [3 * n ** 0.8 for n in (10, 20, 40)])
    assert abs(fit["a"] - 3) < 1e-6 and fit["b"] == 0.8 and fit["r2"] in (1.0, None)
    assert costs.power_fit([10, 10], [1, 2]) is None


def runs(sizes):
    stage = lambda n, k: {"seconds": k * n, "peak_rss_mb": 100.0}  # noqa: E731
    return [{"multiple": m, "n_windows": n, "not_run_deadline": [],
             "stages": {"extract": stage(n, 0.1), "sidecar_features": stage(n, 0.01), "paper": {"seconds": 3.0,
                                                                                               "peak_rss_mb": 50.0}}}
            for m, n in sizes]


def test_extrapolate_scales_backbone_stages_by_the_macs_ratio():
    table = costs.extrapolate(runs([(1, 100), (2, 200), (4, 400)]), 1000, MACS)
    assert table["extract"]["birdnet_seconds"] == 100.0 and table["extract"]["perch_v2_seconds"] == 200.0
    assert table["paper"]["time_fit"]["b"] == 0 and table["paper"]["birdnet_seconds_linear"] == 3.0
    assert "perch_v2_seconds" not in table["sidecar_features"]   # BirdNET as backbone: a pointer
    assert table["sidecar_features (real-data mode)"]["perch_v2_seconds"] == 100.0
    real = costs.extrapolate(runs([(1, 100), (2, 200), (4, 400)]), 1000, MACS, real_data=True)
    assert real["extract"]["birdnet_seconds"] == 1000.0 and real["extract"]["perch_v2_seconds"] == 2000.0
    assert real["sidecar_features"]["perch_v2_seconds"] == 10.0 and "birdnet_seconds" not in real["sidecar_features"]
    assert "sidecar_features (real-data mode)" not in real


def test_a_check_run_with_one_size_skips_the_fit_and_says_so(tmp_path):
    table = costs.extrapolate(runs([(1, 100)]), 1000, MACS)
    assert all(row["time_fit"] is None and "birdnet_seconds" not in row for row in table.values())
    tot, dominant = costs.totals(table)
    result = {"date": "d", "machine": {"cpus": 2}, "load_average_1min": 0.5, "targets": [], "mode": "default",
              "competition": {"n_windows": 1000}, "macs": MACS, "runs": runs([(1, 100)]), "table": table,
              "totals": tot, "dominant": dominant, "default_set": costs.default_set(PARAMS),
              "not_run": {"bundle": "a reason"}}
    page = tmp_path / "costs.md"
    costs.write_docs(result, page)
    text = page.read_text()
    assert "Fit skipped" in text and "| paper | 3.0 | 50 |" in text and "`bundle`: a reason" in text
    assert "x1: 100 windows" in text and "of it" in text   # the sizes against the default set
    assert [p.name for p in tmp_path.iterdir()] == ["costs.md"]   # no temporary file left


def test_a_failing_stage_is_named_with_its_log(tmp_path):
    fake = tmp_path / "dvc"
    fake.write_text("#!/bin/sh\necho \"the reason for $3\"\nexit 3\n")
    fake.chmod(0o755)
    try:
        costs.run_stage(tmp_path, str(fake), "paper", tmp_path / "x1.log")
    except costs.StageFailed as err:
        assert "stage paper failed (rc 3)" in str(err) and "the reason for paper" in str(err)
    else:
        raise AssertionError("a failing stage passed")
