"""The README's changed-verdicts block and Table 3's parts: generated from the verdicts and the blend metrics."""
from birdclef_eos.report.blendparts import blend_parts_markdown
from birdclef_eos.report.readme import verdicts_markdown


def claim(i, verdict, detail="because"):
    return {"id": i, "verdict": verdict, "detail": detail}


def test_only_changed_verdicts_are_listed_with_why():
    before = {"commit": "abc", "claims": [claim("a", "holds here"), claim("b", "holds here"), claim("gone", "undecided")]}
    after = [claim("a", "holds here"), claim("b", "uninformative here", "base below head | so"), claim("new", "undecided")]
    text = verdicts_markdown(before, after)
    assert "| b | holds here | **uninformative here** | base below head / so |" in text
    assert "| new | (new claim) | **undecided** |" in text
    assert "| a |" not in text and "2 of 3 claims" in text and "gone" in text and "`abc`" in text
    assert "No verdict changed." in verdicts_markdown(before, before["claims"][:2])


def test_table3_parts_show_each_nominal_and_effective_share():
    against = {"smoothed_base": {"label": "base + taxonomy", "public": {"difference": -0.01, "low": -0.02, "high": 0.0},
                                 "private": {"difference": None}}}
    shares = {"eos7": {"base": {"weight": 0.93, "effective": 0.998}, "v6": {"weight": 0.07, "effective": 0.002}}}
    text = blend_parts_markdown("eos7", against, shares, "prob", 3, 0.95)
    assert "| base + taxonomy | -0.010 [-0.020, +0.000] | - |" in text
    assert "- eos7: base 99.8% (nominal 93.0%), v6 0.2% (nominal 7.0%)" in text
