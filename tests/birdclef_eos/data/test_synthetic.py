"""The synthetic generator: byte-determinism, layout, taxonomy, and chunk labels from placed calls."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from birdclef_eos.data import birdclef
from birdclef_eos.data import synthetic
from birdclef_eos.data.synthetic import layout, world
from birdclef_eos.data.synthetic.labels import chunk_labels
from birdclef_eos.data.synthetic.sound import propagate, render_call
from birdclef_eos.data.synthetic.taxonomy import make_taxonomy
from birdclef_eos.audio.decode import read_audio

CFG = dict(sample_rate=32000, chunk_s=5, soundscape_s=20, min_overlap_s=0.1, public_fraction=0.5,
           class_shares={"Aves": 0.6, "Amphibia": 0.2, "Insecta": 0.2}, species_spread=0.06,
           rendition_jitter=0.04, site_presence=0.6, genus_share=0.0, call_interval_s=0.6, focal_snr_db=[0, 20],
           secondary_rate=0.5, bouts_per_soundscape=1.0, bout_s=[2, 10],
           genera=3, species=5, head_species=3, head_recordings=[2, 3], tail_recordings=[1, 1],
           recording_s=[1, 2], sites=2, labelled=1, unlabelled=1, test=2)


def digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    synthetic.generate(root / "birdclef", root / "hidden", 7, CFG, jobs=1)
    return root


def test_same_seed_same_bytes_serial_or_parallel(generated, tmp_path):
    synthetic.generate(tmp_path / "birdclef", tmp_path / "hidden", 7, CFG, jobs=2)
    for part in ("birdclef", "hidden"):
        assert digest(tmp_path / part) == digest(generated / part)


def test_other_seed_other_audio(generated, tmp_path):
    synthetic.generate(tmp_path / "birdclef", tmp_path / "hidden", 8, CFG, jobs=1)
    assert digest(tmp_path / "birdclef") != digest(generated / "birdclef")


def test_layout_columns_and_audio_format(generated):
    comp = generated / "birdclef"
    assert list(pd.read_csv(comp / "taxonomy.csv").columns) == birdclef.TAXONOMY_COLUMNS
    assert list(pd.read_csv(comp / "train.csv").columns) == birdclef.TRAIN_COLUMNS
    assert list(pd.read_csv(comp / "train_soundscapes_labels.csv").columns) == birdclef.LABELS_COLUMNS
    train = pd.read_csv(comp / "train.csv", keep_default_na=False)
    for name in train.filename:
        info = sf.info(str(comp / "train_audio" / name))
        assert (info.samplerate, info.channels, info.format) == (32000, 1, "FLAC")
    scapes = sorted((comp / "train_soundscapes").glob("*.flac"))
    assert len(scapes) == CFG["labelled"] + CFG["unlabelled"]
    for p in scapes:
        assert birdclef.parse_soundscape_name(p.stem, str(p))["site"].startswith("S")
        assert sf.info(str(p)).duration == pytest.approx(CFG["soundscape_s"])
    hidden = generated / "hidden"
    tests = sorted(p.stem for p in (hidden / "test_soundscapes").glob("*.flac"))
    assert len(tests) == CFG["test"] and all(s.startswith("BC2026_Test_") for s in tests)
    labels = list(pd.read_csv(comp / "taxonomy.csv").primary_label.astype(str))
    solution = pd.read_csv(hidden / "solution.csv")
    assert list(solution.columns) == ["row_id", *labels]
    assert len(solution) == CFG["test"] * CFG["soundscape_s"] // CFG["chunk_s"]
    assert list(pd.read_csv(hidden / "sample_submission.csv").columns) == list(solution.columns)
    assert set(pd.read_csv(hidden / "boards.csv").board) <= {"public", "private"}
    # the synthetic set passes the same validator as real data
    comp_tables = birdclef.read_competition(comp)
    assert len(comp_tables["train"]) == len(train)


def test_taxonomy_has_genera_across_classes():
    tax, templates = make_taxonomy(2026, 20, 48, CFG["class_shares"], 0.06)
    assert len(tax) == 48 and tax.primary_label.is_unique and tax.scientific_name.is_unique
    assert set(tax.class_name) == {"Aves", "Amphibia", "Insecta"}
    genus_sizes = tax.scientific_name.str.split(" ").str[0].value_counts()
    assert (genus_sizes > 1).sum() >= 5
    assert set(templates) == set(tax.primary_label)
    kinds = {t["kind"] for t in templates.values()}
    assert {"insect_buzz", "frog_pulse_train"} <= kinds


def test_congeners_share_a_template_kind_and_are_close():
    tax, templates = make_taxonomy(2026, 20, 48, CFG["class_shares"], 0.06)
    tax["genus"] = tax.scientific_name.str.split(" ").str[0]
    for _, group in tax.groupby("genus"):
        ts = [templates[lbl] for lbl in group.primary_label]
        assert len({t["kind"] for t in ts}) == 1
        f = np.array([t["f_start"] for t in ts])
        assert f.max() / f.min() < 1.6


def test_call_across_a_boundary_labels_both_chunks():
    events = [("a", 4.5, 5.5), ("b", 12.0, 13.0), ("c", 9.95, 11.0), ("d", 19.0, 20.5)]
    labels = chunk_labels(events, 20, 5, 0.1)
    assert labels == [["a"], ["a"], ["b", "c"], ["d"]]  # "c" overlaps chunk 1 by only 0.05 s
    assert chunk_labels(events, 20, 5, 0.0)[1] == ["a", "c"]


def test_labels_file_matches_calls_placed_at_known_times(tmp_path, monkeypatch):
    """Force one call of a known species at a known time across the 5-s boundary."""
    tax, _ = make_taxonomy(7, CFG["genera"], CFG["species"], CFG["class_shares"], 0.06)
    label = tax.primary_label.iloc[0]
    placed = {}

    def one_call(_world, site, hour, rng, duration_s):
        return [(label, 4.6, 0.1, 1.0)]  # a bout of one call starting at 4.6 s, 1 m away

    real_render = layout.render_soundscape

    def spy(w, row, out_path):
        events = real_render(w, row, out_path)
        placed[row["stem"]] = events
        return events

    monkeypatch.setattr(world, "soundscape_events", one_call)
    monkeypatch.setattr(layout, "render_soundscape", spy)
    synthetic.generate(tmp_path / "b", tmp_path / "h", 7, CFG, jobs=1)
    rows = pd.read_csv(tmp_path / "b" / "train_soundscapes_labels.csv", keep_default_na=False)
    solution = pd.read_csv(tmp_path / "h" / "solution.csv")
    assert len(placed) == CFG["labelled"] + CFG["unlabelled"] + CFG["test"]
    for stem, events in placed.items():
        assert len(events) == 1 and events[0][0] == label and events[0][1] == pytest.approx(4.6)
        end = events[0][2]
        expected = [label if c * 5 < end - 0.1 else "" for c in range(4)]
        assert expected[:2] == [label, label]  # it crosses the 5-s boundary
        if stem.startswith("BC2026_Test"):
            got = solution[solution.row_id.str.startswith(stem)][label].tolist()
            assert got == [int(bool(e)) for e in expected]
            continue
        if (rows.filename == f"{stem}.flac").any():  # the labelled soundscape
            assert rows[rows.filename == f"{stem}.flac"].primary_label.tolist() == expected
        # the call is really there: the last 0.4 s of chunk 0 carry more power than after the call
        x, sr = read_audio(tmp_path / "b" / "train_soundscapes" / f"{stem}.flac") if not \
            stem.startswith("BC2026_Test") else (None, None)
        if end < 18:
            power = np.mean(x[int(4.6 * sr):int(5.0 * sr)] ** 2)
            assert power > 4 * np.mean(x[int((end + 1) * sr):] ** 2)


def test_focal_call_is_louder_than_background():
    tax, templates = make_taxonomy(1, 3, 5, CFG["class_shares"], 0.06)
    rng = np.random.default_rng(0)
    call = render_call(templates[tax.primary_label.iloc[0]], rng, 32000, 0.04)
    far = propagate(call, 50.0, rng, 32000)
    near = propagate(call, 1.0, rng, 32000)
    assert np.abs(near).max() > 10 * np.abs(far).max()
    assert 0.9 < np.abs(call).max() <= 1.0


def _world(share: float, genera: int = 6, species: int = 24, sites: int = 8):
    cfg = dict(CFG, genus_share=share, genera=genera, species=species, sites=sites)
    taxonomy, templates = make_taxonomy(11, genera, species, cfg["class_shares"], cfg["species_spread"])
    return taxonomy, world.make_world(11, 32000, cfg, taxonomy, templates)


def _congener_similarity(taxonomy, w) -> tuple[float, float]:
    """Mean correlation of hour profiles between congeners and between species of other genera."""
    genus = dict(zip(taxonomy.primary_label, taxonomy.scientific_name.str.split().str[0]))
    same, other = [], []
    labels = list(taxonomy.primary_label)
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            r = float(np.corrcoef(w.hour_weight[a], w.hour_weight[b])[0, 1])
            (same if genus[a] == genus[b] else other).append(r)
    return float(np.mean(same)), float(np.mean(other))


def test_genus_share_mixes_the_species_own_draws_with_its_genus_profile():
    """share 0 is the world before the knob: each species' profiles are its own draws; any share
    mixes those same draws with its genus' profile (drawn from a stream of its own), so the species'
    draws never move with the knob."""
    taxonomy, null = _world(0.0)
    _, half = _world(0.5)
    profiles = world._genus_profiles(11, dict(CFG, sites=8), taxonomy)
    for label, sci in zip(taxonomy.primary_label, taxonomy.scientific_name):
        site, hour = profiles[sci.split()[0]]
        np.testing.assert_allclose(half.site_weight[label], 0.5 * null.site_weight[label] + 0.5 * site, rtol=0, atol=1e-12)
        np.testing.assert_allclose(half.hour_weight[label], 0.5 * null.hour_weight[label] + 0.5 * hour, rtol=0, atol=1e-12)
    assert null.abundance == half.abundance


def test_genus_share_one_gives_congeners_one_profile_and_half_makes_them_alike():
    taxonomy, full = _world(1.0)
    genus = taxonomy.scientific_name.str.split().str[0]
    for g, members in taxonomy.groupby(genus).primary_label:
        first = members.iloc[0]
        for label in members.iloc[1:]:
            np.testing.assert_array_equal(full.hour_weight[label], full.hour_weight[first])
            np.testing.assert_array_equal(full.site_weight[label], full.site_weight[first])
    same0, other0 = _congener_similarity(*_world(0.0))
    same5, other5 = _congener_similarity(*_world(0.5))
    assert same5 > same0 + 0.1          # congeners more alike than in the null world
    assert same5 > other5 + 0.1         # and more alike than species of different genera
