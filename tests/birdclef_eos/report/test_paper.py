import pytest

from birdclef_eos.report.paper import (FAILS, HOLDS, NOT_BUILT, UNDECIDED, UNINFORMATIVE, UNTESTABLE, ClaimError, Missing,
                                       Rule, by_interval, evaluate, lookup, render)

RULE = Rule()
REPORTED = {"table1": {"knn5": {24: 0.648, 25: 0.595}}, "heads": {"n": 430000}}


def loader(files):
    def load(name):
        if name not in files:
            raise Missing(f"metrics/{name} is absent")
        return files[name]
    return load


def test_lookup_paths():
    data = {"blocks": {"block_02": {"a": 2}, "block_01": {"a": 1}}, "xs": [1, 2, 3]}
    assert lookup(data, "blocks[-1].a") == 2 and lookup(data, "blocks[0].a") == 1 and lookup(data, "xs[-1]") == 3
    assert lookup(REPORTED, "table1.knn5.24") == 0.648   # integer YAML keys
    with pytest.raises(KeyError, match="nope"):
        lookup(data, "blocks.nope")


@pytest.mark.parametrize("low,high,direction,verdict", [
    (0.01, 0.03, "greater", HOLDS), (-0.03, -0.01, "greater", FAILS), (-0.01, 0.02, "greater", UNDECIDED),
    (-0.03, -0.01, "less", HOLDS), (-0.005, 0.004, "equivalent", HOLDS), (0.02, 0.03, "equivalent", FAILS),
    (-0.02, 0.004, "equivalent", UNDECIDED)])
def test_interval_rule(low, high, direction, verdict):
    assert by_interval((low + high) / 2, low, high, direction, RULE)[0] == verdict


def test_each_kind():
    files = {"probe.json": {"blocks": {"block_14": {"acc": 0.8, "lo": 0.75, "hi": 0.85},
                                       "block_15": {"acc": 0.6, "lo": 0.55, "hi": 0.65}}},
             "head.json": {"n": 847082, "w": [0.5, 0.2, 0.3], "blocks": [14, 15, 16]},
             "abl.json": {"cmp": {"difference": 0.01, "low": -0.01, "high": 0.03}}}
    load = loader(files)
    compare = {"id": "c", "section": "3.2", "part": "p", "claim": "x", "kind": "compare", "direction": "greater",
               "reported": ["table1.knn5.24", "table1.knn5.25"],
               "a": {"file": "probe.json", "key": "blocks[-2].acc", "low": "blocks[-2].lo", "high": "blocks[-2].hi"},
               "b": {"file": "probe.json", "key": "blocks[-1].acc", "low": "blocks[-1].lo", "high": "blocks[-1].hi"}}
    v = evaluate(compare, load, REPORTED, RULE)
    assert v.verdict == HOLDS and v.reported == {"table1.knn5.24": 0.648, "table1.knn5.25": 0.595}
    count = {"id": "n", "section": "4.1", "part": "p", "claim": "x", "kind": "count", "reported": ["heads.n"],
             "value": {"file": "head.json", "key": "n"}}
    assert evaluate(count, load, REPORTED, RULE).verdict == FAILS
    assert evaluate(count, load, REPORTED, Rule(tolerance=1.0)).verdict == HOLDS
    interval = {"id": "i", "section": "7", "part": "p", "claim": "x", "kind": "interval", "direction": "greater",
                "source": {"file": "abl.json", "key": "cmp"}}
    assert evaluate(interval, load, REPORTED, RULE).verdict == UNDECIDED
    absent = dict(interval, source={"file": "blends.json", "key": "cmp"})
    assert evaluate(absent, load, REPORTED, RULE).verdict == NOT_BUILT
    untestable = {"id": "u", "section": "6", "part": "p", "claim": "x", "kind": "untestable", "reason": "Kaggle"}
    assert evaluate(untestable, load, REPORTED, RULE).verdict == UNTESTABLE
    pairs = lambda a, b, board, confidence: {"difference": 0.02, "low": 0.01, "high": 0.03, "score_a": 0.9,  # noqa: E731
                                             "score_b": 0.88}
    paired = {"id": "q", "section": "4.3", "part": "p", "claim": "x", "kind": "paired", "a": "v6", "b": "v5",
              "board": "public", "direction": "greater"}
    assert evaluate(paired, load, REPORTED, RULE, pairs).verdict == HOLDS
    with pytest.raises(ClaimError, match="needs `board`"):
        evaluate({k: v for k, v in paired.items() if k != "board"}, load, REPORTED, RULE, pairs)


def test_rendered_numbers_follow_the_metrics():
    sections = [{"id": "p", "number": "3", "title": "Probe", "figures": ["fig.png", "absent.png"],
                 "tables": ["t1.md", "t3.md"]}]
    claim = {"id": "n", "section": "4.1", "part": "p", "claim": "small head", "kind": "count",
             "reported": ["heads.n"], "value": {"file": "head.json", "key": "n"}}

    def paper(n):
        v = evaluate(claim, loader({"head.json": {"n": n}}), REPORTED, RULE)
        return render(["- header"], sections, [v], {"t1.md": "TABLE ONE", "t3.md": None},
                      {"fig.png": True, "absent.png": False})

    a, b = paper(847082), paper(431000)
    assert "847,082" in a and "does not hold here" in a
    assert "431,000" in b and "holds here" in b and "847,082" not in b
    assert "![fig.png](../figures/fig.png)" in a and "`absent.png`: not built yet" in a
    assert "TABLE ONE" in a and "`t3.md`: not built yet" in a


def test_tost_shakeup_and_the_strong_base_precondition():
    rule = Rule(margin=0.002, confidence=0.95)
    seen = []

    def pairs(a, b, board, confidence):
        seen.append((a, b, confidence))
        if (a, b) == ("base", "v6"):
            return {"difference": -0.004, "low": -0.01, "high": 0.002, "score_a": 0.9, "score_b": 0.904}
        return {"difference": 0.0005, "low": -0.001, "high": 0.0015, "score_a": 0.9, "score_b": 0.9}

    same = {"id": "e", "section": "7", "part": "p", "claim": "x", "kind": "paired", "a": "eos8", "b": "eos7",
            "board": "private", "direction": "equivalent"}
    assert evaluate(same, loader({}), REPORTED, rule, pairs).verdict == HOLDS
    assert seen[-1] == ("eos8", "eos7", pytest.approx(0.90))       # TOST: the 90 % interval at alpha 0.05
    assert by_interval(0.004, 0.003, 0.005, "equivalent", rule)[0] == FAILS       # wholly outside +-margin
    assert by_interval(0.002, 0.001, 0.003, "equivalent", rule)[0] == UNDECIDED   # excludes 0, reaches past margin
    strong = dict(same, regime={"base": "base", "head": "v6", "board": "private"})
    v = evaluate(strong, loader({}), REPORTED, rule, pairs)
    assert v.verdict == UNINFORMATIVE and "holds here" in v.detail and "base - v6 private" in v.here
    shake = {"shakeup/shakeup.json": {"splits": 1000, "submissions": {"v6": {"observed": 0.01, "p_gain": 0.6},
                                                                      "v7": {"observed": -0.01, "p_gain": 0.01}}}}
    up = {"id": "s", "section": "6", "part": "p", "claim": "x", "kind": "shakeup", "submission": "v6",
          "direction": "greater"}
    assert evaluate(up, loader(shake), REPORTED, rule).verdict == UNDECIDED      # 60 %: a random split's coin
    assert evaluate(dict(up, submission="v7"), loader(shake), REPORTED, rule).verdict == FAILS
    assert evaluate(dict(up, submission="v7", direction="less"), loader(shake), REPORTED, rule).verdict == HOLDS
    with pytest.raises(ClaimError, match="greater or less"):
        evaluate(dict(up, direction="equivalent"), loader(shake), REPORTED, rule)
