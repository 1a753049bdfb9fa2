"""leaderboard/kaggle.yaml: each malformed entry is named by file, entry and field; a score
computed on other bytes comes back flagged, not refused."""
from __future__ import annotations

import pytest

from birdclef_eos.scoring.kaggle import KaggleScoresError, mismatch_note, read_kaggle

KNOWN = {"v1", "v2", "v5", "v6", "v7"}
SHA_A, SHA_B = "a" * 64, "b" * 64


def entry(**kw) -> str:
    fields = {"submission": "v6", "public": 0.879, "private": 0.898, "date": "2026-05-28", "sha256": SHA_A, **kw}
    return "- {" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}\n"


def write(tmp_path, text: str):
    path = tmp_path / "kaggle.yaml"
    path.write_text(text)
    return path


def error_of(path, manifests=None) -> str:
    with pytest.raises(KaggleScoresError) as err:
        read_kaggle(path, KNOWN, manifests)
    return str(err.value)


def test_missing_or_empty_file_has_no_entries(tmp_path):
    assert read_kaggle(tmp_path / "kaggle.yaml", KNOWN) == []
    assert read_kaggle(write(tmp_path, "# nothing yet\n"), KNOWN) == []
    assert read_kaggle(write(tmp_path, "[]\n"), KNOWN) == []


def test_good_entry_is_read_with_its_date_as_text(tmp_path):
    [e] = read_kaggle(write(tmp_path, entry(private="null")), KNOWN)
    assert (e["submission"], e["public"], e["private"], e["date"], e["sha256"]) == ("v6", 0.879, None, "2026-05-28", SHA_A)
    assert e["matches"] is None  # no local manifest to compare with


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, entry() + "- {submission: v7, public: 0.9\n")
    assert error_of(path).startswith(f"{path}, line 3, column")


def test_unknown_submission_names_the_known_ones(tmp_path):
    path = write(tmp_path, entry(submission="v9"))
    text = error_of(path)
    assert f"{path}: 1 problem(s)" in text
    assert "entry 0 (v9): submission: unknown submission 'v9'; known: ['v1', 'v2', 'v5', 'v6', 'v7']" in text


def test_duplicate_entry_for_one_submission(tmp_path):
    path = write(tmp_path, entry() + entry(submission="v7") + entry(public=0.88))
    assert "entry 2 (v6): duplicate entry for v6 (first at entry 0)" in error_of(path)


@pytest.mark.parametrize("field,value,message", [
    ("public", "true", "public: True is not a number"),
    ("private", "7", "private: 7 is out of range; expected a number in [0, 1]"),
    ("public", ".nan", "public: nan is out of range"),
    ("private", "-0.1", "private: -0.1 is out of range"),
    ("public", "high", "public: 'high' is not a number"),
    ("public", "null", "public: missing score (null)"),
    ("date", "yesterday", "date: 'yesterday' is not a date"),
    ("sha256", "abc", "sha256: 'abc'; expected 64 lowercase hex digits"),
])
def test_bad_field_is_named(tmp_path, field, value, message):
    path = write(tmp_path, entry(**{field: value}))
    assert f"entry 0 (v6): {message}" in error_of(path)


def test_missing_and_unknown_fields_and_all_problems_at_once(tmp_path):
    path = write(tmp_path, "- {submission: v6, public: 0.879, privat: 0.9, date: 2026-05-28}\n"
                           + entry(submission="v9", public="true") + "- just a string\n")
    text = error_of(path)
    assert "5 problem(s)" in text  # v9 is also an unknown submission
    assert "entry 0 (v6): lacks ['private', 'sha256']" in text
    assert "entry 0 (v6): unknown field(s) ['privat']" in text
    assert "entry 1 (v9): public: True is not a number" in text
    assert "entry 2: expected a mapping" in text


def test_not_a_list(tmp_path):
    assert "expected a list of entries, got dict" in error_of(write(tmp_path, "submission: v6\n"))


def test_sha256_that_differs_from_the_manifest_is_flagged_not_refused(tmp_path):
    path = write(tmp_path, entry() + entry(submission="v7", sha256=SHA_A) + entry(submission="v1"))
    entries = read_kaggle(path, KNOWN, {"v6": SHA_A, "v7": SHA_B})
    assert [e["matches"] for e in entries] == [True, False, None]
    assert mismatch_note(entries[0]) is None and mismatch_note(entries[2]) is None
    assert mismatch_note(entries[1]) == ("v7: Kaggle scored a file with sha256 aaaaaaaaaaaa..., the local "
                                         "submission is bbbbbbbbbbbb...: that score belongs to other bytes")
