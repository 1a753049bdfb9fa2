"""The generated pages and views agree with the committed results.

README.md's results block and the timings blocks (README.md, docs/benchmarks.md) must say exactly
what birdclef_eos/report/readme.py renders from metrics/, paper/reported.yaml and
benchmarks/results/default_run.json; metrics/headline/ must be what the paper stage derives from metrics/;
every DVCLive curve under metrics/ must be declared in dvc.yaml's plots, its folds in one chart.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from birdclef_eos.report import readme
from stages.paths import ROOT

FIGURE = re.compile(r"figures/[\w./-]+\.png")


def _reported() -> dict:
    return yaml.safe_load((ROOT / "paper/reported.yaml").read_text())


def test_readme_results_block_is_what_the_paper_stage_renders_from_metrics():
    text = (ROOT / "README.md").read_text()
    want = readme.results_markdown(ROOT / "metrics", _reported())
    assert readme.read_block(text, "results", "README.md").strip("\n") == want.strip("\n"), (
        "README.md's results block disagrees with metrics/: run the paper stage "
        "(dvc repro paper) or birdclef_eos.report.readme.results_markdown")


def test_readme_verdicts_block_is_what_the_paper_stage_renders():
    """The changed-verdicts table is generated from paper/verdicts.json against the baseline, never typed."""
    text = (ROOT / "README.md").read_text()
    before = json.loads((ROOT / "paper/verdicts_baseline.json").read_text())
    after = json.loads((ROOT / "paper/verdicts.json").read_text())["claims"]
    assert readme.read_block(text, "verdicts", "README.md").strip("\n") == \
        readme.verdicts_markdown(before, after).strip("\n"), "README.md's verdicts block: run the paper stage"


@pytest.mark.parametrize("page, top", [("README.md", 6), ("docs/benchmarks.md", None)])
def test_timings_blocks_are_what_the_default_run_recorded(page, top):
    import benchmarks.default_run as default_run  # the README's row count is the script's
    run = json.loads((ROOT / "benchmarks/results/default_run.json").read_text())
    top = default_run.README_STAGES if top is not None else None
    block = readme.read_block((ROOT / page).read_text(), "timings", page)
    assert block.strip("\n") == readme.timings_markdown(run, top=top).strip("\n")


def test_the_worked_experiment_is_what_the_blend_experiment_recorded():
    record = json.loads((ROOT / "benchmarks/results/blend_experiment.json").read_text())
    block = readme.read_block((ROOT / "README.md").read_text(), "experiment", "README.md")
    assert block.strip("\n") == readme.experiment_markdown(record).strip("\n"), \
        "README.md's experiment block: run benchmarks/blend_experiment.py (it rewrites the block)"
    assert "Running stage 'blend':" in block


def test_readme_is_short_and_embeds_every_figure_it_names():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 400
    embedded = set(re.findall(r"!\[[^\]]*\]\((figures/[^)]+)\)", text))
    assert embedded, "the README shows no figure"
    assert set(FIGURE.findall(text)) == embedded, "a figure is named but not embedded"
    for f in embedded:
        assert (ROOT / f).is_file(), f


def test_readme_has_no_ticket_numbers_and_links_exist_or_are_announced():
    text = (ROOT / "README.md").read_text()
    assert not re.search(r"\bissue \d+", text, re.I)
    announced = {"docs/kaggle.md", "docs/costs.md", "docs/reliability.md"}  # pages other work adds
    for link in re.findall(r"\]\((docs/[\w.-]+\.md)", text):
        assert (ROOT / link).is_file() or link in announced, link


def test_headline_metrics_are_what_the_paper_stage_derives():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    models = {n: s["model"] for n, s in params["submissions"].items() if isinstance(s, dict) and "model" in s}
    want = readme.headline(ROOT / "metrics", models)
    have = {p.relative_to(ROOT / "metrics").as_posix(): json.loads(p.read_text())
            for p in (ROOT / "metrics/headline").rglob("*.json")}
    assert have == want
    assert {k for row in want.values() for k in row} <= {"public", "private", "head_oof", "oof"}


def test_only_the_headline_is_declared_and_every_curve_is_plotted_by_model():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    assert dvc["metrics"] == ["metrics/headline"]
    declared = {}
    for entry in dvc["plots"]:
        (name, spec), = entry.items()
        files = list(spec["y"])
        assert len({Path(f).parts[:-5] for f in files}) == 1, f"{name}: one model per chart"
        assert len({Path(f).name for f in files}) == 1, f"{name}: one curve per chart"
        declared.update(dict.fromkeys(files, name))
    on_disk = {p.relative_to(ROOT).as_posix() for p in (ROOT / "metrics").rglob("*.tsv")
               if "curves" in p.parts}
    assert on_disk and on_disk == set(declared), sorted(on_disk ^ set(declared))[:5]


def test_splice_replaces_only_the_block_and_names_the_page_without_markers():
    text = "intro\n<!-- results:start -->\nold\n<!-- results:end -->\nafter\n"
    assert readme.splice(text, "results", "new") == "intro\n<!-- results:start -->\nnew\n<!-- results:end -->\nafter\n"
    with pytest.raises(readme.MarkerError, match="page.md.*timings:start"):
        readme.splice(text, "timings", "x", "page.md")


def test_headline_gives_blends_no_head_oof(tmp_path):
    (tmp_path / "leaderboard").mkdir()
    (tmp_path / "leaderboard/leaderboard.json").write_text(json.dumps(
        {"submissions": {"v6": {"public": 0.9, "private": 0.8}, "eos7": {"public": 0.7, "private": 0.6}}}))
    (tmp_path / "train/attn").mkdir(parents=True)
    (tmp_path / "train/attn/metrics.json").write_text(json.dumps({"oof_macro_auc": 0.81}))
    out = readme.headline(tmp_path, {"v6": "attn"})
    assert out == {"headline/submissions/eos7.json": {"public": 0.7, "private": 0.6},
                   "headline/submissions/v6.json": {"public": 0.9, "private": 0.8, "head_oof": 0.81},
                   "headline/models/attn.json": {"oof": 0.81}}


def test_headline_keeps_an_undefined_board_null(tmp_path):
    """A small folder's board with no scorable column: leaderboard.json has null there, so has the headline."""
    (tmp_path / "leaderboard").mkdir()
    (tmp_path / "leaderboard/leaderboard.json").write_text(json.dumps(
        {"submissions": {"v6": {"public": None, "private": 0.8, "undefined": {"public": "undefined on the public board"}}}}))
    assert readme.headline(tmp_path, {}) == {"headline/submissions/v6.json": {"public": None, "private": 0.8}}


def test_reported_block_keys_are_strings_and_tables_read_them():
    from birdclef_eos.report.tables import by_block
    rep = _reported()
    assert all(isinstance(k, str) for k in rep["table1"]["knn5"])
    assert by_block(rep["scalar_mix_weights"]["weights"], 24) == 0.473
    assert by_block({24: 1.0}, 24) == 1.0


@pytest.mark.parametrize("page, short", [("README.md", True), ("docs/kaggle.md", False)])
def test_kaggle_budget_blocks_are_what_the_bundle_budgets_recorded(page, short):
    """Each default bundle's kernel time is measured (benchmarks/results/bundle_budget*.json) and the
    pages say what the records say, rendered, never typed."""
    import benchmarks.bundle_budget as bundle_budget
    from birdclef_eos.report import kaggle_budget
    records = bundle_budget.records()
    bundles = yaml.safe_load((ROOT / "params.yaml").read_text())["bundles"]
    assert set(bundles) <= {r["bundle"] for r in records}, "a default bundle has no budget record"
    block = readme.read_block((ROOT / page).read_text(), "kaggle_budget", page)
    assert block.strip("\n") == kaggle_budget.bundle_budget_markdown(records, short=short).strip("\n"), (
        f"{page}'s kaggle_budget block disagrees with the records: python benchmarks/bundle_budget.py --pages")


def test_costs_block_is_what_the_cost_benchmark_recorded():
    """The README's stage-cost summary is rendered from benchmarks/results/costs*.json, never typed."""
    import benchmarks.costs as costs
    from birdclef_eos.report import stage_costs
    default, real = costs.records()
    assert default is not None, "the default path's cost record is missing: python benchmarks/costs.py"
    block = readme.read_block((ROOT / "README.md").read_text(), "costs", "README.md")
    assert block.strip("\n") == stage_costs.costs_markdown(default, real).strip("\n"), (
        "README.md's costs block disagrees with the records: python benchmarks/costs.py --docs-only [--real-data]")
    for rec in (r for r in (default, real) if r is not None):
        assert len({r["n_windows"] for r in rec["runs"]}) >= costs.MIN_FIT_SIZES, "a record without a fit"
