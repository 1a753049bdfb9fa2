"""Competition submissions: build one in sample_submission order, validate one, hash its inputs."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from birdclef_eos.io.files import atomic_dir, sha256_file


class SubmissionError(ValueError):
    pass


def build(row_ids, P: np.ndarray, labels: list[str], order: pd.DataFrame) -> pd.DataFrame:
    """A submission frame: ``row_id`` then ``labels``, rows in ``order``'s row_id order.

    ``row_ids`` names the rows of ``P``; every row of ``order`` must be among them.
    """
    P = np.asarray(P, dtype=np.float64)
    if P.shape != (len(row_ids), len(labels)):
        raise SubmissionError(f"predictions have shape {P.shape}, expected ({len(row_ids)}, {len(labels)})")
    frame = pd.DataFrame(P, columns=labels, index=pd.Index(row_ids, name="row_id"))
    if frame.index.has_duplicates:
        dup = frame.index[frame.index.duplicated()][0]
        raise SubmissionError(f"row_id {dup!r} predicted more than once")
    missing = order.loc[~order["row_id"].isin(frame.index), "row_id"]
    if len(missing):
        raise SubmissionError(f"no prediction for {len(missing)} row(s) of the sample submission, "
                              f"e.g. {missing.iloc[0]!r}")
    return frame.reindex(order["row_id"]).reset_index()


def order_frame(sample_path: str | Path, chunks: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """The rows (and columns) a submission must have: ``sample_path`` (sample_submission.csv) when
    it exists, otherwise the test chunks of ``chunks`` (data/index/chunks.csv) with ``labels``."""
    path = Path(sample_path)
    if path.exists():
        sample = pd.read_csv(path, dtype={"row_id": str})
        if list(sample.columns[1:]) != labels:
            raise SubmissionError(f"{path}: label columns differ from the species order (data/index/species.csv)")
        return sample
    test = chunks[chunks["split"] == "test"]
    return pd.DataFrame({"row_id": test["row_id"].astype(str)}).assign(**{c: 0.0 for c in labels})


def validate(sub: pd.DataFrame, sample: pd.DataFrame, name: str = "submission") -> None:
    """Raise SubmissionError naming ``name`` and what is wrong: columns, row ids, values."""
    expected, got = list(sample.columns), list(sub.columns)
    missing = [c for c in expected if c not in got]
    extra = [c for c in got if c not in expected]
    if missing:
        raise SubmissionError(f"{name}: missing column(s) {missing[:5]}")
    if extra:
        raise SubmissionError(f"{name}: unexpected column(s) {extra[:5]}")
    if got != expected:
        raise SubmissionError(f"{name}: columns are not in sample_submission order")
    ids, want = sub["row_id"].astype(str), sample["row_id"].astype(str)
    if ids.duplicated().any():
        raise SubmissionError(f"{name}: duplicate row_id {ids[ids.duplicated()].iloc[0]!r}")
    absent, unknown = sorted(set(want) - set(ids)), sorted(set(ids) - set(want))
    if absent or unknown:
        raise SubmissionError(f"{name}: wrong row ids ({len(absent)} missing, e.g. {absent[:2]}; "
                              f"{len(unknown)} unknown, e.g. {unknown[:2]})")
    for col in expected[1:]:
        if not pd.api.types.is_numeric_dtype(sub[col]):
            bad = pd.to_numeric(sub[col], errors="coerce").isna()
            row = sub.loc[bad, "row_id"].iloc[0] if bad.any() else "?"
            raise SubmissionError(f"{name}: column {col!r} is not numeric (row {row!r})")
        values = sub[col].to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(values)):
            row = sub["row_id"].iloc[int(np.flatnonzero(~np.isfinite(values))[0])]
            raise SubmissionError(f"{name}: column {col!r} has a NaN or infinite value (row {row!r})")


def read(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise SubmissionError(f"{path}: submission not found; run the predict stage")
    return pd.read_csv(path, dtype={"row_id": str})




def csv_text(frame: pd.DataFrame, float_format: str = "%.6f") -> str:
    """``frame.to_csv(index=False, float_format=float_format)``, the same text, formatted a row at a
    time by one %-format (8x faster than pandas for a submission's 1,800 x 49 cells) when the frame
    has a submission's shape: a string first column, then float columns without NaN, and nothing to quote. Any
    other frame goes to pandas."""
    first, rest = frame.columns[0], list(frame.columns[1:])
    ids = frame[first].astype(str).tolist() if frame[first].dtype == object else None
    plain = ids is not None and all(frame[c].dtype.kind == "f" for c in rest) and not any(
        ch in str(v) for v in [*ids, *frame.columns] for ch in ',"\r\n')
    values = frame[rest].to_numpy(dtype=np.float64) if plain else None
    if not plain or np.isnan(values).any():  # pandas writes NaN as an empty field
        return frame.to_csv(index=False, float_format=float_format)
    row = "%s" + ("," + float_format) * len(rest) + "\n"
    values = values.tolist()
    return ",".join(map(str, frame.columns)) + "\n" + "".join(row % (i, *v) for i, v in zip(ids, values))


def as_written(frame: pd.DataFrame, float_format: str) -> pd.DataFrame:
    """``frame`` as a later stage reads it back from disk: written as CSV with ``float_format`` (what
    the stage writing it uses) and parsed again, so a kernel that computes a chain of submissions in
    memory rounds where the pipeline's files do (ranks taken after the rounding tie as they do)."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format=float_format)
    buffer.seek(0)
    return pd.read_csv(buffer, dtype={"row_id": str})


def write_folder(folder: str | Path, sub: pd.DataFrame, manifest: dict) -> dict:
    """``folder``/{submission.csv (6 decimals), manifest.json (``manifest`` + the csv's sha256)},
    atomically: the layout of every submissions/<name>/. Returns the manifest written."""
    manifest = dict(manifest)
    with atomic_dir(folder) as tmp:
        (tmp / "submission.csv").write_text(csv_text(sub))
        manifest["submission_sha256"] = sha256_file(tmp / "submission.csv")
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return manifest
