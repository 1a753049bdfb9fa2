"""Choosing the TTA shift set on the OOF: the best score wins, a tie goes to fewer shifts."""
import pytest

from birdclef_eos.scoring.oof import OOFError, choose_shift_set


def test_the_best_score_wins_whatever_its_size():
    assert choose_shift_set([([0.0], 0.80), ([-1.0, 0.0, 1.0], 0.82)]) == 1
    assert choose_shift_set([([0.0], 0.84), ([-1.0, 0.0, 1.0], 0.82)]) == 0
    assert choose_shift_set([([-1.0, 0.0, 1.0], 0.70), ([0.0], 0.71), ([-0.5, 0.0, 0.5], 0.9)]) == 2


def test_a_tie_goes_to_fewer_shifts_then_to_the_earlier_entry():
    assert choose_shift_set([([-1.0, 0.0, 1.0], 0.8), ([0.0], 0.8)]) == 1
    # equal at the recorded resolution (6 decimals) is a tie
    assert choose_shift_set([([-1.0, 0.0, 1.0], 0.8000001), ([0.0], 0.8)]) == 1
    assert choose_shift_set([([-1.0, 0.0, 1.0], 0.800002), ([0.0], 0.8)]) == 0
    assert choose_shift_set([([-1.0, 0.0], 0.8), ([0.0, 1.0], 0.8)]) == 0


def test_a_nan_never_beats_a_number_and_no_candidate_is_an_error():
    assert choose_shift_set([([0.0], float("nan")), ([-1.0, 0.0, 1.0], 0.5)]) == 1
    assert choose_shift_set([([-1.0, 0.0, 1.0], float("nan")), ([0.0], float("nan"))]) == 1
    with pytest.raises(OOFError, match="no candidate"):
        choose_shift_set([])
