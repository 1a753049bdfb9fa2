"""The README's base-against-head paragraph follows the base stage's like-for-like comparison."""
from birdclef_eos.report.readme import base_against_head


def metrics(low: float, high: float) -> dict:
    return {"reference": "attn", "oof_macro_auc": 0.87, "reference_oof_macro_auc": 0.82,
            "base_minus_reference": {"difference": 0.05, "low": 0.03, "high": 0.07},
            "same_postprocess": {"reference_oof_macro_auc": 0.877,
                                 "base_minus_reference": {"difference": (low + high) / 2, "low": low, "high": high},
                                 "stronger": "base" if low > 0 else "attn" if high < 0 else "neither (the interval holds 0)"},
            "prior_form": {"relative": {"base": 0.87, "reference": 0.877}, "absolute": {"base": 0.863, "reference": 0.863}}}


def test_the_paragraph_names_the_stronger_side_or_says_neither():
    text = "\n".join(base_against_head(metrics(-0.016, 0.004)))
    assert "neither is stronger at this resolution" in text
    assert "base minus head -0.0060 [-0.0160, +0.0040]" in text
    assert "relative: base 0.870, `attn` 0.877; absolute: base 0.863, `attn` 0.863" in text
    assert "the **attn** is stronger" in "\n".join(base_against_head(metrics(-0.02, -0.001)))
    assert "the **base** is stronger" in "\n".join(base_against_head(metrics(0.001, 0.02)))
    assert base_against_head({"oof_macro_auc": None}) == []


def test_the_paragraph_says_at_which_windows_each_side_was_read():
    m = metrics(-0.016, 0.004)
    m["same_postprocess"].update(base_tta=[-1.0, 0.0, 1.0],
                                 reference_tta={"shifts": [-1.0, 0.0, 1.0], "oof_macro_auc_shift0": 0.871})
    protossm = {"tta_choice": {"candidates": [{"shifts": [0.0], "oof_macro_auc": 0.862},
                                              {"shifts": [-1.0, 0.0, 1.0], "oof_macro_auc": 0.865}]}}
    m["tta_candidates"] = [{"shifts": [0.0], "oof_macro_auc": 0.866}, {"shifts": [-1.0, 0.0, 1.0], "oof_macro_auc": 0.87}]
    text = "\n".join(base_against_head(m, protossm))
    assert ("at the windows each submits with, the base at test shifts [-1, 0, 1] (chosen on ProtoSSM's own OOF: "
            "[0] 0.862, [-1, 0, 1] 0.865; after the base's post-processing 0.866, 0.870), `attn` at [-1, 0, 1] "
            "(0.871 at shift 0 alone), the base scores 0.870") in text
    assert "at the windows" not in "\n".join(base_against_head(metrics(-0.016, 0.004)))  # older metrics: no claim
