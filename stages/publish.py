"""Stage `publish`: copy the small results into the folders git tracks.

The stages that compute metrics, tables and figures write them under build/ as cached DVC
outputs, so they keep DVC's run-cache. This stage (a copy, under a second) mirrors
build/metrics -> metrics/, build/tables -> paper/tables/ and build/figures -> figures/ as
`cache: false` outputs: committed with the code, a clone shows every table and figure, and
`dvc metrics diff A B` compares any two commits without the DVC cache.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from birdclef_eos.io.files import atomic_dir, sha256_file
from stages.paths import PUBLISHED

PARAMS = ()
NOTEBOOK = False  # stages/notebook.py calls run() directly: a copy has nothing to plot
SUFFIXES = (".json", ".md", ".png", ".tsv")  # what is small enough for git; nothing else is copied


@dataclass
class PublishResult:
    """What the publish notebook shows: every published file with its size in bytes and sha256."""
    files: dict[str, dict]

    def __str__(self) -> str:
        return f"published {len(self.files)} files to {', '.join(str(t) for t in PUBLISHED.values())}"


def copy_small(source: Path, target: Path) -> dict[str, dict]:
    """Replace ``target`` with the small files of ``source`` (same relative paths), atomically."""
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: missing; run the stages that write it (dvc repro)")
    out = {}
    with atomic_dir(target) as tmp:
        for f in sorted(p for p in source.rglob("*") if p.is_file() and p.suffix in SUFFIXES):
            dest = tmp / f.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest)
            out[(target / f.relative_to(source)).as_posix()] = {"bytes": f.stat().st_size, "sha256": sha256_file(f)}
    return out


def run(params: dict, key: str | None = None) -> PublishResult:
    files = {}
    for source, target in PUBLISHED.items():
        files.update(copy_small(source, target))
    return PublishResult(files=files)
