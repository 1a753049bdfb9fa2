"""The per-class numerators w' C_k w skip the (file, class) rows with no counted pair; the result must
equal the dense product bit for bit (every term is exact in float64)."""
import numpy as np

from birdclef_eos.scoring.pairs import PairCounts, numerators, pair_counts


def dense_numerators(pc: PairCounts, W: np.ndarray) -> np.ndarray:
    return np.einsum("bi,ikj,bj->bk", W, pc.conc, W)


def soundscape_like(seed: int, n_files: int = 40, rows: int = 12, k: int = 30):
    """A few species per file, as on the hidden set: most (file, class) rows of C are zero."""
    rng = np.random.default_rng(seed)
    y = np.zeros((n_files * rows, k))
    for f in range(n_files):
        present = rng.choice(k, size=3, replace=False)
        y[f * rows:(f + 1) * rows, present] = rng.random((rows, 3)) < 0.5
    scores = np.round(rng.random(y.shape), 2)  # ties, which count 1/2
    return y, scores, np.repeat(np.arange(n_files), rows), n_files


def test_numerators_equal_the_dense_product_bit_for_bit():
    y, scores, file_of_row, n_files = soundscape_like(0)
    pc = pair_counts(y, scores, file_of_row, n_files)
    assert (pc.conc.any(axis=2)).mean() < 0.2  # the case the skipping is for
    rng = np.random.default_rng(1)
    draws = rng.multinomial(n_files, np.full(n_files, 1 / n_files), size=600).astype(np.float64)
    splits = (rng.random((300, n_files)) < 0.5).astype(np.float64)
    for W in (draws, splits):  # 600 rows: more than one 256-row block
        got = numerators(pc, W)
        assert got.shape == (len(W), y.shape[1])
        assert got.tobytes() == dense_numerators(pc, W).tobytes()


def test_a_class_without_a_counted_pair_has_a_zero_numerator():
    y, scores, file_of_row, n_files = soundscape_like(2)
    y[:, 5] = 0  # no positive: no pair
    pc = pair_counts(y, scores, file_of_row, n_files)
    out = numerators(pc, np.ones((3, n_files)))
    assert np.all(out[:, 5] == 0) and np.all(out.sum(axis=0)[y.any(axis=0)] > 0)
