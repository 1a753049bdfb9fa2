"""The BirdCLEF 2026 competition layout: read, validate, and turn into index tables.

The same code reads the synthetic set and a real competition folder. Every malformed case raises
``BirdCLEFError`` naming the file, the row (1-based data row, header excluded) and the column.

The folder is a boundary: every audio path a CSV names must resolve (symlinks followed) inside its
own subfolder (train.csv: train_audio/; the labels file: a bare file name in train_soundscapes/), so
nothing outside the folder, which the fingerprint stage would not see change, is ever read. train.csv
may not list a file twice. In train_soundscapes_labels.csv every row is one 5-s chunk on the 5-s grid
(start a multiple of 5 s, end = start + 5 s) that lies inside its file; the 2026 file repeats rows, so
one rule applies: a row that repeats an earlier one for the same chunk with the same labels is dropped,
rows for one chunk with different labels are merged (the union), and both counts go into the data
manifest (``label_rows`` in data/dataset/source.json; ``read_competition``'s ``label_stats``).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from birdclef_eos.audio.decode import AudioError, audio_info

TAXONOMY_COLUMNS = ["primary_label", "inat_taxon_id", "scientific_name", "common_name", "class_name"]
TRAIN_COLUMNS = ["primary_label", "secondary_labels", "type", "filename", "collection", "rating",
                 "latitude", "longitude", "scientific_name", "common_name", "author", "license", "url"]
LABELS_COLUMNS = ["filename", "start", "end", "primary_label"]
BOARDS_COLUMNS = ["filename", "board"]
AUDIO_SUFFIXES = (".ogg", ".flac", ".wav")
SOUNDSCAPE_NAME = re.compile(r"BC2026_(Train|Test)_(\d+)_(S\d+)_(\d{8})_(\d{2})(\d{2})(\d{2})")
TIME = re.compile(r"(\d{1,2}):(\d{2}):(\d{2})")
CHUNK_S = 5

SPECIES_COLUMNS = ["label_idx", "primary_label", "scientific_name", "common_name", "genus", "class_name"]
RECORDING_COLUMNS = ["recording_id", "path", "primary_label", "secondary_labels", "rating", "latitude",
                     "longitude", "duration_s", "sample_rate"]
SOUNDSCAPE_COLUMNS = ["soundscape_id", "path", "split", "site", "date", "hour", "duration_s",
                      "sample_rate", "board"]
CHUNK_COLUMNS = ["row_id", "soundscape_id", "chunk", "start_s", "end_s", "split", "site", "hour", "labels"]


class BirdCLEFError(ValueError):
    pass


def where(path: Path, row: int | None = None, column: str | None = None) -> str:
    """'file, row N, column C' for error messages (row is the 1-based data row)."""
    parts = [str(path)]
    if row is not None:
        parts.append(f"row {row + 1}")
    if column is not None:
        parts.append(f"column '{column}'")
    return ", ".join(parts)


def read_table(path: Path, columns: list[str]) -> pd.DataFrame:
    if not path.exists():
        raise BirdCLEFError(f"{path}: file not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise BirdCLEFError(f"{path}: cannot parse CSV ({exc})") from exc
    for col in columns:
        if col not in df.columns:
            raise BirdCLEFError(f"{where(path, column=col)}: column missing (header has {list(df.columns)})")
    return df


def audio_facts(path: Path, at: str) -> tuple[float, int]:
    """(duration_s, sample_rate) of an audio file; the error names ``at`` (file/row/column)."""
    try:
        frames, sr = audio_info(path)
    except AudioError as exc:
        raise BirdCLEFError(f"{at}: {exc}") from exc
    return frames / sr, sr


def inside(base: Path, name: str, at: str) -> Path:
    """``base / name``, refused unless it resolves (symlinks followed) inside ``base``: no absolute
    path, no ``..`` and no link out of the competition folder."""
    if not name or Path(name).is_absolute() or ".." in Path(name).parts or "\\" in name:
        raise BirdCLEFError(f"{at}: {name!r} is not a path inside {base.name}/ (absolute, '..' or empty)")
    path = base / name
    if not path.resolve().is_relative_to(base.resolve()):
        raise BirdCLEFError(f"{at}: {name!r} resolves to {path.resolve()}, outside {base}")
    return path


def check_label(label: str, known: set[str], path: Path, row: int, column: str) -> None:
    if label not in known:
        raise BirdCLEFError(f"{where(path, row, column)}: label '{label}' is not in taxonomy.csv")


# ----------------------------------------------------------------------------- reading

def read_taxonomy(folder: Path) -> pd.DataFrame:
    path = folder / "taxonomy.csv"
    tax = read_table(path, TAXONOMY_COLUMNS)
    for i, label in enumerate(tax.primary_label):
        if not label:
            raise BirdCLEFError(f"{where(path, i, 'primary_label')}: empty label")
    dup = tax.primary_label[tax.primary_label.duplicated()]
    if len(dup):
        i = int(dup.index[0])
        raise BirdCLEFError(f"{where(path, i, 'primary_label')}: duplicate label '{dup.iloc[0]}'")
    return tax


def label_order(folder: Path, taxonomy: pd.DataFrame) -> list[str]:
    """Label order of sample_submission.csv when present (the submission order), else taxonomy order."""
    path = folder / "sample_submission.csv"
    known = list(taxonomy.primary_label)
    if not path.exists():
        return known
    cols = [c for c in pd.read_csv(path, nrows=0).columns if c != "row_id"]
    for c in cols:
        if c not in set(known):
            raise BirdCLEFError(f"{where(path, column=c)}: label '{c}' is not in taxonomy.csv")
    missing = [c for c in known if c not in set(cols)]
    if missing:
        raise BirdCLEFError(f"{path}: taxonomy labels {missing[:5]} have no column")
    return cols


def parse_label_list(text: str, path: Path, row: int, column: str) -> list[str]:
    """Secondary labels: a Python-list string such as "['a', 'b']" or "[]"."""
    if text.strip() in ("", "[]"):
        return []
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise BirdCLEFError(f"{where(path, row, column)}: not a list of labels: {text!r}") from exc
    if not isinstance(value, (list, tuple)):
        raise BirdCLEFError(f"{where(path, row, column)}: not a list of labels: {text!r}")
    return [str(v) for v in value]


def read_train(folder: Path, known: set[str]) -> pd.DataFrame:
    """train.csv with every label checked and every audio file opened (duration, rate added)."""
    path = folder / "train.csv"
    train = read_table(path, TRAIN_COLUMNS)
    first_row: dict[str, int] = {}
    for i, name in enumerate(train.filename):
        if name in first_row:
            raise BirdCLEFError(f"{where(path, i, 'filename')}: {name!r} repeats row {first_row[name] + 1}; "
                                "each recording is listed once")
        first_row[name] = i
    secondary, durations, rates = [], [], []
    for i, row in enumerate(tqdm(train.to_dict("records"), desc="check train audio", unit="file")):
        check_label(row["primary_label"], known, path, i, "primary_label")
        sec = parse_label_list(row["secondary_labels"], path, i, "secondary_labels")
        for s in sec:
            check_label(s, known, path, i, "secondary_labels")
        secondary.append(";".join(sec))
        for col in ("rating", "latitude", "longitude"):
            if row[col] != "" and _float(row[col]) is None:
                raise BirdCLEFError(f"{where(path, i, col)}: not a number: {row[col]!r}")
        audio = inside(folder / "train_audio", row["filename"], where(path, i, "filename"))
        if audio.suffix.lower() not in AUDIO_SUFFIXES:
            raise BirdCLEFError(f"{where(path, i, 'filename')}: {audio.name} is not .ogg, .flac or .wav")
        d, sr = audio_facts(audio, where(path, i, "filename"))
        durations.append(d)
        rates.append(sr)
    train["secondary_list"], train["duration_s"], train["sample_rate"] = secondary, durations, rates
    return train


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_soundscape_name(stem: str, at: str) -> dict:
    """Site, date and hour from a name like BC2026_Train_0001_S08_20240520_063000."""
    m = SOUNDSCAPE_NAME.fullmatch(stem)
    if not m:
        raise BirdCLEFError(f"{at}: soundscape name '{stem}' does not parse "
                            f"(expected BC2026_Train_<n>_S<site>_<yyyymmdd>_<hhmmss>)")
    _, _, site, date, hh, mm, ss = m.groups()
    if int(hh) > 23 or int(mm) > 59 or int(ss) > 59 or pd.to_datetime(date, format="%Y%m%d", errors="coerce") is pd.NaT:
        raise BirdCLEFError(f"{at}: soundscape name '{stem}' has an invalid date or time")
    return dict(site=site, date=date, hour=int(hh))


def parse_time(text: str, path: Path, row: int, column: str) -> int:
    """Seconds from 'hh:mm:ss'."""
    m = TIME.fullmatch(text.strip())
    if not m or int(m.group(2)) > 59 or int(m.group(3)) > 59:
        raise BirdCLEFError(f"{where(path, row, column)}: malformed time {text!r} (expected hh:mm:ss)")
    h, mi, s = map(int, m.groups())
    return h * 3600 + mi * 60 + s


def read_soundscapes(folder: Path, split_of: dict[str, str] | None = None, default_split: str = "unlabelled",
                     boards: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per audio file in ``folder``: name parsed, audio opened."""
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in AUDIO_SUFFIXES) if folder.exists() else []
    rows = []
    for p in tqdm(files, desc=f"check {folder.name}", unit="file"):
        meta = parse_soundscape_name(p.stem, str(p))
        d, sr = audio_facts(p, str(p))
        rows.append(dict(soundscape_id=p.stem, file=p, split=(split_of or {}).get(p.stem, default_split),
                         duration_s=d, sample_rate=sr, board=(boards or {}).get(p.stem, ""), **meta))
    return pd.DataFrame(rows, columns=["soundscape_id", "file", "split", "duration_s", "sample_rate",
                                       "board", "site", "date", "hour"])


def read_soundscape_labels(folder: Path, known: set[str], durations: dict[str, float]) -> tuple[pd.DataFrame, dict]:
    """train_soundscapes_labels.csv as (chunk table: soundscape_id, chunk, labels; counts). ``durations``:
    seconds of each file in train_soundscapes/ by stem. Rows that repeat an earlier row of the same chunk
    and labels are dropped; rows of one chunk with different labels are merged (the union); the counts
    say how many of each."""
    path = folder / "train_soundscapes_labels.csv"
    stats = dict(rows=0, repeated_rows_dropped=0, chunk_rows_merged=0)
    if not path.exists():
        return pd.DataFrame(columns=["soundscape_id", "chunk", "labels"]), stats
    table = read_table(path, LABELS_COLUMNS)
    merged: dict[tuple[str, int], set[str]] = {}
    seen: set[tuple[str, int, frozenset]] = set()
    for i, row in enumerate(table.to_dict("records")):
        name = row["filename"]
        if Path(name).name != name or name in ("", ".", ".."):
            raise BirdCLEFError(f"{where(path, i, 'filename')}: {name!r} is not a bare file name in train_soundscapes/")
        inside(folder / "train_soundscapes", name, where(path, i, "filename"))
        stem = Path(name).stem
        if stem not in durations:
            raise BirdCLEFError(f"{where(path, i, 'filename')}: '{name}' is not in train_soundscapes/")
        start = parse_time(row["start"], path, i, "start")
        end = parse_time(row["end"], path, i, "end")
        if end <= start:
            raise BirdCLEFError(f"{where(path, i, 'end')}: end {row['end']} is not after start {row['start']}")
        if start % CHUNK_S or end - start != CHUNK_S:
            raise BirdCLEFError(f"{where(path, i, 'start')}: {row['start']}-{row['end']} is not one chunk of the "
                                f"{CHUNK_S}-s grid (start a multiple of {CHUNK_S} s, end = start + {CHUNK_S} s)")
        chunk = start // CHUNK_S
        n_chunks = max(1, int(round(durations[stem] / CHUNK_S)))
        if chunk >= n_chunks:
            raise BirdCLEFError(f"{where(path, i, 'start')}: {row['start']} lies past the end of '{name}' "
                                f"({durations[stem]:.2f} s, {n_chunks} chunks of {CHUNK_S} s)")
        labels = frozenset(s for s in row["primary_label"].split(";") if s)
        for s in sorted(labels):
            check_label(s, known, path, i, "primary_label")
        stats["rows"] += 1
        if (stem, chunk, labels) in seen:
            stats["repeated_rows_dropped"] += 1
            continue
        seen.add((stem, chunk, labels))
        if (stem, chunk) in merged:
            stats["chunk_rows_merged"] += 1
        merged.setdefault((stem, chunk), set()).update(labels)
    out = pd.DataFrame([dict(soundscape_id=k[0], chunk=k[1], labels=";".join(sorted(v))) for k, v in sorted(merged.items())],
                       columns=["soundscape_id", "chunk", "labels"])
    return out, stats


def read_competition(folder: str | Path) -> dict:
    """Validate a competition folder; return its tables (paths are real file paths)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BirdCLEFError(f"{folder}: competition folder not found")
    taxonomy = read_taxonomy(folder)
    known = set(taxonomy.primary_label)
    order = label_order(folder, taxonomy)
    train = read_train(folder, known)
    labels_path = folder / "train_soundscapes_labels.csv"
    scapes = read_soundscapes(folder / "train_soundscapes")
    chunk_labels, label_stats = read_soundscape_labels(
        folder, known, dict(zip(scapes.soundscape_id, scapes.duration_s)))
    labelled = set(chunk_labels.soundscape_id)
    scapes["split"] = ["labelled" if s in labelled else "unlabelled" for s in scapes.soundscape_id]
    return dict(folder=folder, taxonomy=taxonomy, order=order, train=train, scapes=scapes,
                chunk_labels=chunk_labels, labels_path=labels_path, label_stats=label_stats)


def read_hidden(folder: str | Path, order: list[str]) -> pd.DataFrame:
    """The hidden test set: test soundscapes with their board; solution.csv columns checked."""
    folder = Path(folder)
    boards_path = folder / "boards.csv"
    boards = read_table(boards_path, BOARDS_COLUMNS)
    for i, b in enumerate(boards.board):
        if b not in ("public", "private"):
            raise BirdCLEFError(f"{where(boards_path, i, 'board')}: '{b}' is neither public nor private")
    solution = read_table(folder / "solution.csv", ["row_id", *order])
    extra = [c for c in solution.columns if c not in set(order) | {"row_id"}]
    if extra:
        raise BirdCLEFError(f"{where(folder / 'solution.csv', column=extra[0])}: label not in taxonomy.csv")
    return read_soundscapes(folder / "test_soundscapes", default_split="test",
                            boards=dict(zip(boards.filename, boards.board)))


# ----------------------------------------------------------------------------- index tables

def index_tables(comp: dict, hidden: pd.DataFrame | None, as_path) -> dict[str, pd.DataFrame]:
    """The four index tables of docs/contracts.md. ``as_path(real_path) -> str`` maps a file to
    the path written in the tables (e.g. relative to the repository root)."""
    tax = comp["taxonomy"].set_index("primary_label")
    order = comp["order"]
    species = pd.DataFrame({
        "label_idx": range(len(order)), "primary_label": order,
        "scientific_name": [tax.loc[lbl, "scientific_name"] for lbl in order],
        "common_name": [tax.loc[lbl, "common_name"] for lbl in order],
        "genus": [tax.loc[lbl, "scientific_name"].split(" ")[0] for lbl in order],
        "class_name": [tax.loc[lbl, "class_name"] for lbl in order]})
    train = comp["train"]
    folder = comp["folder"]
    recordings = pd.DataFrame({
        "recording_id": [str(Path(f).with_suffix("")) for f in train.filename],
        "path": [as_path(folder / "train_audio" / f) for f in train.filename],
        "primary_label": train.primary_label, "secondary_labels": train.secondary_list,
        "rating": train.rating, "latitude": train.latitude, "longitude": train.longitude,
        "duration_s": train.duration_s.round(3), "sample_rate": train.sample_rate})
    scapes = pd.concat([comp["scapes"], hidden], ignore_index=True) if hidden is not None else comp["scapes"]
    soundscapes = scapes.assign(path=[as_path(p) for p in scapes.file], duration_s=scapes.duration_s.round(3))
    return dict(species=species, recordings=recordings, soundscapes=soundscapes[SOUNDSCAPE_COLUMNS],
                chunks=chunk_table(soundscapes, comp["chunk_labels"]))


def chunk_table(soundscapes: pd.DataFrame, chunk_labels: pd.DataFrame) -> pd.DataFrame:
    """One row per 5-s chunk; labels only for labelled soundscapes (a chunk the labels file
    does not list has no label)."""
    known = {(r.soundscape_id, int(r.chunk)): r.labels for r in chunk_labels.itertuples()}
    rows = []
    for s in soundscapes.itertuples():
        for c in range(max(1, int(round(s.duration_s / CHUNK_S)))):
            labels = known.get((s.soundscape_id, c), "") if s.split == "labelled" else ""
            rows.append(dict(row_id=f"{s.soundscape_id}_{(c + 1) * CHUNK_S}", soundscape_id=s.soundscape_id,
                             chunk=c, start_s=c * CHUNK_S, end_s=(c + 1) * CHUNK_S, split=s.split,
                             site=s.site, hour=s.hour, labels=labels))
    return pd.DataFrame(rows, columns=CHUNK_COLUMNS)


def write_index(folder: Path, tables: dict[str, pd.DataFrame]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, columns in (("species", SPECIES_COLUMNS), ("recordings", RECORDING_COLUMNS),
                          ("soundscapes", SOUNDSCAPE_COLUMNS), ("chunks", CHUNK_COLUMNS)):
        tables[name][columns].to_csv(folder / f"{name}.csv", index=False)
