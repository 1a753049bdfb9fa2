"""birdclef_eos/data/plans.py: which windows go through the backbone."""
import pandas as pd
import pytest

from birdclef_eos.data.plans import PlanError, focal_windows, soundscape_windows


def test_focal_windows_are_seeded_and_inside_the_file():
    recs = pd.DataFrame({"recording_id": ["b/1", "a/1"], "path": ["b.flac", "a.flac"], "primary_label": ["b", "a"],
                         "secondary_labels": ["", "b"], "duration_s": [12.0, 3.0]})
    one, two = focal_windows(recs, 3, seed=0), focal_windows(recs, 3, seed=0)
    assert one.equals(two) and len(one) == 6
    assert list(one["file_id"][:3]) == ["a/1"] * 3 and (one.loc[one.file_id == "a/1", "start_s"] == 0).all()
    assert (one.loc[one.file_id == "b/1", "start_s"].between(0, 7)).all()


def test_soundscape_windows_shift_only_the_test_chunks():
    scapes = pd.DataFrame({"soundscape_id": ["L", "T"], "path": ["l.flac", "t.flac"]})
    chunks = pd.DataFrame({"soundscape_id": ["L", "T"], "chunk": [0, 0], "start_s": [0.0, 0.0], "row_id": ["L_5", "T_5"],
                           "split": ["labelled", "test"], "labels": ["a", ""], "site": ["S1", "S2"], "hour": [6, 7]})
    plan = soundscape_windows(scapes, chunks, [-1.0, 0.0, 1.0])
    assert list(plan["source"]) == ["soundscape", "test", "test", "test"]
    assert list(plan["read_s"]) == [0.0, -1.0, 0.0, 1.0]
    with pytest.raises(PlanError, match="soundscape_id"):
        soundscape_windows(scapes[:1], chunks, [0.0])
