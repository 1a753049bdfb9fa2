"""Labels of the synthetic set: calls placed in time -> per-chunk labels, and time stamps."""
from __future__ import annotations


def chunk_labels(events: list[tuple[str, float, float]], duration_s: float, chunk_s: float,
                 min_overlap_s: float) -> list[list[str]]:
    """Labels per chunk: a call (label, start_s, end_s) labels every chunk it overlaps by
    more than ``min_overlap_s``; a call across a boundary therefore labels both chunks."""
    n = int(round(duration_s / chunk_s))
    chunks: list[set[str]] = [set() for _ in range(n)]
    for label, t0, t1 in events:
        for c in range(n):
            if min(t1, (c + 1) * chunk_s) - max(t0, c * chunk_s) > min_overlap_s:
                chunks[c].add(label)
    return [sorted(c) for c in chunks]


def hhmmss(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
