"""Writing the competition layout: taxonomy.csv, train.csv, train_audio/, train_soundscapes/,
their labels, and the hidden test set (test soundscapes, solution, boards, sample submission).

``generate`` is the public entry (re-exported by the package). Items are rendered in worker
processes when ``jobs > 1``; the workers are top-level functions, so they pickle.
"""
from __future__ import annotations

from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from birdclef_eos.data.synthetic.labels import chunk_labels, hhmmss
from birdclef_eos.data.synthetic.taxonomy import LAYOUT, RECORDING, make_taxonomy, rng_for
from birdclef_eos.data.synthetic.world import (World, make_world, recording_specs, render_recording,
                                               render_soundscape, soundscape_specs)


def _site_location(site: int, seed: int) -> tuple[float, float]:
    r = rng_for(seed, LAYOUT, 100 + site)
    return -16.5 - r.uniform(0, 3), -55.5 - r.uniform(0, 2.5)


def _recording_task(args):
    world, row, folder = args
    path = Path(folder) / "train_audio" / row["primary_label"] / f"{row['recording_id']}.flac"
    return render_recording(world, row, path)


def _soundscape_task(args):
    world, row, folder = args
    return render_soundscape(world, row, Path(folder) / f"{row['stem']}.flac")


def _run(tasks, fn, jobs: int, desc: str) -> list:
    if jobs <= 1:
        return [fn(t) for t in tqdm(tasks, desc=desc, unit="file")]
    with Pool(jobs) as pool:
        return list(tqdm(pool.imap(fn, tasks, chunksize=1), total=len(tasks), desc=desc, unit="file"))


def write_train_csv(out: Path, recs: pd.DataFrame, results: list[dict], taxonomy: pd.DataFrame,
                    world: World) -> None:
    tax = taxonomy.set_index("primary_label")
    rows = []
    for rec, res in zip(recs.to_dict("records"), results):
        r = rng_for(world.seed, RECORDING, 10_000_000 + int(rec["index"]))
        site = int(np.argmax(world.site_weight[rec["primary_label"]] * r.random(world.cfg["sites"])))
        lat, lon = _site_location(site, world.seed)
        label = rec["primary_label"]
        rows.append(dict(
            primary_label=label, secondary_labels=str(res["secondary_labels"]),
            type=str(["call"] if r.random() < 0.5 else ["song"]),
            filename=f"{label}/{rec['recording_id']}.flac", collection="XC", rating=res["rating"],
            latitude=round(lat + r.normal(0, 0.2), 4), longitude=round(lon + r.normal(0, 0.2), 4),
            scientific_name=tax.loc[label, "scientific_name"], common_name=tax.loc[label, "common_name"],
            author=f"Recordist {int(r.integers(1, 60)):02d}", license="cc-by-nc-sa 4.0",
            url=f"https://xeno-canto.org/{rec['recording_id'][2:]}"))
    pd.DataFrame(rows).to_csv(out / "train.csv", index=False)


def write_soundscape_tables(out: Path, hidden: Path, scapes: pd.DataFrame, events: list, labels: list[str],
                            cfg: dict, seed: int) -> None:
    """train_soundscapes_labels.csv (labelled part), and the hidden solution, boards, sample submission."""
    chunk_s, dur = cfg["chunk_s"], cfg["soundscape_s"]
    label_rows, solution_rows, boards = [], [], []
    rng = rng_for(seed, LAYOUT, 3)
    for row, ev in zip(scapes.to_dict("records"), events):
        per_chunk = chunk_labels(ev, dur, chunk_s, cfg["min_overlap_s"])
        for c, lbls in enumerate(per_chunk):
            if row["split"] == "labelled":
                label_rows.append(dict(filename=f"{row['stem']}.flac", start=hhmmss(c * chunk_s),
                                       end=hhmmss((c + 1) * chunk_s), primary_label=";".join(lbls)))
            elif row["split"] == "test":
                solution_rows.append({"row_id": f"{row['stem']}_{(c + 1) * chunk_s}",
                                      **{lbl: int(lbl in lbls) for lbl in labels}})
        if row["split"] == "test":
            boards.append(row["stem"])
    pd.DataFrame(label_rows, columns=["filename", "start", "end", "primary_label"]).to_csv(
        out / "train_soundscapes_labels.csv", index=False)
    solution = pd.DataFrame(solution_rows, columns=["row_id", *labels])
    solution.to_csv(hidden / "solution.csv", index=False)
    public = rng.permutation(len(boards))[: int(round(cfg["public_fraction"] * len(boards)))]
    pd.DataFrame({"filename": boards, "board": ["public" if i in set(public) else "private"
                                                for i in range(len(boards))]}).to_csv(hidden / "boards.csv", index=False)
    sample = solution[["row_id"]].copy()
    for lbl in labels:
        sample[lbl] = round(1 / len(labels), 6)
    for folder in (out, hidden):
        sample.to_csv(folder / "sample_submission.csv", index=False)


def generate(out: Path, hidden: Path, seed: int, cfg: dict, jobs: int = 1) -> dict:
    """Write the competition layout under ``out`` and the hidden test set under ``hidden``."""
    sr = cfg["sample_rate"]
    taxonomy, templates = make_taxonomy(seed, cfg["genera"], cfg["species"], cfg["class_shares"],
                                        cfg["species_spread"])
    world = make_world(seed, sr, cfg, taxonomy, templates)
    out.mkdir(parents=True, exist_ok=True)
    hidden.mkdir(parents=True, exist_ok=True)
    taxonomy.to_csv(out / "taxonomy.csv", index=False)

    recs = recording_specs(world)
    for label in recs.primary_label.unique():
        (out / "train_audio" / label).mkdir(parents=True, exist_ok=True)
    results = _run([(world, r, str(out)) for r in recs.to_dict("records")], _recording_task, jobs, "recordings")
    write_train_csv(out, recs, results, taxonomy, world)

    scapes = soundscape_specs(world)
    (out / "train_soundscapes").mkdir(exist_ok=True)
    (hidden / "test_soundscapes").mkdir(exist_ok=True)
    tasks = [(world, r, str(hidden / "test_soundscapes" if r["split"] == "test" else out / "train_soundscapes"))
             for r in scapes.to_dict("records")]
    events = _run(tasks, _soundscape_task, jobs, "soundscapes")
    write_soundscape_tables(out, hidden, scapes, events, list(taxonomy.primary_label), cfg, seed)
    return dict(species=len(taxonomy), recordings=len(recs), soundscapes=len(scapes))
