"""paper.md: the study's sections with the reproduced numbers, the figures and a verdict per claim.

Claims come from a YAML file (paper/claims.yaml): each names the paper's section, a short
sentence, the reported figure(s) (keys into paper/reported.yaml), where the reproduced figure(s)
live (a metrics JSON file and a key path) and the claimed direction. ``evaluate`` turns one claim
into a ``Verdict`` by the rule in params (``paper.verdict``), fixed before any number is read:

- ``interval``: the source holds a difference with a [low, high] interval (a paired bootstrap over
  files, e.g. the ablation or pseudo tables). ``greater`` / ``less``: holds when the interval
  excludes 0 in the claimed direction, does not hold when it excludes 0 the other way, undecided
  otherwise. ``equivalent``: two one-sided tests (TOST) at +-margin: holds when the interval lies
  within +-margin, does not hold when it lies wholly outside, undecided otherwise (an interval
  source's own interval is used: at 95 % it is stricter than TOST's 90 %).
- ``paired``: two submissions on one board; the caller computes the paired bootstrap interval of
  a - b (``pairs``), then as ``interval``; an ``equivalent`` claim takes the (1 - 2 alpha)
  interval, alpha = 1 - confidence, which is TOST at level alpha.

Any claim may carry ``regime`` {base, head, board}: its test means something only where the base
is stronger than the head by more than the margin (the paper's base ~0.95 over its head ~0.88).
The paired interval of base - head on that board must lie above +margin; when it does not, the
verdict is "uninformative here" and the claim's own test is still shown beside it.
- ``compare``: two values a, b from metrics files; with an interval each (``low``/``high`` keys),
  holds when the intervals do not overlap in the claimed direction; without, the point difference
  decides when ``without_interval: point`` (the verdict says so), else undecided.
- ``shakeup``: a submission's private minus public judged from the shake-up distribution (the
  share of random public/private splits showing the claimed direction), never from the one
  observed split: holds when the share reaches ``confidence``, does not hold when the other
  direction does, undecided otherwise.
- ``order``: two lists of values rank their items the same way (holds) or not.
- ``count``: a value within ``tolerance`` (relative) of the reported number.
- ``untestable``: cannot be tested here, and why.

A claim whose source file is absent is "not built yet", never guessed. Key paths are dotted;
``name[i]`` indexes a list, or a mapping's keys in sorted order (``blocks[-1]``: the last block);
``{}`` (or ``{:02d}``) in a key is filled with each item of ``each`` (a key path to a list in the
same file, or {file, key}).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

HOLDS, FAILS, UNDECIDED, UNTESTABLE, NOT_BUILT, UNINFORMATIVE = (
    "holds here", "does not hold here", "undecided", "cannot be tested here", "not built yet", "uninformative here")
KINDS = ("interval", "paired", "compare", "order", "count", "shakeup", "untestable")
SHAKEUP_FILE = "shakeup/shakeup.json"
DIRECTIONS = ("greater", "less", "equivalent")
STEP = re.compile(r"^([^\[\]]*)((?:\[-?\d+\])*)$")


class ClaimError(ValueError):
    pass


FROZEN_WHY = ("a claim's test changes only in a commit that says why: edit the claims, then record the new "
              "sha256 (cd paper && sha256sum claims.yaml > claims.sha256) in the same commit, whose message says "
              "why the test changed")


def check_frozen(claims: Path, digest: Path) -> str:
    """The claims file's sha256 when it is the one ``digest`` records (``sha256sum`` format); a
    ClaimError that says what to do otherwise. The claims are fixed before any result is read: a
    verdict cannot be bent by editing its test after the numbers are in without the edit showing."""
    if not Path(digest).exists():
        raise ClaimError(f"{digest}: missing; {FROZEN_WHY}")
    recorded = Path(digest).read_text(encoding="utf-8").split()
    actual = hashlib.sha256(Path(claims).read_bytes()).hexdigest()
    if not recorded or recorded[0] != actual:
        raise ClaimError(f"{claims} has sha256 {actual[:12]}..., {digest} records "
                         f"{recorded[0][:12] if recorded else 'nothing'}...: {FROZEN_WHY}")
    return actual


class Missing(Exception):
    """A claim's source file is absent (the stage that writes it has not run)."""


class Untestable(Exception):
    """A claim's source cannot exist in this mode (e.g. no hidden labels in real-data mode)."""


@dataclass
class Rule:
    """The verdict rule (params.yaml ``paper.verdict``). confidence, bootstrap, seed: the paired
    bootstrap of ``paired`` claims; margin: the equivalence margin; tolerance: relative distance of a
    ``count``; without_interval: ``point`` or ``undecided`` for compare claims with no interval."""
    confidence: float = 0.95
    bootstrap: int = 1000
    seed: int = 0
    margin: float = 0.01
    tolerance: float = 0.1
    without_interval: str = "point"


@dataclass
class Verdict:
    """One rendered claim: id, section, part (the paper.md section it sits in), claim (the
    paper's sentence), kind, reported ({key: number}), here ({name: number or list}), verdict (one
    of the five words), detail (a sentence from the numbers), sources (files read)."""
    id: str
    section: str
    part: str
    claim: str
    kind: str
    reported: dict
    here: dict
    verdict: str
    detail: str
    sources: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def lookup(data, path: str, where: str = ""):
    """The value at a key path (see the module docstring); KeyError naming the step that fails."""
    node = data
    for step in str(path).split("."):
        m = STEP.match(step)
        if not m:
            raise KeyError(f"{where}: bad key step {step!r} in {path!r}")
        name, idx = m.group(1), re.findall(r"\[(-?\d+)\]", m.group(2))
        if name:
            if isinstance(node, dict) and name not in node and name.lstrip("-").isdigit() and int(name) in node:
                name = int(name)  # YAML integer keys (reported.yaml's block numbers)
            if not isinstance(node, dict) or name not in node:
                raise KeyError(f"{where}: no key {name!r} (path {path!r})")
            node = node[name]
        for i in idx:
            items = [node[k] for k in sorted(node)] if isinstance(node, dict) else node
            try:
                node = items[int(i)]
            except (IndexError, TypeError):
                raise KeyError(f"{where}: no item [{i}] (path {path!r})") from None
    return node


def item_name(data, path: str) -> str:
    """The key a trailing ``[i]`` picks out of a mapping (``blocks[-2]`` -> "block_14"), else the path."""
    m = re.match(r"^(.*)\[(-?\d+)\]$", path)
    if m:
        node = lookup(data, m.group(1)) if m.group(1) else data
        if isinstance(node, dict):
            return sorted(node)[int(m.group(2))]
    return path


def check_claim(c: dict, where: str) -> None:
    for k in ("id", "section", "part", "claim", "kind"):
        if k not in c:
            raise ClaimError(f"{where}: claim without `{k}`")
    if c["kind"] not in KINDS:
        raise ClaimError(f"{where} ({c['id']}): kind {c['kind']!r}; expected one of {' | '.join(KINDS)}")
    need = {"interval": ("source", "direction"), "paired": ("a", "b", "board", "direction"),
            "compare": ("a", "b", "direction"), "order": ("a", "b"), "count": ("value",),
            "shakeup": ("submission", "direction"), "untestable": ("reason",)}[c["kind"]]
    for k in need:
        if k not in c:
            raise ClaimError(f"{where} ({c['id']}): a {c['kind']} claim needs `{k}`")
    if "direction" in need and c["direction"] not in DIRECTIONS:
        raise ClaimError(f"{where} ({c['id']}): direction {c['direction']!r}; expected {' | '.join(DIRECTIONS)}")
    if c["kind"] == "shakeup" and c["direction"] == "equivalent":
        raise ClaimError(f"{where} ({c['id']}): a shakeup claim is greater or less (of private - public)")
    if "regime" in c and (not isinstance(c["regime"], dict) or {"base", "head", "board"} - set(c["regime"])):
        raise ClaimError(f"{where} ({c['id']}): regime needs {{base, head, board}}")


def tost_confidence(rule: "Rule") -> float:
    """The two-sided interval level whose bounds are TOST's two one-sided tests at alpha = 1 - confidence."""
    return 1 - 2 * (1 - rule.confidence)


def by_share(share: float, direction: str, rule: "Rule") -> tuple[str, str]:
    """Verdict from the share of random splits that show the claimed direction."""
    text = f"{share:.1%} of the random public/private splits show the claimed direction"
    if share >= rule.confidence:
        return HOLDS, f"{text} (at least {rule.confidence:.0%})"
    if share <= 1 - rule.confidence:
        return FAILS, f"{text} (at most {1 - rule.confidence:.0%}: the other direction is the rule)"
    return UNDECIDED, f"{text} (neither at least {rule.confidence:.0%} nor at most {1 - rule.confidence:.0%})"


def by_interval(diff: float, low, high, direction: str, rule: Rule) -> tuple[str, str]:
    """Verdict of a difference (claimed ``direction``) from its interval."""
    if low is None or high is None:
        return UNDECIDED, "no interval (a single file)"
    span = f"{diff:+.4f} [{low:+.4f}, {high:+.4f}]"
    if direction == "equivalent":  # TOST: both one-sided tests reject a difference of margin or more
        if -rule.margin <= low and high <= rule.margin:
            return HOLDS, f"{span} lies within +-{rule.margin:g} (TOST)"
        if low > rule.margin or high < -rule.margin:
            return FAILS, f"{span} lies wholly outside +-{rule.margin:g}"
        return UNDECIDED, f"{span} reaches beyond +-{rule.margin:g}: neither equivalence nor a difference is shown"
    sign = 1 if direction == "greater" else -1
    if (low > 0 and sign > 0) or (high < 0 and sign < 0):
        return HOLDS, f"{span} excludes 0 in the claimed direction"
    if low > 0 or high < 0:
        return FAILS, f"{span} excludes 0 the other way"
    return UNDECIDED, f"{span} covers 0"


def value_of(ref: dict, load: Callable[[str], dict], where: str):
    """(value, low, high, file) of a reference {file, key, low?, high?, each?}."""
    data = load(ref["file"])
    if "each" in ref:
        each = ref["each"] if isinstance(ref["each"], dict) else {"file": ref["file"], "key": ref["each"]}
        items = lookup(load(each["file"]), each["key"], f"{where} {each['file']}")
        return [lookup(data, ref["key"].format(i), f"{where} {ref['file']}") for i in items], None, None, ref["file"]
    get = lambda k: lookup(data, ref[k], f"{where} {ref['file']}") if k in ref else None  # noqa: E731
    return get("key"), get("low"), get("high"), ref["file"]


def ranks(values: list[float]) -> list[int]:
    order = sorted(range(len(values)), key=lambda i: -values[i])
    out = [0] * len(values)
    for r, i in enumerate(order):
        out[i] = r
    return out


def evaluate(c: dict, load: Callable[[str], dict], reported: dict, rule: Rule,
             pairs: Callable[[str, str, str], dict] | None = None) -> Verdict:
    """One claim -> Verdict. ``load(file)`` returns a metrics file's JSON or raises Missing;
    ``pairs(a, b, board)`` returns {difference, low, high, score_a, score_b} or raises Missing."""
    where = f"claim {c.get('id', '?')}"
    check_claim(c, where)
    rep = {k: lookup(reported, k, f"{where}: paper/reported.yaml") for k in c.get("reported", [])}
    v = Verdict(id=c["id"], section=str(c["section"]), part=c["part"], claim=c["claim"], kind=c["kind"],
                reported=rep, here={}, verdict=UNDECIDED, detail="")
    kind = c["kind"]
    if kind == "untestable":
        v.verdict, v.detail = UNTESTABLE, c["reason"]
        return v
    try:
        if kind == "interval":
            src = c["source"]
            obj = lookup(load(src["file"]), src["key"], f"{where} {src['file']}")
            v.sources = [src["file"]]
            v.here = {"difference": obj["difference"], "low": obj["low"], "high": obj["high"]}
            v.verdict, v.detail = by_interval(obj["difference"], obj["low"], obj["high"], c["direction"], rule)
            if obj.get("undefined"):  # no score on that board (a small folder's board): say why, not "no interval"
                v.detail = obj["undefined"]
        elif kind == "paired":
            if pairs is None:
                raise Missing("no submissions to compare")
            level = tost_confidence(rule) if c["direction"] == "equivalent" else rule.confidence
            obj = pairs(c["a"], c["b"], c["board"], level)
            v.sources = [f"submissions/{c['a']}", f"submissions/{c['b']}"]
            v.here = {f"{c['a']} {c['board']}": obj["score_a"], f"{c['b']} {c['board']}": obj["score_b"],
                      "difference": obj["difference"], "low": obj["low"], "high": obj["high"]}
            v.verdict, v.detail = by_interval(obj["difference"], obj["low"], obj["high"], c["direction"], rule)
            v.detail = f"{c['a']} - {c['b']} on the local {c['board']} board ({level:.0%} interval): {obj.get('undefined') or v.detail}"
        elif kind == "shakeup":
            f = c.get("file", SHAKEUP_FILE)
            data = load(f)
            s = lookup(data, f"submissions.{c['submission']}", f"{where} {f}")
            v.sources = [f]
            share = s["p_gain"] if c["direction"] == "greater" else 1 - s["p_gain"]
            v.here = {"private - public (observed split)": s["observed"], "share of splits": round(share, 4),
                      "splits": data.get("splits")}
            v.verdict, v.detail = by_share(share, c["direction"], rule)
            v.detail = f"{c['submission']} private - public: {v.detail}"
        elif kind == "compare":
            a, alo, ahi, fa = value_of(c["a"], load, where)
            b, blo, bhi, fb = value_of(c["b"], load, where)
            v.sources = sorted({fa, fb})
            na, nb = c["a"].get("name", "a"), c["b"].get("name", "b")
            v.here = {na: a, nb: b, "difference": a - b}
            if None not in (alo, ahi, blo, bhi):
                v.here.update({f"{na} interval": [alo, ahi], f"{nb} interval": [blo, bhi]})
                sign = 1 if c["direction"] == "greater" else -1
                if c["direction"] == "equivalent":
                    ok = alo <= bhi and blo <= ahi
                    v.verdict = HOLDS if ok else FAILS
                    v.detail = f"the intervals {'overlap' if ok else 'do not overlap'}"
                elif (alo > bhi and sign > 0) or (ahi < blo and sign < 0):
                    v.verdict, v.detail = HOLDS, "the two intervals do not overlap, in the claimed direction"
                elif alo > bhi or ahi < blo:
                    v.verdict, v.detail = FAILS, "the two intervals do not overlap, the other way"
                else:
                    v.verdict, v.detail = UNDECIDED, "the two intervals overlap"
            elif rule.without_interval == "point":
                d = a - b
                if c["direction"] == "equivalent":
                    v.verdict = HOLDS if abs(d) <= rule.margin else FAILS
                    v.detail = f"point difference {d:+.4f} against a margin of +-{rule.margin:g} (no interval)"
                else:
                    ok = d > 0 if c["direction"] == "greater" else d < 0
                    v.verdict = HOLDS if ok else FAILS
                    v.detail = f"point difference {d:+.4f} (no interval: the point estimate decides)"
            else:
                v.verdict, v.detail = UNDECIDED, "no interval, and the rule decides nothing without one"
        elif kind == "order":
            a, _, _, fa = value_of(c["a"], load, where)
            b, _, _, fb = value_of(c["b"], load, where)
            v.sources = sorted({fa, fb})
            if len(a) != len(b):
                raise ClaimError(f"{where}: order lists of different lengths {len(a)} and {len(b)}")
            na, nb = c["a"].get("name", "a"), c["b"].get("name", "b")
            v.here = {na: a, nb: b}
            same = ranks(a) == ranks(b)
            v.verdict = HOLDS if same else FAILS
            v.detail = f"{na} and {nb} rank the items {'the same way' if same else 'differently'}"
        elif kind == "count":
            x, _, _, f = value_of(c["value"], load, where)
            target = rep[c["reported"][0]]
            v.sources = [f]
            v.here = {c["value"].get("name", "value"): x}
            rel = (x - target) / target
            v.verdict = HOLDS if abs(rel) <= rule.tolerance else FAILS
            v.detail = f"{x:,} against the reported {target:,}: {rel:+.0%} (tolerance +-{rule.tolerance:.0%})"
        if "regime" in c:
            regime(v, c["regime"], rule, pairs)
    except Missing as exc:
        v.verdict, v.detail, v.here = NOT_BUILT, str(exc), {}
    except KeyError as exc:  # the file exists but not the entry (e.g. a submission not scored yet)
        v.verdict, v.detail, v.here = NOT_BUILT, str(exc.args[0]) if exc.args else str(exc), {}
    except Untestable as exc:
        v.verdict, v.detail, v.here = UNTESTABLE, str(exc), {}
    return v


def regime(v: Verdict, r: dict, rule: Rule, pairs) -> None:
    """Mark ``v`` uninformative unless the base beats the head by more than the margin (paired)."""
    if pairs is None:
        raise Missing("no submissions to check the base against the head")
    obj = pairs(r["base"], r["head"], r["board"], rule.confidence)
    v.here[f"{r['base']} - {r['head']} {r['board']}"] = [obj["difference"], obj["low"], obj["high"]]
    if obj["low"] is not None and obj["low"] > rule.margin:
        return
    v.detail = (f"the test needs {r['base']} above {r['head']} by more than {rule.margin:g} on the {r['board']} "
                f"board, as the paper's base (~0.95) is above its head (~0.88); here {r['base']} - {r['head']} = "
                f"{obj['difference']:+.4f} [{obj['low']:+.4f}, {obj['high']:+.4f}], so the test says nothing "
                f"about the paper's regime (its own reading: {v.verdict}, {v.detail})")
    v.verdict = UNINFORMATIVE


# ---------- rendering ----------

def num(x, digits: int) -> str:
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    if isinstance(x, list):
        return "[" + ", ".join(num(i, digits) for i in x) + "]"
    if isinstance(x, dict):
        return ", ".join(f"{k} {num(i, digits)}" for k, i in x.items())
    return str(x)


def pairs_text(d: dict, digits: int) -> str:
    return "; ".join(f"{k} {num(x, digits)}" for k, x in d.items()) or "-"


def claims_table(verdicts: list[Verdict], digits: int) -> str:
    lines = ["| Claim | Section | Reported | Here | Verdict |", "|---|---|---|---|---|"]
    for v in verdicts:
        reported = "; ".join(num(x, digits) for x in v.reported.values()) or "-"
        lines.append(f"| {v.claim} | {v.section} | {reported} | {pairs_text(v.here, digits)} | "
                     f"**{v.verdict}**: {v.detail} |")
    return "\n".join(lines)


def verdict_counts(verdicts: list[Verdict]) -> dict[str, int]:
    out = {}
    for v in verdicts:
        out[v.verdict] = out.get(v.verdict, 0) + 1
    return out


def render(header: list[str], sections: list[dict], verdicts: list[Verdict], tables: dict[str, str | None],
           figures: dict[str, bool], digits: int = 3, notes: dict[str, list[str]] | None = None) -> str:
    """The whole paper.md. ``sections``: [{id, number, title, text?, figures: [names], tables:
    [names]}] in order; ``tables``: name -> markdown (None: not built yet); ``figures``: name -> the
    file exists (figures are linked as ``../figures/<name>``); ``notes``: section id -> lines of
    numbers read from metrics files."""
    out = ["# The study, regenerated", ""] + header + [""]
    counts = verdict_counts(verdicts)
    out += ["## Claims at a glance", "",
            ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + f" ({len(verdicts)} claims).", "",
            claims_table(verdicts, digits), ""]
    for s in sections:
        out += [f"## {s['number']} {s['title']}".replace("  ", " "), ""]
        if s.get("text"):
            out += [s["text"].strip(), ""]
        for line in (notes or {}).get(s["id"], []):
            out.append(f"- {line}")
        if (notes or {}).get(s["id"]):
            out.append("")
        for f in s.get("figures", []):
            out += ([f"![{f}](../figures/{f})", ""] if figures.get(f) else [f"*Figure `{f}`: not built yet.*", ""])
        for t in s.get("tables", []):
            text = tables.get(t)
            out += ([text.strip(), ""] if text is not None else [f"*Table `{t}`: not built yet.*", ""])
        mine = [v for v in verdicts if v.part == s["id"]]
        if mine:
            out += ["Claims of this section:", ""]
            for v in mine:
                reported = "; ".join(f"{k} = {num(x, digits)}" for k, x in v.reported.items())
                out.append(f"- *{v.claim}* (section {v.section}) - **{v.verdict}**. {v.detail}."
                           + (f" Here: {pairs_text(v.here, digits)}." if v.here else "")
                           + (f" Reported: {reported}." if reported else ""))
            out.append("")
    return "\n".join(out).rstrip() + "\n"
