"""birdclef_eos/backbone/labels.py: the competition's classes read from the backbone's logits."""
import numpy as np

from birdclef_eos.backbone.labels import competition_map, scientific_name, select_logits

BIRDNET = ["Turdus merula_Eurasian Blackbird", "Turdus philomelos_Song Thrush", "Parus major_Great Tit"]


def test_species_then_genus_max_then_none():
    m = competition_map(BIRDNET, ["Parus major", "Turdus migratorius", "Rana pipiens"])
    assert m.source == ["species", "genus", "none"] and m.columns == [[2], [0, 1], []]
    assert m.counts() == {"species": 1, "genus": 1, "none": 1}
    logits = np.array([[1.0, 3.0, -2.0], [0.5, -1.0, 4.0]], np.float32)
    out = select_logits(logits, m)
    assert out.tolist() == [[-2.0, 3.0, 0.0], [4.0, 0.5, 0.0]]


def test_names_match_case_insensitively_and_placeholders_never():
    assert scientific_name("Turdus merula_Eurasian Blackbird") == "Turdus merula"
    assert competition_map(BIRDNET, ["turdus MERULA"]).source == ["species"]
    assert competition_map([f"perch_{i:05d}" for i in range(3)], ["Parus major"]).source == ["none"]
