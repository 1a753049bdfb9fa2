"""The generated parts of README.md and docs/: results tables, headline metrics, the run's timings.

Nothing in the README's results section is typed by hand. The `paper` stage renders it from the
published `metrics/` and `paper/reported.yaml` (``results_markdown``) and splices it between
``<!-- results:start -->`` and ``<!-- results:end -->`` (``splice``); benchmarks/default_run.py
does the same for ``<!-- timings:start -->`` ... from benchmarks/results/default_run.json
(``timings_markdown``). tests/stages/test_generated_pages.py re-renders both from the committed files and fails
when a page disagrees with them.

``headline`` is the small view `dvc metrics show` reads: one file per submission (its local public
and private score, and the OOF of the head it predicts with) and one per trained model (its OOF),
all with the same few keys, so DVC prints one row per file and a handful of columns.
"""
from __future__ import annotations

import json
from pathlib import Path

from birdclef_eos.io.files import write_text

GENERATED = "*Generated from `{source}` by {writer}; edit the generator, not this block.*"


class MarkerError(ValueError):
    """A page lacks (or repeats) the markers of a generated block."""


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def read_block(text: str, name: str, where: str = "") -> str:
    """The text between the ``name`` markers (without them)."""
    start, end = markers(name)
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise MarkerError(f"{where}: needs exactly one {start} followed by one {end}")
    return text[text.index(start) + len(start):text.index(end)]


def splice(text: str, name: str, block: str, where: str = "") -> str:
    """``text`` with the ``name`` block replaced by ``block`` (the markers stay)."""
    read_block(text, name, where)
    start, end = markers(name)
    return text[:text.index(start) + len(start)] + "\n" + block.strip("\n") + "\n" + text[text.index(end):]


def update_page(path: Path, name: str, block: str) -> bool:
    """Rewrite the ``name`` block of ``path`` (atomically); False when it already says ``block``."""
    text = Path(path).read_text(encoding="utf-8")
    new = splice(text, name, block, str(path))
    if new == text:
        return False
    write_text(path, new)
    return True


def _load(path: Path) -> dict:
    return json.loads(Path(path).read_text()) if Path(path).exists() else {}


def _model_name(rel: Path) -> str:
    """metrics/<folder>/metrics.json -> its model: train/attn -> attn, vit/196 -> vit196 (the names
    of the submissions these models make on their own: sidecar, vit196, base)."""
    parts = rel.parent.parts
    return parts[-1] if parts[0] == "train" else "".join(parts)


def model_metrics(metrics_dir: Path) -> dict[str, dict]:
    """Every trained model's metrics.json that reports an OOF macro-AUC, by model name."""
    out = {}
    for f in sorted(Path(metrics_dir).rglob("metrics.json")):
        d = json.loads(f.read_text())
        if "oof_macro_auc" in d:
            out[_model_name(f.relative_to(metrics_dir))] = d
    return out


def headline(metrics_dir: Path, submission_models: dict[str, str]) -> dict[str, dict]:
    """The headline view: relative path (under metrics/) -> a flat dict of at most three scores.

    ``submission_models`` maps a submission to the model it predicts with (params `submissions`);
    a submission named as a model (sidecar, vit196, base) predicts with that model; a blend has no
    single head, so its file has no ``head_oof``.
    """
    models = model_metrics(metrics_dir)
    board = _load(Path(metrics_dir) / "leaderboard/leaderboard.json").get("submissions", {})
    out = {}
    for name, s in sorted(board.items()):
        # a board where the score is undefined (a small folder's) stays null here, as in leaderboard.json
        row = {b: None if s[b] is None else round(float(s[b]), 6) for b in ("public", "private")}
        model = submission_models.get(name, name)
        if model in models:
            row["head_oof"] = round(float(models[model]["oof_macro_auc"]), 6)
        out[f"headline/submissions/{name}.json"] = row
    for name, m in models.items():
        out[f"headline/models/{name}.json"] = {"oof": round(float(m["oof_macro_auc"]), 6)}
    return out


def _f(x, digits: int = 3) -> str:
    return "-" if x is None else f"{float(x):.{digits}f}"


def _ci(c: dict | None, digits: int = 3) -> str:
    if not c or c.get("difference") is None:
        return "-"
    if c.get("low") is None:
        return f"{c['difference']:+.{digits}f}"
    return f"{c['difference']:+.{digits}f} [{c['low']:+.{digits}f}, {c['high']:+.{digits}f}]"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def results_markdown(metrics_dir: Path, reported: dict) -> str:
    """The README's results section: Tables 2-4 in short and every trained model's OOF."""
    metrics_dir = Path(metrics_dir)
    board = _load(metrics_dir / "leaderboard/leaderboard.json").get("submissions", {})
    t3 = _load(metrics_dir / "leaderboard/table3.json")
    t4 = _load(metrics_dir / "leaderboard/table4.json")
    n_public = next(iter(t3.get("compare", {}).get("public", {}).get("vs", {}).values()), {}).get("n_files")
    n_private = next(iter(t3.get("compare", {}).get("private", {}).get("vs", {}).values()), {}).get("n_files")
    lines = [GENERATED.format(source="metrics/` and `paper/reported.yaml", writer="the `paper` stage"), ""]
    boards = (f"{n_public} public and {n_private} private files" if n_public and n_private else "its files")
    lines += [f"Local scores are macro ROC-AUC on the local hidden set ({boards}); the paper's are Kaggle's "
              "leaderboard (Perch v2 features, the real data). Full tables: `paper/tables/`.", ""]

    rep2 = reported.get("table2", {})
    rows = [[n, rep2[n].get("description", ""), _f(board.get(n, {}).get("public")),
             _f(board.get(n, {}).get("private")), _f(rep2[n].get("public"))]
            for n in rep2 if isinstance(rep2[n], dict)]
    best = max((n for n in rep2 if n in board), key=lambda n: board[n]["private"], default=None)
    lines += ["**Table 2: the standalone head, step by step** (`paper/tables/table2.md`)", ""]
    lines += _table(["submission", "step (paper)", "local public", "local private", "paper public"], rows)
    if best:
        lines += ["", f"Best standalone submission on the local private board: **{best}** "
                      f"({_f(board[best]['private'])})."]
    lines.append("")

    for number, data, ref, rep in ((3, t3, "v6", reported.get("table3", {})),
                                   (4, t4, "eos7", reported.get("table4", {}))):
        if not data:
            continue
        ref = data.get("reference", ref)
        title = {3: "the blend against the standalone submissions",
                 4: "the ceiling attempts (differences to eos7)"}[number]
        lines += [f"**Table {number}: {title}** (`paper/tables/table{number}.md`)", ""]
        vs = data.get("compare", {}).get("private", {}).get("vs", {})
        rows = []
        for n in data.get("rows", []):
            s = data["scores"].get(n, {})
            r = rep.get(n, {}) if isinstance(rep.get(n), dict) else {}
            rows.append([n, r.get("description", ""), _f(s.get("public")), _f(s.get("private")),
                         _f(r.get("public")), _f(r.get("private")), _ci(vs.get(n))])
        lines += _table(["submission", "what (paper)", "local public", "local private", "paper public",
                         "paper private", f"private - {ref} [95% CI]"], rows)
        lines.append("")
        if number == 3 and data.get("against"):
            blend = data.get("blend", "the blend")
            lines += [f"{blend} against its parts ({blend} minus the row; paired bootstrap over files):", ""]
            lines += _table(["against", "public [95% CI]", "private [95% CI]"],
                            [[a["label"], _ci(a.get("public"), 4), _ci(a.get("private"), 4)] for a in data["against"].values()])
            lines.append("")
        if number == 3 and data.get("effective_share"):
            lines += [f"Each part's effective share (its share of the per-column spread of the weighted parts, median "
                      f"over columns; `{data.get('space')}` space) against its nominal weight:", ""]
            lines += [f"- {n}: " + ", ".join(f"{p} {100 * v['effective']:.1f}% (nominal {100 * v['weight']:.1f}%)"
                                             for p, v in parts.items())
                      for n, parts in data["effective_share"].items()]
            lines.append("")
        if number == 3:
            lines += space_choice(_load(metrics_dir / "blend/blend.json"))

    lines += base_against_head(_load(metrics_dir / "base/metrics.json"), _load(metrics_dir / "protossm/metrics.json"))
    models = model_metrics(metrics_dir)
    lines += ["**Every trained model** (OOF: out-of-fold macro ROC-AUC on the labelled soundscape chunks; "
              "`metrics/headline/models/`)", ""]
    rows = [[n, _f(m["oof_macro_auc"]), _f(m.get("focal_top1")),
             f"{m['n_params']:,}" if isinstance(m.get("n_params"), int) else "-"]
            for n, m in models.items()]
    lines += _table(["model", "OOF macro-AUC", "focal top-1", "parameters"], rows)
    return "\n".join(lines).strip("\n") + "\n"


def _shifts(shifts: list) -> str:
    return "[" + ", ".join(f"{float(s):g}" for s in shifts) + "]"


def tta_windows(base: dict, protossm: dict, ref: str) -> str:
    """Which windows each side's OOF reads (the shifts it submits with) and what the other candidates
    scored: ProtoSSM's sets on its own OOF (its stage's ``tta_choice``, where the choice is made) and
    through the base's post-processing (the base stage's ``tta_candidates``), the head's shift 0
    alone. "" for metrics written before the windows were recorded."""
    same = base["same_postprocess"]
    if "base_tta" not in same or "reference_tta" not in same:
        return ""
    raw = (protossm.get("tta_choice") or {}).get("candidates") or []
    post = base.get("tta_candidates") or []
    chosen = ""
    if raw:
        chosen = " (chosen on ProtoSSM's own OOF: " + ", ".join(f"{_shifts(c['shifts'])} {_f(c['oof_macro_auc'])}"
                                                                 for c in raw)
        chosen += ("; after the base's post-processing " + ", ".join(f"{_f(c['oof_macro_auc'])}" for c in post)
                   if post else "") + ")"
    head = same["reference_tta"]
    alone = (f" ({_f(head['oof_macro_auc_shift0'])} at shift 0 alone)"
             if "oof_macro_auc_shift0" in head and head["shifts"] != [0.0] else "")
    return (f" and at the windows each submits with, the base at test shifts {_shifts(same['base_tta'])}{chosen}, "
            f"`{ref}` at {_shifts(head['shifts'])}{alone}")


def space_choice(blend: dict) -> list[str]:
    """Where the blends mix and why: the OOF comparison of `blend.space: oof` (the blend stage's
    ``space_on_oof``), or that the space was set by hand. [] without the blend stage's file."""
    if not blend:
        return []
    space, oof = blend["shared"]["space"], blend.get("space_on_oof")
    if not oof:
        return [f"The blends mix in `{space}` space, set by hand (`blend.space`).", ""]
    return [f"The blends mix in `{space}` space, chosen on the OOF (`blend.space: oof`): the base's and "
            f"{oof['reference']}'s OOF (macro-AUC {oof['base']:.3f} and {oof['head']:.3f}, each post-processed as "
            f"its submission) blended at weight {oof['weight']:g} and smoothed by taxonomy score "
            f"{oof['rank']['macro_auc']:.4f} in rank and {oof['prob']['macro_auc']:.4f} in prob space, rank minus "
            f"prob {_ci(oof['rank_minus_prob'], 4)} (paired bootstrap over files); the head's effective share is "
            f"{100 * oof['rank']['effective_share']['head']['effective']:.1f}% in rank, "
            f"{100 * oof['prob']['effective_share']['head']['effective']:.1f}% in prob.", ""]


def base_against_head(base: dict, protossm: dict | None = None) -> list[str]:
    """Which is stronger, the base chain or the head, compared like for like: both OOFs under the same
    fold-wise, leak-free post-processing (the base stage's ``same_postprocess``), each at the window
    shifts it submits with (ProtoSSM's chosen on its OOF, ``protossm``'s ``tta_choice``; the head's
    ``base.reference_tta``), and the prior form chosen on that OOF (``prior_form``). [] when the base
    stage wrote no OOF (base.source: file)."""
    same = base.get("same_postprocess")
    if not same:
        return []
    ref = base["reference"]
    d = same["base_minus_reference"]
    stronger = same["stronger"]
    verdict = (f"the **{stronger}** is stronger" if stronger in ("base", ref)
               else "neither is stronger at this resolution (the interval holds 0)")
    lines = [f"**The base chain against the head it is blended with**: on the OOF, both post-processed the same "
             f"fold-wise, leak-free way (the prior of each fold fitted without its files){tta_windows(base, protossm or {}, ref)}"
             f", the base scores "
             f"{_f(base['oof_macro_auc'])} and `{ref}` {_f(same['reference_oof_macro_auc'])}: base minus head "
             f"{_ci(d, 4)}, so {verdict}. (Against the head's raw OOF, {_f(base['reference_oof_macro_auc'])}, "
             f"the base looked {_ci(base['base_minus_reference'], 4)} stronger: unlike for unlike.)"]
    forms = base.get("prior_form")
    if forms:
        lines += ["", "The site/hour prior's form, chosen on this OOF (`postprocess.prior_relative`): "
                  + "; ".join(f"{form}: base {_f(v['base'])}, `{ref}` {_f(v['reference'])}"
                              for form, v in forms.items()) + "."]
    return lines + [""]


def verdicts_markdown(before: dict, after: list[dict]) -> str:
    """The README's changed-verdicts block: every claim whose verdict differs from ``before``
    (paper/verdicts_baseline.json: {commit, claims}) in ``after`` (paper/verdicts.json's claims), with
    the old verdict, the new one and why (the new verdict's detail). New claims are listed as new."""
    old = {c["id"]: c for c in before.get("claims", [])}
    rows = []
    for c in after:
        was = old.get(c["id"])
        if was is not None and was["verdict"] == c["verdict"]:
            continue
        why = c["detail"].replace("|", "/")
        rows.append([c["id"], was["verdict"] if was else "(new claim)", f"**{c['verdict']}**", why])
    gone = [i for i in old if i not in {c["id"] for c in after}]
    lines = [GENERATED.format(source="paper/verdicts.json` and `paper/verdicts_baseline.json",
                              writer="the `paper` stage"), "",
             f"Verdicts that changed since commit `{before.get('commit', '?')}`, when the tests were rebuilt so "
             "that they cannot be bent (claims frozen by sha256, paired tests on the same rows, TOST at the "
             "paper's resolution, shake-up shares, the strong-base precondition): "
             f"{len(rows)} of {len(after)} claims.", ""]
    lines += _table(["claim", "old verdict", "new verdict", "why"], rows) if rows else ["No verdict changed."]
    if gone:
        lines += ["", "Claims no longer tested: " + ", ".join(gone) + "."]
    return "\n".join(lines) + "\n"


def timings_markdown(run: dict, top: int | None = None) -> str:
    """The timed default run (benchmarks/results/default_run.json): total, machine and stage seconds.

    ``top``: only the ``top`` slowest stages (the README); None: every stage (docs/benchmarks.md).
    """
    total = float(run["total_s"])
    machine = run.get("machine", {})
    lines = [GENERATED.format(source="benchmarks/results/default_run.json", writer="benchmarks/default_run.py"), "",
             f"`{run['command']}` took **{total:.0f} s ({total / 60:.1f} min)** on {run.get('date', '?')}, "
             f"{machine.get('cpus', '?')} CPU cores, Python {machine.get('python', '?')}, 1-min load "
             f"{run.get('load_average_1min', '?')}: {100 * total / run['budget_s']:.0f}% of the "
             f"{run['budget_s'] / 60:.0f}-minute budget.", ""]
    stages = sorted(run["stages_s"].items(), key=lambda kv: (-kv[1], kv[0]))
    shown = stages if top is None else stages[:top]
    rows = [[f"`{n}`", f"{s:.1f}", f"{100 * s / total:.1f}%"] for n, s in shown]
    if top is not None and len(stages) > top:
        rest = sum(s for _, s in stages[top:])
        rows.append([f"the other {len(stages) - top} stages", f"{rest:.1f}", f"{100 * rest / total:.1f}%"])
    lines += _table(["stage", "seconds", "share of the run"], rows)
    return "\n".join(lines) + "\n"


def experiment_markdown(record: dict, submission: str = "eos7") -> str:
    """The README's worked experiment: what `dvc exp run -S <knob>` re-ran and the metrics it moved
    (``submission``'s rows of the recorded `dvc metrics diff`), from the record the experiment
    benchmark wrote (benchmarks/results/blend_experiment.json)."""
    diff = [line for line in record.get("metrics_diff", "").splitlines() if line.startswith("|")]
    head, rule = diff[:2] if len(diff) >= 2 else ([], [])
    rows = [line for line in diff[2:] if f"/{submission}.json" in line or f".{submission}." in line]
    share = record.get("share_of_full_run")
    lines = [GENERATED.format(source="benchmarks/results/blend_experiment.json",
                              writer="benchmarks/blend_experiment.py"), "",
             f"Its recorded run ({record.get('date', '?')}; {record.get('seconds')} s"
             + (f", {100 * share:.1f}% of the full default run" if share is not None else "")
             + f" at load {record.get('load_average_1min')}): only what reads the blend re-runs.", "",
             "```text", f"$ {record.get('command', 'dvc exp run')}"]
    lines += [f"Running stage '{s}':" for s in record.get("stages_run", [])]
    lines += ["", f"$ dvc metrics diff --md     ({submission}'s rows; the other blends move alike)"]
    lines += ([head, rule] + rows) if rows else ["(no metric of this submission moved)"]
    return "\n".join(lines + ["```"]) + "\n"
