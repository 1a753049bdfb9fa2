"""Stage `publish`: copy the small results into the folders git tracks, and write the views on them.

The stages that compute metrics, tables and figures write them under build/ as cached DVC
outputs, so they keep DVC's run-cache. This stage (a copy, under a second) mirrors
build/metrics -> metrics/, build/tables -> paper/tables/ and build/figures -> figures/ as
`cache: false` outputs: committed with the code, a clone shows every table and figure, and
`dvc metrics diff A B` compares any two commits without the DVC cache.

It adds metrics/headline/ (one small file per submission and per trained model, the only metrics
dvc.yaml declares, so `dvc metrics show` fits a screen) and rewrites the results block of README.md
from the published metrics/ and paper/reported.yaml (birdclef_eos/report/readme.py). README.md
is git-tracked and deliberately not a DVC output: only the text between its markers is generated.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from birdclef_eos.io.files import atomic_dir, read_yaml, sha256_file, write_json
from birdclef_eos.report import readme
from stages.paths import PUBLISHED, REPORTED

PUBLISHED_METRICS = PUBLISHED[Path("build/metrics")]
# README.md's results block is generated here. The page is git-tracked and deliberately not a DVC
# output: DVC would delete it before the stage runs and lock its every byte, so a prose edit would
# make the pipeline stale. Only the text between its markers is rewritten (atomically).
README = Path("README.md")

PARAMS = ("submissions",)
NOTEBOOK = False  # stages/notebook.py calls run() directly: a copy has nothing to plot
SUFFIXES = (".json", ".md", ".png", ".tsv")  # what is small enough for git; nothing else is copied


@dataclass
class PublishResult:
    """What the publish notebook shows: every published file with its size in bytes and sha256,
    and whether README.md's results block changed."""
    files: dict[str, dict]
    readme_changed: bool = False

    def __str__(self) -> str:
        return (f"published {len(self.files)} files to {', '.join(str(t) for t in PUBLISHED.values())}"
                + ("; README.md results rewritten" if self.readme_changed else ""))


def copy_small(source: Path, target: Path, extra: Callable[[Path], dict[str, dict]] | None = None
               ) -> dict[str, dict]:
    """Replace ``target`` with the small files of ``source`` (same relative paths), atomically;
    ``extra(source)`` -> {relative path: JSON object} adds generated files to the same swap."""
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


def run(params: dict, key: str | None = None) -> PublishResult:
    models = {name: s["model"] for name, s in params["submissions"].items() if isinstance(s, dict) and "model" in s}
    files = {}
    for source, target in PUBLISHED.items():
        extra = (lambda src: readme.headline(src, models)) if target == PUBLISHED_METRICS else None
        files.update(copy_small(source, target, extra))
    changed = False
    if README.exists():
        reported = read_yaml(REPORTED) if REPORTED.exists() else {}
        changed = readme.update_page(README, "results", readme.results_markdown(PUBLISHED_METRICS, reported or {}))
    return PublishResult(files=files, readme_changed=changed)
