"""Scores copied by hand from Kaggle (leaderboard/kaggle.yaml), checked entry by entry.

Each entry: {submission, public, private, date, sha256}. `sha256` is the hash of the submission
file Kaggle scored. A hash that differs from the local submission's is not an error: the entry
comes back with ``matches: False``, and the leaderboard says that score belongs to other bytes.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path

from birdclef_eos.io.files import read_yaml

FIELDS = ("submission", "public", "private", "date", "sha256")
NULLABLE = ("private",)  # Kaggle shows the private score only after the competition ends
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class KaggleScoresError(ValueError):
    pass


def score_problem(value, nullable: bool) -> str | None:
    if value is None:
        return None if nullable else "missing score (null); expected a number in [0, 1]"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value!r} is not a number; expected a number in [0, 1]" + (" or null" if nullable else "")
    if not math.isfinite(value) or not 0 <= value <= 1:
        return f"{value!r} is out of range; expected a number in [0, 1]"
    return None


def date_text(value) -> str | None:
    """The date as YYYY-MM-DD, or None when it is not a date."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            return None
    return None


def entry_problems(e: dict, known: set[str]) -> list[str]:
    problems = []
    missing = [f for f in FIELDS if f not in e]
    if missing:
        problems.append(f"lacks {missing}")
    unknown = sorted(str(k) for k in e if k not in FIELDS)
    if unknown:
        problems.append(f"unknown field(s) {unknown}; expected {list(FIELDS)}")
    name = e.get("submission")
    if "submission" in e and name not in known:
        problems.append(f"submission: unknown submission {name!r}; known: {sorted(known)}")
    for f in ("public", "private"):
        if f in e:
            why = score_problem(e[f], f in NULLABLE)
            if why:
                problems.append(f"{f}: {why}")
    if "date" in e and date_text(e["date"]) is None:
        problems.append(f"date: {e['date']!r} is not a date; expected YYYY-MM-DD")
    if "sha256" in e and not (isinstance(e["sha256"], str) and SHA256.match(e["sha256"])):
        problems.append(f"sha256: {e['sha256']!r}; expected 64 lowercase hex digits (the scored file's sha256)")
    return problems


def read_kaggle(path: str | Path, known_submissions: set[str],
                manifests: dict[str, str] | None = None) -> list[dict]:
    """The entries of ``path`` (none if it does not exist), each with ``date`` as YYYY-MM-DD and
    ``matches``: True/False when ``manifests`` (submission -> sha256 of its local submission file)
    knows the submission, else None. Every problem is reported at once in a KaggleScoresError."""
    path = Path(path)
    if not path.exists():
        return []
    entries = read_yaml(path, KaggleScoresError)
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise KaggleScoresError(f"{path}: expected a list of entries, got {type(entries).__name__}")
    problems, first = [], {}
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            problems.append(f"entry {i}: expected a mapping with {list(FIELDS)}, got {e!r}")
            continue
        label = f"entry {i} ({e.get('submission')})"
        problems += [f"{label}: {p}" for p in entry_problems(e, known_submissions)]
        name = e.get("submission")
        if isinstance(name, str):
            if name in first:
                problems.append(f"{label}: duplicate entry for {name} (first at entry {first[name]}); "
                                "keep one score per submission")
            first.setdefault(name, i)
    if problems:
        raise KaggleScoresError(f"{path}: {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems))
    out = []
    for e in entries:
        local = (manifests or {}).get(e["submission"])
        out.append({**e, "date": date_text(e["date"]), "local_sha256": local,
                    "matches": None if local is None else local == e["sha256"]})
    return out


def mismatch_note(entry: dict) -> str | None:
    """The plain sentence a leaderboard shows when a Kaggle score was computed on other bytes."""
    if entry.get("matches") is not False:
        return None
    return (f"{entry['submission']}: Kaggle scored a file with sha256 {entry['sha256'][:12]}..., the local "
            f"submission is {entry['local_sha256'][:12]}...: that score belongs to other bytes")
