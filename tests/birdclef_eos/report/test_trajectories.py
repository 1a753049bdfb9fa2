import numpy as np
import pytest

from birdclef_eos.report.trajectories import TrajectoryError, embed_2d, path_lengths, plot_trajectories, trajectories


def fake_blocks(seed=0, n_species=10, per=12, widths=(24, 24, 40, 40, 48)):
    """Rows of ``n_species`` species through five blocks; species i drifts i times as far per block."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([f"sp{i:02d}" for i in range(n_species)], per)
    base = rng.normal(size=(n_species, 8))
    feats = []
    for b, w in enumerate(widths):
        proj = rng.normal(size=(8, w))
        centre = base + b * np.arange(n_species)[:, None] * 0.3
        x = centre[np.repeat(np.arange(n_species), per)] @ proj + 0.05 * rng.normal(size=(len(labels), w))
        feats.append(x.astype(np.float32))
    return feats, labels, sorted(set(labels))


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embedding_is_deterministic_for_a_seed(method):
    feats, labels, species = fake_blocks()
    a = trajectories(feats, [11, 12, 13, 14, 15], labels, species, width=6, method=method, seed=3)
    b = trajectories(feats, [11, 12, 13, 14, 15], labels, species, width=6, method=method, seed=3)
    assert a.points.shape == (10, 5, 2)
    np.testing.assert_allclose(a.points, b.points, atol=1e-6)
    assert a.showcase == b.showcase


def test_showcase_is_the_six_longest_trajectories():
    feats, labels, species = fake_blocks()
    t = trajectories(feats, [1, 2, 3, 4, 5], labels, species, width=6, showcase=6)
    lengths = path_lengths(t.points)
    np.testing.assert_allclose(lengths, t.lengths)
    expect = [species[i] for i in np.argsort(-lengths)[:6]]
    assert [t.species[i] for i in t.showcase] == expect
    assert len(t.showcase) == 6 and t.lengths[t.showcase[0]] == t.lengths.max()
    assert all(t.lengths[i] >= t.lengths[j] for i in t.showcase for j in range(10) if j not in t.showcase)


def test_width_is_capped_by_the_narrowest_block_and_recorded():
    feats, labels, species = fake_blocks(widths=(5, 30, 30))
    t = trajectories(feats, [0, 1, 2], labels, species, width=16)
    assert t.width == 5 and t.as_dict()["width"] == 5


def test_umap_without_the_package_says_how_to_install(monkeypatch):
    import builtins
    real = builtins.__import__

    def no_umap(name, *a, **k):
        if name == "umap":
            raise ImportError("no umap")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_umap)
    with pytest.raises(TrajectoryError, match="pip install umap-learn=="):
        embed_2d(np.zeros((5, 3)), "umap", 0)


def test_bad_inputs_name_the_problem():
    feats, labels, species = fake_blocks()
    with pytest.raises(TrajectoryError, match="unknown|no rows"):
        trajectories(feats, [1, 2, 3, 4, 5], labels, species + ["unknown"], width=4)
    with pytest.raises(TrajectoryError, match="method"):
        trajectories(feats, [1, 2, 3, 4, 5], labels, species, width=4, method="mds")


def test_plot_writes_the_same_bytes(tmp_path):
    feats, labels, species = fake_blocks()
    t = trajectories(feats, [1, 2, 3, 4, 5], labels, species, width=6)
    plot_trajectories(t, tmp_path / "a.png")
    plot_trajectories(t, tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
