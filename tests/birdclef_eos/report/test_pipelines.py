
from birdclef_eos.report.pipelines import blend_drawing, plot_pipelines, standalone_steps
from birdclef_eos.scoring.postprocess import resolve_knobs
from stages.schema import load_params

PARAMS = load_params()
EOS7 = {"parts": {"base": "rest", "v6": "weight"}, "taxonomy": True}
BLEND = {"weight": 0.07, "space": "prob", "taxonomy": {"genus": 0.15, "class": 0.05}}
HEAD = {"variant": "attn", "head": "attn", "blocks": [12, 13, 14], "n_folds": 5}


def draw(tmp_path, weight, name):
    knobs = resolve_knobs(PARAMS["postprocess"], True, "v6").__dict__
    left = standalone_steps("v6", "birdnet_v24", HEAD, [-1.0, 0.0, 1.0], knobs)
    right = blend_drawing("eos7", EOS7, dict(BLEND, weight=weight), {"v6": "attn head"})
    plot_pipelines("Standalone v6", left, "Blend eos7", right, tmp_path / name)
    return left, right, (tmp_path / name).read_bytes()


def test_figure3_follows_the_blend_weight(tmp_path):
    left, right, a = draw(tmp_path, 0.07, "a.png")
    _, right8, b = draw(tmp_path, 0.08, "b.png")
    _, _, again = draw(tmp_path, 0.07, "c.png")
    assert [(p, round(w, 6)) for p, w, _ in right.parts] == [("base", 0.93), ("v6", 0.07)]
    assert [(p, round(w, 6)) for p, w, _ in right8.parts] == [("base", 0.92), ("v6", 0.08)]
    assert a != b and a == again
    assert any("prior" in s and "0.5" in s for s in left) and any("sigma 1" in s for s in left)


def test_switched_off_steps_are_not_drawn():
    knobs = resolve_knobs(PARAMS["postprocess"], False, "v2").__dict__
    steps = standalone_steps("v2", "birdnet_v24", HEAD, [0.0], knobs)
    assert not any("prior" in s or "Gaussian" in s for s in steps)
    assert steps[-1] == "submissions/v2"
