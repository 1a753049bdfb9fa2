"""birdclef_eos/report/tables.py on hand-made numbers: Table 1, probe versus weights, Table 2."""
import pytest

from birdclef_eos.report.tables import agreement_sentence, fmt, probe_vs_weights, run_settings, table1_markdown, table2

RESULT = {"choices": {"k": 5, "folds": 5, "distance": "cosine", "normalisation": "standardize"},
          "n_species": 30, "n_clips_per_species": 20, "backbone": "perch_v2", "chance": 0.033, "selected": [2],
          "blocks": {"block_01": {"dim": 8, "accuracy": 0.2, "ci_low": 0.1, "ci_high": 0.3, "rank": 2},
                     "block_02": {"dim": 8, "accuracy": 0.6, "ci_low": 0.5, "ci_high": 0.7, "linear_accuracy": 0.65,
                                  "rank": 1}}}
BLOCKS = [{"index": 1, "name": "block_01", "stage": 1}, {"index": 2, "name": "block_02", "stage": 2}]


def test_table1_rows_and_the_reported_column():
    text = table1_markdown(RESULT, BLOCKS, {1: 0.072})
    assert "| 1 | 1 | 8 | 0.200 [0.100, 0.300] | - | 2 | 0.072 |" in text
    assert "| 2 | 2 | 8 | 0.600 [0.500, 0.700] | 0.650 | 1 | - |" in text
    assert "Selected blocks: [2]" in text and "reported" not in table1_markdown(RESULT, BLOCKS, {})


def test_agreement_sentences():
    assert agreement_sentence(1.0, [3, 2], [3, 2]).startswith("They agree:")
    assert agreement_sentence(0.5, [3, 2, 1], [3, 1, 2]).startswith("They agree only on the top block (3)")
    assert agreement_sentence(-1.0, [3, 2], [2, 3]).startswith("They do not agree")


def test_probe_vs_weights_spearman():
    probe = {1: {"accuracy": 0.2, "rank": 2}, 2: {"accuracy": 0.6, "rank": 1}}
    text, rho = probe_vs_weights(probe, [1, 2], [0.3, 0.7], "scalar-mix weight", None)
    assert rho == pytest.approx(1.0) and "| 2 | 0.600 | 1 | 0.700 |" in text


def test_table2_settings_kaggle_and_other_bytes():
    manifest = {"model": "attn", "tta": [-1, 0, 1], "entry": {"postprocess": True},
                "postprocess": {"prior_alpha": 0.5, "sigma": 1.0}}
    assert run_settings(manifest) == "attn, TTA x3, prior 0.5, sigma 1"
    assert run_settings(None) == "-" and fmt(None, 3) == "-" and fmt(0.12345, 3) == "0.123"
    text = table2(["v6"], {"v6": {"public": 0.9, "private": 0.8}}, {"v6": {"description": "priors", "public": 0.879}},
                  {"v6": {"public": 0.95, "private": None, "matches": False}}, {"v6": "attn"}, 3)
    assert "| v6 | priors | attn | 0.900 | 0.800 | 0.879 | 0.950 (other bytes) | - (other bytes) |" in text
    assert "belongs to other bytes" in text
