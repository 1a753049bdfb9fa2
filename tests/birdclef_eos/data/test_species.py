"""The species-label read every head stage shares."""
import pytest

from birdclef_eos.data.species import SpeciesError, species_labels, species_table


def test_labels_in_label_order_as_text(tmp_path):
    (tmp_path / "species.csv").write_text("label_idx,primary_label,scientific_name\n2,NA,x\n0,0123,y\n1,abc,\n")
    assert species_labels(tmp_path) == ["0123", "abc", "NA"]  # leading zero and "NA" stay text
    assert species_table(tmp_path)["scientific_name"].tolist() == ["y", "", "x"]


def test_missing_file_and_column_are_named(tmp_path):
    with pytest.raises(SpeciesError, match=r"species.csv: not found; run the dataset stage"):
        species_labels(tmp_path)
    (tmp_path / "species.csv").write_text("label_idx,name\n0,a\n")
    with pytest.raises(SpeciesError, match=r"species.csv: no column\(s\) \['primary_label'\]"):
        species_labels(tmp_path)
