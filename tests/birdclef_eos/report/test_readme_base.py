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
