from birdclef_eos.report.pseudo import pseudo_markdown, sentences, verdict


def ci(d, lo, hi):
    return {"difference": d, "low": lo, "high": hi, "n_files": 10}


def result(mode="ensemble", res_oof=0.905):
    return {"mode": mode, "teacher": "attn", "reference": {"submission": "v6", "model": "attn", "oof": 0.80,
                                                           "public": 0.90, "private": 0.91},
            "rows": {"v4": {"model": "pseudo", "oof": 0.90, "public": 0.88, "private": 0.89,
                            "vs_reference": {"oof": ci(0.10, 0.05, 0.15), "public": ci(-0.02, -0.03, -0.01),
                                             "private": ci(-0.02, -0.05, 0.01)}},
                     "v4_residual": {"model": "pseudo_residual", "oof": res_oof, "vs_reference": {"oof": ci(0.1, 0.05, 0.2)}}},
            "paper": {"v4": {"oof": 0.8998, "public": 0.870, "private": 0.893}},
            "bootstrap": {"draws": 100, "confidence": 0.95, "seed": 0}}


def test_verdicts():
    assert verdict(ci(0.1, 0.05, 0.15)) == "up" and verdict(ci(-0.1, -0.2, -0.01)) == "down"
    assert verdict(ci(0.0, -0.1, 0.1)) == "within noise" and verdict(ci(0.1, None, None)) == "unmeasured"


def test_sentences_follow_the_numbers():
    said = sentences(result())
    assert "up" in said[0] and "+0.1000 [+0.0500, +0.1500]" in said[0]
    assert "public down" in said[1] and "private within noise" in said[1] and "move against the OOF" in said[1]
    assert "pseudo.mode=fold" in said[2]
    assert "null result here too" in said[3]
    assert "not a null result" in sentences(result(res_oof=0.95))[3]
    assert "never saw the scored fold" in sentences(result("fold"))[2]


def test_markdown_has_every_row_and_the_paper():
    table = pseudo_markdown(result(), sentences(result()))
    assert "| v6 |" in table and "| v4 |" in table and "| v4_residual |" in table and "0.8998" in table


def test_a_fold_teacher_row_beside_the_ensemble_one_is_reported():
    r = result()
    r["rows"]["v4"]["mode"] = "ensemble"
    r["rows"]["v4_fold"] = {"model": "pseudo_fold", "mode": "fold", "oof": 0.79,
                            "vs_reference": {"oof": ci(-0.01, -0.03, 0.01)}}
    said = sentences(r)
    assert "v4_fold, the same student taught by the fold teacher" in said[2]
    assert "OOF 0.7900" in said[2] and "within noise" in said[2] and "(-0.1100)" in said[2]
    table = pseudo_markdown(r, said)
    assert "| v4_fold | pseudo_fold | fold | 0.7900 |" in table and "| v4 | pseudo | ensemble |" in table
