"""Stage `paper`: publish the small results, then paper/paper.md, the study regenerated, with a verdict per claim.

First the publishing (a copy, under a second): the stages that compute metrics, tables and figures
write them under build/ as cached DVC outputs (so they keep DVC's run-cache); this stage mirrors
build/metrics -> metrics/, build/tables -> paper/tables/ and build/figures -> figures/ as `cache:
false` outputs (birdclef_eos/report/publish.py): committed with the code, a clone shows every table
and figure, and `dvc metrics diff A B` compares any two commits without the DVC cache. It adds
metrics/headline/ (one small file per submission and per trained model, the only metrics dvc.yaml
declares, so `dvc metrics show` fits a screen) and rewrites the results block of README.md from the
published metrics/ and paper/reported.yaml (birdclef_eos/report/readme.py).

Then the paper, from the published results only: metrics/ (JSON), paper/tables/ (markdown),
figures/ (linked by relative path), plus paper/claims.yaml (the sections, the numbers each shows
and the claims, each with how it is tested), paper/reported.yaml (the paper's numbers),
data/index (the data set's counts) and, for `paired` claims, the submissions and the hidden
solution (data/hidden): a paired bootstrap over files. It writes paper/verdicts.json (every
claim's numbers and verdict) first and renders paper/paper.md from it; both are git-tracked
(`cache: false`). The verdict rule is `paper.verdict`, fixed before any number is read, and the
claims file is refused unless its sha256 is the one paper/claims.sha256 records (a claim's test
changes only in a commit that says why). The README's `verdicts` block (every verdict that differs
from paper/verdicts_baseline.json, with why) is rewritten here. A claim or
a table whose file is absent is shown "not built yet", never invented.

One stage, not a copy stage and a paper stage: both re-run on every experiment, and each stage costs
DVC a rewrite of dvc.lock. README.md is git-tracked and deliberately not a DVC output: DVC would
delete it before the stage runs and lock its every byte, so a prose edit would make the pipeline
stale; only the text between its markers is rewritten (atomically). Cheap (seconds), no notebook.
"""
from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from birdclef_eos.io.files import read_yaml, write_json, write_text
from birdclef_eos.knobs import fill
from birdclef_eos.report import readme
from birdclef_eos.report.publish import mirror_small
from birdclef_eos.report.paper_config import PaperParams
from birdclef_eos.report.paper import Missing, Rule, Untestable, check_frozen, evaluate, lookup, num, render
from birdclef_eos.scoring import boards, submission
from birdclef_eos.scoring.bootstrap import paired_bootstraps
from stages.paths import (CLAIMS, DEFAULT_RUN, HIDDEN, INDEX, PAPER, PUBLISHED, REPORTED, ROOT, SUBMISSIONS, TABLES,
                          VERDICTS)

PARAMS = ("paper", "dataset.source", "dataset.scale", "backbone.name", "submissions")
METRICS_DIR = PUBLISHED[Path("build/metrics")]    # metrics/
README = Path("README.md")  # its `results` and `verdicts` blocks are written here
CLAIMS_SHA = CLAIMS.with_name("claims.sha256")              # the claims' recorded sha256 (report/paper.py check_frozen)
VERDICTS_BASELINE = VERDICTS.with_name("verdicts_baseline.json")  # the verdicts before the tests were rebuilt
TABLES_DIR = PUBLISHED[TABLES]                    # paper/tables/
# every experiment re-runs this stage: a papermill kernel would cost as much as its work, and a notebook
# would only repeat paper/paper.md and paper/verdicts.json, which it writes; the run prints the files
# published and the counts per verdict (``PaperResult.__str__``).
NOTEBOOK = False
FIGURES_DIR = PUBLISHED[Path("build/figures")]    # figures/


class PaperError(ValueError):
    pass


@dataclass
class PublishResult:
    """Every published file with its size in bytes and sha256, and whether README.md's results block changed."""
    files: dict[str, dict]
    readme_changed: bool = False

    def __str__(self) -> str:
        return (f"published {len(self.files)} files to {', '.join(str(t) for t in PUBLISHED.values())}"
                + ("; README.md results rewritten" if self.readme_changed else ""))


@dataclass
class PaperResult:
    """What the stage prints (``__str__``: the files published, the counts) and its tests read: what was
    published, the verdicts (paper/verdicts.json's `claims`), the counts per verdict, the markdown, seconds."""
    published: PublishResult
    verdicts: list[dict]
    counts: dict[str, int]
    markdown: str
    seconds: float

    def __str__(self) -> str:
        return f"{self.published}\n{PAPER} and {VERDICTS} in {self.seconds:.1f} s: {self.counts}"


def publish(params: dict) -> PublishResult:
    """build/metrics, build/tables, build/figures -> metrics/ (plus metrics/headline/), paper/tables/,
    figures/; then README.md's results block from the published metrics/ and paper/reported.yaml."""
    models = {name: s["model"] for name, s in params["submissions"].items() if isinstance(s, dict) and "model" in s}
    files = {}
    for source, target in PUBLISHED.items():
        extra = (lambda src: readme.headline(src, models)) if target == METRICS_DIR else None
        files.update(mirror_small(source, target, extra))
    changed = False
    if README.exists():
        reported = read_yaml(REPORTED) if REPORTED.exists() else {}
        changed = readme.update_page(README, "results", readme.results_markdown(METRICS_DIR, reported or {}))
    return PublishResult(files=files, readme_changed=changed)


def load_metrics(file: str) -> dict:
    path = METRICS_DIR / file
    if not path.exists():
        raise Missing(f"{path} is absent: the stage that writes it has not run")
    return json.loads(path.read_text(encoding="utf-8"))


def make_pairs(rule: Rule):
    """``pairs(a, b, board, confidence)``: paired bootstrap of submissions a - b over one local board's
    files (bootstrap.paired_bootstraps, the one helper every paired comparison uses), cached."""
    state: dict = {}

    def pairs(a: str, b: str, board: str, confidence: float | None = None) -> dict:
        confidence = rule.confidence if confidence is None else confidence
        if (a, b, board, confidence) in state:
            return state[(a, b, board, confidence)]
        if not (HIDDEN / "solution.csv").exists():
            raise Untestable(f"{HIDDEN}/solution.csv is absent (real-data mode: the hidden labels are Kaggle's)")
        for n in (a, b):
            if not (SUBMISSIONS / n / "submission.csv").exists():
                raise Missing(f"{SUBMISSIONS}/{n}/submission.csv is absent: the stage that writes it has not run")
        if "parts" not in state:
            solution = pd.read_csv(HIDDEN / "solution.csv", dtype={"row_id": str})
            state["parts"] = boards.split_solution(solution, pd.read_csv(HIDDEN / "boards.csv", dtype=str))
        if board not in state["parts"]:
            raise PaperError(f"{CLAIMS}: board {board!r}; expected one of {' | '.join(state['parts'])}")
        part = state["parts"][board]
        reason = boards.undefined_reason(part, board)
        if reason:  # no scorable column on this board (a small folder's): no difference, and why
            state[(a, b, board, confidence)] = {"difference": None, "low": None, "high": None, "score_a": None,
                                                "score_b": None, "undefined": reason}
            return state[(a, b, board, confidence)]
        cols = [c for c in part.columns if c != "row_id"]
        ids = part["row_id"].astype(str)
        mats = [submission.read(SUBMISSIONS / n / "submission.csv").set_index("row_id").reindex(ids)[cols]
                .to_numpy(dtype=np.float64) for n in (a, b)]
        ci = paired_bootstraps(part[cols].to_numpy(), mats[0], {"b": mats[1]}, boards.file_of(ids).to_numpy(),
                               rule.bootstrap, rule.seed, confidence)["b"]
        state[(a, b, board, confidence)] = ci.as_dict()
        return state[(a, b, board, confidence)]

    return pairs


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "uncommitted (no git)"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "uncommitted"


def run_seconds() -> float | None:
    """The sum of the top-level `seconds` every published metrics file records (None: none does)."""
    found = []
    for f in sorted(METRICS_DIR.rglob("*.json")) if METRICS_DIR.is_dir() else []:
        try:
            s = json.loads(f.read_text(encoding="utf-8")).get("seconds")
        except (ValueError, AttributeError):
            continue
        if isinstance(s, (int, float)):
            found.append(float(s))
    return sum(found) if found else None


def run_time() -> str:
    """The last measured full `dvc repro` (benchmarks/default_run.py), else the stages' recorded seconds."""
    if DEFAULT_RUN.exists():
        r = json.loads(DEFAULT_RUN.read_text(encoding="utf-8"))
        m = r.get("machine", {})
        return (f"{r['total_s'] / 60:.1f} min for the whole default `{r['command']}` (measured {r.get('date', '?')} on "
                f"{m.get('cpus', '?')} CPU cores, {DEFAULT_RUN}; per stage in the README's budget ledger)")
    secs = run_seconds()
    return (f"{secs / 60:.1f} min (the sum of the stages' recorded seconds)" if secs is not None
            else "not recorded (run benchmarks/default_run.py; the README's stage table has timings)")


def header(params: dict, rule: Rule) -> list[str]:
    ds = params["dataset"]
    counts = []
    if (INDEX / "species.csv").exists():
        counts.append(f"{len(pd.read_csv(INDEX / 'species.csv')):,} species")
    if (INDEX / "recordings.csv").exists():
        counts.append(f"{len(pd.read_csv(INDEX / 'recordings.csv')):,} focal recordings")
    if (INDEX / "soundscapes.csv").exists():
        split = pd.read_csv(INDEX / "soundscapes.csv", usecols=["split"])["split"].value_counts()
        counts.append("soundscapes: " + ", ".join(f"{int(n):,} {s}" for s, n in sorted(split.items())))
    took = run_time()
    scale = f", scale `{ds['scale']}`" if ds["source"] == "synthetic" else ""
    return [f"- **Data set:** `{ds['source']}`{scale} ({'; '.join(counts) or 'index not built yet'})",
            f"- **Backbone:** `{params['backbone']['name']}`",
            f"- **Commit:** `{commit()}` (the commit the run started from)",
            f"- **Run time:** {took}",
            f"- **Verdict rule** (`paper.verdict`, fixed before any number is read): a claimed difference "
            f"**holds here** when its paired bootstrap {rule.confidence:.0%} interval over files ({rule.bootstrap:,} "
            f"draws, seed {rule.seed}) excludes 0 in the claimed direction, **does not hold here** when it excludes 0 "
            f"the other way, and is **undecided** otherwise; two values with separate intervals: the intervals must "
            f"not overlap; no interval: `{rule.without_interval}`; an equivalence holds by two one-sided tests "
            f"(TOST, the {1 - 2 * (1 - rule.confidence):.0%} paired interval) within +-{rule.margin:g}, the paper's "
            f"resolution; private against public is judged by the share of random public/private splits showing the "
            f"claimed direction (at least {rule.confidence:.0%}: holds; at most {1 - rule.confidence:.0%}: does not "
            f"hold); a claim that needs the paper's strong base is **uninformative here** unless our base beats the "
            f"head by more than {rule.margin:g} (paired interval); a count within {rule.tolerance:.0%} of the "
            f"reported one. The claims are frozen by `paper/claims.sha256`.",
            "- Every number below is read from `metrics/`, `paper/tables/` or `paper/verdicts.json` (written by "
            "this stage from `paper/claims.yaml`); none is typed in. Figures are the published `figures/`."]


def notes_of(sections: list[dict], digits: int) -> dict[str, list[str]]:
    """Per section, `notes` entries {text, file, key} rendered as "text: value (metrics/file)"."""
    out = {}
    for s in sections:
        lines = []
        for n in s.get("notes", []):
            try:
                value = num(lookup(load_metrics(n["file"]), n["key"], f"{CLAIMS} section {s['id']}"), digits)
            except Missing:
                value = "not built yet"
            lines.append(f"{n['text']}: {value} (`{METRICS_DIR / n['file']}` `{n['key']}`)")
        out[s["id"]] = lines
    return out


def run(params: dict, key: str | None = None) -> PaperResult:
    started = time.perf_counter()
    published = publish(params)
    cfg = PaperParams.model_validate(params["paper"])  # typed once (birdclef_eos/report/paper_config.py)
    rule = Rule(**fill(Rule, cfg.verdict, {}))
    check_frozen(CLAIMS, CLAIMS_SHA)
    spec = read_yaml(CLAIMS, PaperError)
    if not isinstance(spec, dict) or not isinstance(spec.get("sections"), list) or not isinstance(spec.get("claims"), list):
        raise PaperError(f"{CLAIMS}: expected a mapping with lists `sections` and `claims`")
    ids = [s["id"] for s in spec["sections"]]
    for c in spec["claims"]:
        if c.get("part") not in ids:
            raise PaperError(f"{CLAIMS}: claim {c.get('id')} has part {c.get('part')!r}; sections: {' | '.join(ids)}")
    reported = read_yaml(REPORTED, PaperError)
    pairs = make_pairs(rule)
    verdicts = [evaluate(c, load_metrics, reported, rule, pairs) for c in spec["claims"]]
    write_json(VERDICTS, {"rule": cfg.verdict.model_dump(), "claims": [v.as_dict() for v in verdicts]})
    names_t = {t for s in spec["sections"] for t in s.get("tables", [])}
    names_f = {f for s in spec["sections"] for f in s.get("figures", [])}
    tables = {t: (TABLES_DIR / t).read_text(encoding="utf-8") if (TABLES_DIR / t).exists() else None for t in names_t}
    figures = {f: (FIGURES_DIR / f).exists() for f in names_f}
    md = render(header(params, rule), spec["sections"], verdicts, tables, figures, cfg.digits,
                notes_of(spec["sections"], cfg.digits))
    write_text(PAPER, md)
    if README.exists() and VERDICTS_BASELINE.exists():
        baseline = json.loads(VERDICTS_BASELINE.read_text(encoding="utf-8"))
        readme.update_page(README, "verdicts", readme.verdicts_markdown(baseline, [v.as_dict() for v in verdicts]))
    counts = {}
    for v in verdicts:
        counts[v.verdict] = counts.get(v.verdict, 0) + 1
    return PaperResult(published=published, verdicts=[v.as_dict() for v in verdicts], counts=counts, markdown=md,
                       seconds=time.perf_counter() - started)
