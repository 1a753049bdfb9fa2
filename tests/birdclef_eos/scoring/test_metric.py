"""The competition metric on hand-computed cases."""
import numpy as np
import pandas as pd
import pytest

from birdclef_eos.scoring import metric

# column a: positives score 0.9, 0.3; negatives 0.8, 0.1 -> 3 of 4 pairs ordered: AUC 0.75
# column b: the positive 0.5 beats 0.1 and 0.2, ties 0.5 (half) -> 2.5 / 3
# column c: no positive -> dropped
Y = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])
S = np.array([[0.9, 0.1, 0.7], [0.8, 0.5, 0.1], [0.3, 0.5, 0.2], [0.1, 0.2, 0.9]])


def frames():
    solution = pd.DataFrame(Y, columns=list("abc")).assign(row_id=["f_5", "f_10", "f_15", "f_20"])
    submission = pd.DataFrame(S, columns=list("abc")).assign(row_id=["f_5", "f_10", "f_15", "f_20"])
    return solution[["row_id", *"abc"]], submission[["row_id", *"abc"]]


def test_macro_auc_by_hand_drops_the_column_with_no_positive():
    assert metric.macro_auc(Y, S) == pytest.approx((0.75 + 2.5 / 3) / 2)
    assert metric.macro_auc(Y[:, :1], S[:, :1]) == pytest.approx(0.75)


def test_a_column_with_no_positive_cannot_change_the_score():
    other = S.copy()
    other[:, 2] = [0.0, 1.0, 0.5, 0.2]
    assert metric.macro_auc(Y, other) == pytest.approx(metric.macro_auc(Y, S))


def test_score_aligns_rows_by_row_id():
    solution, submission = frames()
    shuffled = submission.iloc[[3, 1, 0, 2]].reset_index(drop=True)
    assert metric.score(solution, shuffled) == pytest.approx((0.75 + 2.5 / 3) / 2)


def test_non_numeric_column_is_an_error():
    solution, submission = frames()
    submission["b"] = ["0.1", "high", "0.5", "0.2"]
    with pytest.raises(metric.MetricError, match="'b' is not numeric"):
        metric.score(solution, submission)


def test_missing_rows_columns_and_nan_are_errors():
    solution, submission = frames()
    with pytest.raises(metric.MetricError, match="lacks label columns"):
        metric.score(solution, submission.drop(columns="a"))
    with pytest.raises(metric.MetricError, match="missing rows"):
        metric.score(solution, submission.iloc[:3])
    with pytest.raises(metric.MetricError, match="NaN"):
        metric.macro_auc(Y, np.where(S > 0.85, np.nan, S))
    with pytest.raises(metric.MetricError, match="no label column"):
        metric.macro_auc(np.zeros((3, 2)), np.zeros((3, 2)))


@pytest.mark.parametrize("seed", range(5))
def test_macro_auc_equals_sklearn_with_ties(seed):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    y = rng.random((300, 12)) < rng.uniform(0.02, 0.5, 12)
    y[:, 3] = False  # no positive: dropped
    y[0, 3] = True
    scores = np.round(rng.random((300, 12)) + 0.3 * y, 1)  # rounded: many ties
    keep = (y.sum(0) > 0) & (y.sum(0) < len(y))
    expected = roc_auc_score(y[:, keep], scores[:, keep], average="macro")
    assert metric.macro_auc(y, scores) == pytest.approx(expected, abs=1e-12)
    assert metric.macro_auc(y.astype(int), scores) == metric.macro_auc(y, scores)


def test_soft_labels_are_an_error():
    with pytest.raises(metric.MetricError, match="0/1"):
        metric.macro_auc(np.array([[0.2], [1.0]]), np.array([[0.1], [0.9]]))
