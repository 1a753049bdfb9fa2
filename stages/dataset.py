"""Stage `dataset`: the synthetic BirdCLEF set (or an index of a real folder), validated either way.

Writes data/dataset (competition layout, or source.json in real mode), data/hidden (test
soundscapes, solution, boards, sample submission; a README in real mode) and data/index (the
tables of docs/contracts.md). The synthetic set is read back through the same validator as real data.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from birdclef_eos.data import birdclef
from birdclef_eos.data.config import DatasetParams, Holdout
from birdclef_eos.data import holdout as local_board
from birdclef_eos.data import synthetic
from birdclef_eos.io.files import atomic_dir
from stages.paths import DATASET, HIDDEN, INDEX, ROOT

PARAMS = ("dataset",)


@dataclass
class DatasetResult:
    """What the dataset notebook shows: counts over data/index, and ``details`` (source, scale,
    bytes on disk and the generator's counts in synthetic mode; the folder in real mode)."""
    n_species: int
    n_recordings: int
    recording_minutes: float
    soundscapes_by_split: dict[str, int]
    soundscape_minutes: float
    species_with_20: int
    details: dict


class DatasetStageError(ValueError):
    pass


def repo_relative(path: Path, tmp: Path, final: Path) -> str:
    """The path a file will have once ``tmp`` is renamed to ``final`` (relative to the repo)."""
    return (final / Path(path).relative_to(tmp)).as_posix()


def run_synthetic(p: DatasetParams) -> DatasetResult:
    cfg = p.generator()
    t0 = time.perf_counter()
    with atomic_dir(DATASET) as comp_dir, atomic_dir(HIDDEN) as hidden_dir, atomic_dir(INDEX) as index_dir:
        sizes = synthetic.generate(comp_dir, hidden_dir, p.seed, cfg, jobs=p.jobs)
        # wall time goes to stderr only: the executed notebook must stay byte-stable
        print(f"generated in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        comp = birdclef.read_competition(comp_dir)
        hidden = birdclef.read_hidden(hidden_dir, comp["order"])

        def as_path(f: Path) -> str:
            f = Path(f)
            if f.is_relative_to(comp_dir):
                return repo_relative(f, comp_dir, DATASET)
            return repo_relative(f, hidden_dir, HIDDEN)

        tables = birdclef.index_tables(comp, hidden, as_path)
        birdclef.write_index(index_dir, tables)
        disk = sum(f.stat().st_size for d in (comp_dir, hidden_dir) for f in d.rglob("*") if f.is_file())
    return summary(tables, source="synthetic", scale=p.scale, bytes_on_disk=disk, label_rows=comp["label_stats"],
                   **sizes)


def run_birdclef(p: DatasetParams) -> DatasetResult:
    root = Path(p.root)
    # a root on an output path (DVC would delete it before this stage runs) is refused by the params
    # check in the fingerprint stage, which runs before this one (stages/schema.py check_pipeline)
    comp = birdclef.read_competition(root)
    if not (comp["scapes"]["split"] == "labelled").any():
        raise DatasetStageError(
            f"{root.as_posix()}/train_soundscapes_labels.csv lists none of the files in train_soundscapes/: the "
            "pipeline needs labelled soundscapes (the heads' soundscape share and OOF, the base chain's ProtoSSM, "
            "which trains on labelled soundscape sequences, and any local board are built from them), and no knob "
            "turns those stages off. Use a folder with labelled soundscapes (the 2026 folder has 66 files).")
    h: Holdout = p.holdout
    held = local_board.hold_out(comp["scapes"], comp["chunk_labels"], comp["order"], float(h.share),
                                h.group, h.seed, float(p.public_fraction))
    if held is not None:
        comp = {**comp, "scapes": held.scapes}
    tables = birdclef.index_tables(comp, held.hidden if held else None, lambda f: Path(f).as_posix())
    files = sorted(f for f in root.rglob("*") if f.is_file())
    record = dict(root=root.as_posix(), files=len(files), bytes=sum(f.stat().st_size for f in files),
                  species=len(tables["species"]), recordings=len(tables["recordings"]),
                  soundscapes=len(tables["soundscapes"]),
                  label_rows=comp["label_stats"],  # rows read, repeats dropped, rows merged into one chunk (birdclef.py)
                  holdout={**h.model_dump(), "files": len(held.hidden) if held else 0})
    with atomic_dir(DATASET) as comp_dir, atomic_dir(HIDDEN) as hidden_dir, atomic_dir(INDEX) as index_dir:
        (comp_dir / "source.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        if held is None:
            (hidden_dir / "README.md").write_text(
                "Real-data mode with dataset.holdout.share 0: the hidden test set is Kaggle's; "
                "there is no local solution.\n")
        else:
            local_board.write_hidden(hidden_dir, held, (
                f"Real-data mode: the local hidden set is {len(held.hidden)} labelled train soundscape(s) of "
                f"{root.as_posix()} held out by {h.group} (dataset.holdout: share {h.share}, seed {h.seed}); "
                "their audio stays in the competition folder (data/index/soundscapes.csv has the paths), "
                "their labels are only in solution.csv.\n"))
        birdclef.write_index(index_dir, tables)
    return summary(tables, source="birdclef", root=str(root), local_board=len(held.hidden) if held else 0,
                   label_rows=comp["label_stats"])


def summary(tables: dict, **details) -> DatasetResult:
    rec, scapes = tables["recordings"], tables["soundscapes"]
    return DatasetResult(
        n_species=len(tables["species"]), n_recordings=len(rec),
        recording_minutes=round(float(rec.duration_s.sum()) / 60, 1),
        soundscapes_by_split={k: int(v) for k, v in scapes.split.value_counts().sort_index().items()},
        soundscape_minutes=round(float(scapes.duration_s.sum()) / 60, 1),
        species_with_20=int((rec.primary_label.value_counts() >= 20).sum()), details=details)


def run(params: dict | DatasetParams, key: str | None = None) -> DatasetResult:
    """``params`` as the notebook passes them (`dataset` typed once here) or as ``DatasetParams``."""
    p = params if isinstance(params, DatasetParams) else DatasetParams.model_validate(params["dataset"])
    if p.source == "synthetic":
        return run_synthetic(p)
    return run_birdclef(p)  # the model allows only the two sources


if __name__ == "__main__":  # python -m stages.dataset: run without the notebook
    import os

    from stages.params import stage_params
    os.chdir(ROOT)
    print(json.dumps(asdict(run(stage_params("dataset"))), indent=2))
