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


TABLES = {  # numeric-looking labels (as BirdCLEF's insect and frog ids), empty and numeric-looking genus cells
    "mixed": "label_idx,primary_label,scientific_name,common_name,genus,class_name\n"
             "2,1139490,Ab cd,E f,,Insecta\n0,grasal4,Gr sa,G s,Gr,Aves\n1,476537,Ab ef,,,Amphibia\n3,22333,X y,Z,7,Aves\n",
    "numeric": "label_idx,primary_label,scientific_name,common_name,genus,class_name\n"
               "1,1139490,Ab cd,E f,12,Insecta\n0,476537,Ab ef,G,12,Aves\n2,22333,X y,Z,,Aves\n",
}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_table_reads_what_the_stages_read_before(tmp_path, name):
    """The stages read species.csv themselves before; what each used comes out the same: the label
    order (read with or without the NA defaults, or as plans.read_index_table does), the scientific
    names, and genus and class_name as taxonomy smoothing groups them (as text)."""
    import pandas as pd

    from birdclef_eos.data.plans import read_index_table

    path = tmp_path / "species.csv"
    path.write_text(TABLES[name])
    table, labels = species_table(tmp_path), species_labels(tmp_path)
    plain = pd.read_csv(path).sort_values("label_idx")
    no_na = pd.read_csv(path, keep_default_na=False).sort_values("label_idx")
    index_read = read_index_table(tmp_path, "species").sort_values("label_idx")
    for old in (plain, no_na, index_read):
        assert old["primary_label"].astype(str).tolist() == labels
    assert index_read["scientific_name"].tolist() == table["scientific_name"].tolist()
    for col in ("genus", "class_name"):
        assert no_na[col].astype(str).tolist() == table[col].tolist()
    assert table.index.tolist() == no_na.index.tolist()
    if name == "numeric":
        return  # the old set_index("primary_label").loc[labels] read (ceiling, leaderboard) failed on all-numeric labels
    shuffled = labels[::-1]  # a submission's column order
    old = pd.read_csv(path, keep_default_na=False).set_index("primary_label").loc[shuffled]
    new = table.set_index("primary_label").loc[shuffled]
    assert new.index.astype(str).tolist() == old.index.astype(str).tolist() == shuffled
    for col in ("genus", "class_name"):
        assert new[col].tolist() == old[col].astype(str).tolist()
