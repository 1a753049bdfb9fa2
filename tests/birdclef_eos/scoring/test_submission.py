"""Building, validating and hashing submissions."""
import numpy as np
import pandas as pd
import pytest

from birdclef_eos.scoring import submission as sb
from birdclef_eos.io.files import sha256_tree

LABELS = ["a", "b"]


def sample():
    return pd.DataFrame({"row_id": ["f1_5", "f1_10", "f2_5"], "a": 0.0, "b": 0.0})


def good():
    return pd.DataFrame({"row_id": ["f1_5", "f1_10", "f2_5"], "a": [0.1, 0.2, 0.3], "b": [0.4, 0.5, 0.6]})


def test_build_puts_rows_in_sample_submission_order():
    sub = sb.build(["f2_5", "f1_5", "f1_10"], np.array([[3, 6], [1, 4], [2, 5]]) / 10, LABELS, sample())
    pd.testing.assert_frame_equal(sub, good())


def test_build_names_a_missing_row_and_a_duplicate():
    with pytest.raises(sb.SubmissionError, match="'f2_5'"):
        sb.build(["f1_5", "f1_10"], np.zeros((2, 2)), LABELS, sample())
    with pytest.raises(sb.SubmissionError, match="more than once"):
        sb.build(["f1_5", "f1_5", "f2_5"], np.zeros((3, 2)), LABELS, sample())


def test_validate_accepts_a_good_submission():
    sb.validate(good(), sample(), name="v6")


@pytest.mark.parametrize("break_it, message", [
    (lambda s: s.drop(columns="b"), r"v6: missing column\(s\) \['b'\]"),
    (lambda s: s.assign(c=0.5), r"v6: unexpected column\(s\) \['c'\]"),
    (lambda s: s[["row_id", "b", "a"]], "v6: columns are not in sample_submission order"),
    (lambda s: s.assign(row_id=["f1_5", "f1_10", "f3_5"]), "v6: wrong row ids .*'f2_5'.*'f3_5'"),
    (lambda s: s.assign(row_id=["f1_5", "f1_5", "f2_5"]), "v6: duplicate row_id 'f1_5'"),
    (lambda s: s.assign(a=["0.1", "x", "0.3"]), "v6: column 'a' is not numeric \\(row 'f1_10'\\)"),
    (lambda s: s.assign(b=[0.1, np.nan, 0.3]), "v6: column 'b' has a NaN or infinite value \\(row 'f1_10'\\)"),
])
def test_validate_names_the_submission_and_the_fault(break_it, message):
    with pytest.raises(sb.SubmissionError, match=message):
        sb.validate(break_it(good()), sample(), name="v6")


def test_sha256_of_files_and_folders(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "fold_0.pt").write_bytes(b"abc")
    (tmp_path / "x.csv").write_bytes(b"")
    digests = sha256_tree([tmp_path / "m", tmp_path / "x.csv"])
    assert list(digests.values()) == [
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",   # sha256("abc")
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",   # sha256("")
    ]
    assert list(digests)[0].endswith("m/fold_0.pt")


@pytest.mark.parametrize("frame", [
    pd.DataFrame({"row_id": ["f_5", "f_10"], "a": [0.1234567, -0.0], "b": np.array([1e-9, 0.5], np.float32)}),
    pd.DataFrame({"row_id": ["f_5", "f_10"], "a": [0.5, np.nan]}),       # NaN: pandas writes an empty field
    pd.DataFrame({"row_id": ['f,"5', "f_10"], "a": [0.5, 0.25]}),        # a field pandas quotes
    pd.DataFrame({"row_id": [1, 2], "a": [0.5, 0.25]}),                  # not a submission's shape
])
def test_csv_text_is_pandas_to_csv_byte_for_byte(frame):
    assert sb.csv_text(frame) == frame.to_csv(index=False, float_format="%.6f")
    assert sb.csv_text(frame, "%.6g") == frame.to_csv(index=False, float_format="%.6g")
