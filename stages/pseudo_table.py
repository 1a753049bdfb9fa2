"""Stage `pseudo_table`: does pseudo-labelling inflate the OOF, and do the boards agree?

Reads the OOF predictions of `pseudo_table.reference` (attn, the head of v6) and of each student
(`pseudo_table.rows`: submission -> student), the labelled chunks (data/index/chunks.csv), the
submissions and the hidden solution and boards (data/hidden), and the paper's numbers
(paper/reported.yaml `pseudo`). Writes build/metrics/pseudo_table/pseudo.json and
build/tables/pseudo.md (paper/tables/pseudo.md once the paper stage publishes it): per row OOF macro-AUC, local public and
private, the difference to v6 with a paired bootstrap interval over files, the paper's numbers, and
sentences generated from them; and `pseudo_table.oof_pairs`: OOF a - b of two models on the same
chunks with a paired bootstrap interval over files (the residual student against the attention
student, a claim's test). It shows the current `pseudo.mode`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd
import yaml

from birdclef_eos.data.species import species_labels
from birdclef_eos.heads.config import Student
from birdclef_eos.io.files import read_json, write_json, write_text
from birdclef_eos.report.pseudo import pseudo_markdown, sentences
from birdclef_eos.report.pseudo_table_config import PseudoTableParams
from birdclef_eos.scoring import boards, submission
from birdclef_eos.scoring.bootstrap import paired_bootstraps
from birdclef_eos.scoring.metric import macro_auc
from birdclef_eos.scoring.oof import read_oof, truth_matrix
from stages.paths import HIDDEN, INDEX, OOF, PSEUDO_METRICS, PSEUDO_TABLE_METRICS, REPORTED, SUBMISSIONS, TABLES

PARAMS = ("pseudo_table", "pseudo.mode", "students")


class PseudoTableError(ValueError):
    pass


@dataclass
class PseudoTableResult:
    """What the notebook shows: pseudo (pseudo.json), table (pseudo.md), sentences, seconds."""
    pseudo: dict
    table: str
    sentences: list[str]
    seconds: float


def run(params: dict, key: str | None = None) -> PseudoTableResult:
    started = time.perf_counter()
    cfg, mode = params["pseudo_table"], params["pseudo"]["mode"]
    ref, ref_sub, rows = cfg["reference"], cfg["reference_submission"], cfg["rows"]
    boot = (cfg["bootstrap"], cfg["seed"], cfg["confidence"])
    labels = species_labels(INDEX)

    # typed once (birdclef_eos/report/pseudo_table_config.py); the names and the bootstrap above are its values
    cfg = PseudoTableParams.model_validate(cfg)
    ids = pd.read_csv(OOF / ref / "oof.csv", usecols=["row_id"], dtype={"row_id": str})["row_id"].tolist()
    chunks = pd.read_csv(INDEX / "chunks.csv", keep_default_na=False, dtype={"row_id": str, "labels": str})
    y = truth_matrix(chunks.set_index("row_id")["labels"].reindex(ids), labels)
    for name, pair in cfg.oof_pairs.items():
        if len(pair) != 2:
            raise PseudoTableError(f"params.yaml pseudo_table.oof_pairs.{name}: {pair} names {len(pair)} models; "
                                   "expected two, [a, b], compared as a - b")
    models = dict.fromkeys([ref, *rows.values(), *(m for pair in cfg.oof_pairs.values() for m in pair)])
    scores = {n: read_oof(OOF / n / "oof.csv", labels, ids, f"the stage that trains {n}") for n in models}
    files = boards.file_of(pd.Series(ids)).to_numpy()
    oof_ci = paired_bootstraps(y, scores[ref], {s: scores[m] for s, m in rows.items()}, files, *boot)
    # a - b on the same chunks and draws (paired_bootstraps gives reference - other: b is the reference)
    oof_pairs = {name: {"a": a, "b": b, **boards.flip(paired_bootstraps(y, scores[b], {a: scores[a]}, files, *boot)[a])}
                 for name, (a, b) in cfg.oof_pairs.items()}
    r6 = lambda x: None if x is None else round(float(x), 6)  # noqa: E731  (None: undefined on a small board)
    reference = {"submission": ref_sub, "model": ref, "oof": r6(macro_auc(y, scores[ref]))}
    students = {name: Student.model_validate(entry) for name, entry in params["students"].items()}
    out_rows = {s: {"model": m, "mode": mode if m not in students or students[m].mode is None else students[m].mode, "oof": r6(macro_auc(y, scores[m])), "vs_reference": {"oof": boards.flip(oof_ci[s])}}
                for s, m in rows.items()}
    if (HIDDEN / "solution.csv").exists():
        solution = pd.read_csv(HIDDEN / "solution.csv", dtype={"row_id": str})
        parts = boards.split_solution(solution, pd.read_csv(HIDDEN / "boards.csv", dtype=str))
        subs = {}
        for name in [ref_sub] + list(rows):
            path = SUBMISSIONS / name / "submission.csv"
            if not path.exists():
                raise PseudoTableError(f"{path}: missing; run predict@{name}")
            subs[name] = submission.read(path).set_index("row_id")
        cmp = boards.compare(parts, subs, ref_sub, list(rows), *boot)
        for board, res in cmp.items():
            if res.get("undefined"):
                reference.setdefault("undefined", {})[board] = res["undefined"]
            reference[board] = r6(res["scores"][ref_sub])
            for n in rows:
                out_rows[n][board] = r6(res["scores"][n])
                out_rows[n]["vs_reference"][board] = res["vs"][n]
    paper = (yaml.safe_load(REPORTED.read_text()) or {}).get("pseudo", {})
    summary = read_json(PSEUDO_METRICS / "summary.json", "run the pseudo stage")
    result = {"mode": mode, "teacher": summary.get("teacher"), "pseudo_labels": summary, "reference": reference,
              "rows": out_rows, "oof_pairs": oof_pairs, "paper": {k: v for k, v in paper.items() if isinstance(v, dict)},
              "bootstrap": {"draws": cfg.bootstrap, "confidence": cfg.confidence, "seed": cfg.seed}}
    said = sentences(result)
    table = pseudo_markdown(result, said)
    write_json(PSEUDO_TABLE_METRICS / "pseudo.json", result)
    write_text(TABLES / "pseudo.md", table)
    return PseudoTableResult(pseudo=result, table=table, sentences=said, seconds=time.perf_counter() - started)
