"""Publishing the small results: a copy of build/'s metrics, tables and figures into the folders git tracks.

The stages that compute metrics, tables and figures write them under build/ as cached DVC outputs,
so they keep DVC's run-cache; ``mirror_small`` replaces a git-tracked folder with the small files of
such a build/ folder (same relative paths, only ``SUFFIXES``), atomically, so a clone shows every
table and figure and `dvc metrics diff A B` compares any two commits without the DVC cache.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from birdclef_eos.io.files import atomic_dir, sha256_file, write_json

SUFFIXES = (".json", ".md", ".png", ".tsv")  # what is small enough for git; nothing else is copied


def mirror_small(source: Path, target: Path, extra: Callable[[Path], dict[str, dict]] | None = None
                 ) -> dict[str, dict]:
    """Replace ``target`` with the small files of ``source`` (same relative paths), atomically;
    ``extra(source)`` -> {relative path: JSON object} adds generated files to the same swap. Returns
    {published path: {bytes, sha256}}."""
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: missing; run the stages that write it (dvc repro)")
    out = {}
    with atomic_dir(target) as tmp:
        for f in sorted(p for p in source.rglob("*") if p.is_file() and p.suffix in SUFFIXES):
            dest = tmp / f.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, dest)
        for rel, obj in (extra(source) if extra else {}).items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            write_json(tmp / rel, obj)
        for f in sorted(p for p in tmp.rglob("*") if p.is_file()):
            out[(target / f.relative_to(tmp)).as_posix()] = {"bytes": f.stat().st_size, "sha256": sha256_file(f)}
    return out
