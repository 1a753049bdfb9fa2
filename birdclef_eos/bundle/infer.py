"""What a Kaggle kernel runs: audio of the test soundscapes -> a submission, with the pipeline's own code.

The same functions as the `extract` and `predict` stages, in the same order: the soundscape table and
its chunks (data/birdclef.py), the window plan (data/plans.py), the probed backbone (backbone/runner.py,
audio/windows.py), the head's fold models at every TTA shift (heads/inference.py), the TTA average,
the site/hour prior fitted on the labelled chunks shipped with the model folder, and the
post-processing (scoring/postprocess.py). So a bundle's submission equals the pipeline's
submissions/<name>/submission.csv for the same files (up to the last bits of the backbone's batches).

A bundle's ``kind`` picks the function that makes its probabilities (``KINDS``): ``predict`` is one
trained head with TTA and post-processing (the predict stage's submissions); ``chain`` is the base
stage's stand-in of the baseline chain (its models' test predictions: the protossm stage's fold models
averaged over their TTA shifts and, when it weighs > 0, the sed stage's fold models on log-mels the
kernel computes from the test audio with the spectrogram stage's code and settings; the rank blend of
the chain's models, the base post-processing with the site/hour prior);
``blend`` is a `blends:` entry (the blend stage): its parts, each a bundle config of its own kind,
mixed with the weights resolved in the kernel (``scoring/blend.py`` ``resolve_blend``, the blend
stage's one reading) from the entry the model folder carries and the shared `blend:` section
(weight, space, taxonomy) the kernel notebook passes, then taxonomy-smoothed (eos7 = base 0.93 + v6
0.07), then, for an entry with a ``sidecar:``, the sidecar's masked rank correction (scoring/sidecar.py
``apply``, the blend stage's helper) by the ``sidecar`` kind's submission (eos10); ``sidecar`` is the
sidecar stage's raw submission (its head's fold models on BirdNET's final embedding at its TTA shifts:
the main backbone's in the default mode, where it is BirdNET; in real-data mode a second pass of the
converted BirdNET ONNX the model folder carries, with the sidecar_features stage's runner, windows and
`sidecar.extract` knobs);
``vit`` is a vit stage's raw submission (its fold models on log-mels the kernel computes from the test
audio, as for the SED; eos12 and eos13 carry one). The post-processing knobs of the predict and chain
parts come from the kernel notebook too (``with_knobs``), so a change of `blend.weight` or of a
post-processing knob changes the kernel notebook, never the model folder. The backbone runs once per
kernel for every part (``TestAudio``), and every part is
rounded as the pipeline's file of it is (``submission.as_written``: submissions ``%.6f``, the
chain's test predictions ``%.6g``), so ranks tie where they tie in the pipeline; a part that is a
blend is not rounded, because the blend stage mixes it from memory, not from its file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from birdclef_eos.audio.spectrogram import MelSpec, log_mel
from birdclef_eos.audio.windows import forward, read_file_windows
from birdclef_eos.backbone import birdnet
from birdclef_eos.backbone.runner import Backbone
from birdclef_eos.chain import protossm as pssm
from birdclef_eos.chain import sed as sedlib
from birdclef_eos.chain.sequences import file_sequences
from birdclef_eos.data import birdclef
from birdclef_eos.data.features import WINDOW_COLUMNS
from birdclef_eos.data.plans import soundscape_windows
from birdclef_eos.heads import models as heads
from birdclef_eos.heads import vit as vitlib
from birdclef_eos.heads.inference import predict_shifts
from birdclef_eos.scoring import postprocess, submission
from birdclef_eos.scoring import sidecar as sidecar_lib
from birdclef_eos.scoring.blend import blend, mix, resolve_blend


SUBMISSION_FORMAT = "%.6f"   # every submissions/<name>/submission.csv (predict, base and blend stages)
PREDICTIONS_FORMAT = "%.6g"  # predictions/chain/<model>/test.csv (the protossm stage)


class BundleError(ValueError):
    pass


def soundscape_chunks(test_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(soundscapes, chunks) of every audio file in ``test_dir``, split ``test``, as the index has them."""
    scapes = birdclef.read_soundscapes(Path(test_dir), default_split="test")
    if scapes.empty:
        raise BundleError(f"{test_dir}: no test soundscapes (.ogg, .flac, .wav); run_bundle writes the save run's "
                          "header-only submission before this")
    scapes = scapes.assign(path=[str(f) for f in scapes.file])
    chunks = birdclef.chunk_table(scapes, pd.DataFrame(columns=["soundscape_id", "chunk", "labels"]))
    return scapes, chunks


def test_files(test_dir: Path) -> list[Path]:
    """The audio files of ``test_dir`` (none when it is missing: Kaggle's save run has it empty)."""
    if not test_dir.is_dir():
        return []
    return sorted(p for p in test_dir.iterdir() if p.suffix.lower() in birdclef.AUDIO_SUFFIXES)


def save_run_submission(root: Path, cfg: dict, test_dir: Path) -> pd.DataFrame:
    """Kaggle's save run (no test files): the header-only submission, row_id and the species
    columns in the order the scoring run writes them. Not the sample submission's rows: they name
    files that are not there and their values would be placeholders, and the save run's file is never
    scored. When the competition folder's sample_submission.csv is there, its header must be this
    one, so a column mismatch stops the save run rather than the scoring run."""
    _, labels = read_species(root, cfg)
    frame = pd.DataFrame({"row_id": pd.Series(dtype=str), **{c: pd.Series(dtype=float) for c in labels}})
    sample = test_dir.parent / "sample_submission.csv"
    if sample.is_file():
        header = list(pd.read_csv(sample, nrows=0).columns)
        if header != list(frame.columns):
            raise BundleError(f"{sample}: its columns ({len(header)}: {header[:4]}...) are not the bundle's "
                              f"({len(frame.columns)}: {list(frame.columns)[:4]}...): the species table differs")
    return frame


class TestAudio:
    """The test soundscapes of one kernel run and the backbone's outputs on their windows: computed
    once for every part of a bundle (``reserve`` the union of the parts' shifts and outputs first)."""

    def __init__(self, test_dir: Path):
        self.scapes, self.chunks = soundscape_chunks(test_dir)
        self.shifts: set[float] = set()
        self.names: set[str] = set()
        self.backbone: dict | None = None
        self.windows: pd.DataFrame | None = None
        self.arrays: dict[str, np.ndarray] = {}

    def reserve(self, shifts, names) -> None:
        self.shifts |= {float(s) for s in shifts}
        self.names |= set(names)

    def outputs(self, root: Path, cfg: dict, shifts, names) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        """(test windows at every reserved shift [N rows], {name: [N, C] float32}) covering ``shifts`` and
        ``names``; the backbone runs again only for what was not reserved."""
        self.reserve(shifts, names)
        if self.backbone is not None and self.backbone != cfg["backbone"]:
            raise BundleError(f"bundle '{cfg['name']}': its parts run the backbone with different settings "
                              f"({self.backbone} and {cfg['backbone']})")
        if self.windows is None or not self.names <= set(self.arrays) or \
                not self.shifts <= set(self.windows["shift_s"].astype(float)):
            files, b = cfg["files"], cfg["backbone"]
            names = sorted(self.names)
            plan = soundscape_windows(self.scapes, self.chunks, sorted(self.shifts))
            runner = Backbone(root / files["probed_onnx"], root / files["backbone_json"], root / files["blocks_json"],
                              threads=b["threads"], batch_size=b["batch_size"], chunk_mapping=b["chunk_mapping"],
                              input_rate=b["sample_rate"], blocks=[n for n in names if n.startswith("block_")],
                              progress=False, frontend=b["frontend"], provider="cpu")
            kept, self.arrays, _ = forward(runner, plan, names, b["batch_windows"], b["on_bad_audio"],
                                           b["sample_rate"], desc="backbone")
            self.windows = plan[kept][WINDOW_COLUMNS].reset_index(drop=True)
            self.backbone = cfg["backbone"]
        return self.windows, self.arrays

    def order(self, labels: list[str]) -> pd.DataFrame:
        """The submission's rows (every chunk of every test file) and columns."""
        return pd.DataFrame({"row_id": self.chunks["row_id"].astype(str)}).assign(**{c: 0.0 for c in labels})

    def rows(self, row_ids: list[str]) -> pd.DataFrame:
        """file_id, chunk, site, hour of ``row_ids`` (what post-processing reads)."""
        rows = self.chunks.assign(row_id=self.chunks["row_id"].astype(str)).set_index("row_id").loc[row_ids]
        return rows.reset_index().rename(columns={"soundscape_id": "file_id"})


def read_species(root: Path, cfg: dict) -> tuple[pd.DataFrame, list[str]]:
    species = pd.read_csv(root / cfg["files"]["species"], keep_default_na=False).sort_values("label_idx")
    return species, species["primary_label"].astype(str).tolist()


def fitted_prior(root: Path, cfg: dict, knobs: postprocess.Knobs, labels: list[str]) -> dict | None:
    """The site/hour prior fitted on the labelled chunks the model folder carries (None when off)."""
    if not knobs.prior_alpha:
        return None
    train_chunks = pd.read_csv(root / cfg["files"]["prior_chunks"], keep_default_na=False,
                               dtype={"labels": str, "site": str})
    return postprocess.fit_prior(train_chunks, labels)


def head_names(root: Path, cfg: dict) -> list[str]:
    config = json.loads((root / cfg["files"]["head"] / "config.json").read_text())
    return config.get("tokens") or [f"block_{i:02d}" for i in config["blocks"]]


def needs(root: Path, cfg: dict) -> tuple[list[float], list[str]]:
    """(test shifts, backbone outputs) a bundle config reads."""
    if cfg["kind"] == "predict":
        return [float(s) for s in cfg["tta"]], head_names(root, cfg)
    if cfg["kind"] == "chain":
        saved = json.loads((root / cfg["files"]["protossm"] / "config.json").read_text())
        return [float(s) for s in cfg["protossm"]["tta"]], list(saved["inputs"])
    if cfg["kind"] == "sidecar":  # real-data mode: its own BirdNET pass, none of the main backbone's outputs
        return [float(s) for s in cfg["tta"]], [] if cfg.get("extraction") else head_names(root, cfg)
    if cfg["kind"] == "vit":
        return [], []  # reads audio, no backbone output
    if cfg["kind"] == "blend":
        wanted = [needs(root, part) for part in [*cfg["parts"].values(), *([cfg["sidecar"]] if cfg.get("sidecar") else [])]]
        return [s for w in wanted for s in w[0]], [n for w in wanted for n in w[1]]
    raise BundleError(f"bundle '{cfg['name']}': kind '{cfg['kind']}' is not one of {sorted(KINDS)}")


def predict_kind(root: Path, cfg: dict, test_dir: Path, audio: TestAudio | None = None,
                 shared: dict | None = None) -> pd.DataFrame:
    """One head, TTA, post-processing: a predict-stage submission (row_id + one column per label)."""
    audio = audio or TestAudio(test_dir)
    species, labels = read_species(root, cfg)
    models, _ = heads.load_variant(root / cfg["files"]["head"])
    names = head_names(root, cfg)
    shifts = [float(s) for s in cfg["tta"]]
    windows, arrays = audio.outputs(root, cfg, shifts, names)
    rows, per_shift = predict_shifts(models, windows, arrays, names, shifts)
    knobs = postprocess.Knobs(**cfg["knobs"])
    probs = postprocess.average_shifts(per_shift, knobs.tta_space)
    probs = postprocess.postprocess(probs, rows, knobs, prior=fitted_prior(root, cfg, knobs, labels), species=species)
    order = audio.order(labels)
    sub = submission.build(rows["row_id"].astype(str), probs, labels, order)
    submission.validate(sub, order, name=f"bundle '{cfg['name']}'")
    return sub


def sidecar_kind(root: Path, cfg: dict, test_dir: Path, audio: TestAudio | None = None,
                 shared: dict | None = None) -> pd.DataFrame:
    """The sidecar stage's raw submission (submissions/sidecar): the sidecar head's fold models on
    BirdNET's final embedding at its TTA shifts, averaged in probability space, no post-processing.
    In the default mode the main backbone is BirdNET, so the embedding is the main pass's; a config
    with an ``extraction`` (real-data mode) runs the carried BirdNET ONNX over the test windows first,
    as the sidecar_features stage does (``sidecar_birdnet``)."""
    audio = audio or TestAudio(test_dir)
    _, labels = read_species(root, cfg)
    models, _ = heads.load_variant(root / cfg["files"]["head"])
    names = head_names(root, cfg)
    shifts = [float(s) for s in cfg["tta"]]
    if cfg.get("extraction"):
        windows, arrays = sidecar_birdnet(root, cfg, audio, shifts, names)
    else:
        windows, arrays = audio.outputs(root, cfg, shifts, names)
    rows, per_shift = predict_shifts(models, windows, arrays, names, shifts)
    probs = postprocess.average_shifts(per_shift, "prob")
    order = audio.order(labels)
    sub = submission.build(rows["row_id"].astype(str), probs, labels, order)
    submission.validate(sub, order, name=f"bundle '{cfg['name']}'")
    return sub


def sidecar_birdnet(root: Path, cfg: dict, audio: TestAudio, shifts: list[float],
                    names: list[str]) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Real-data mode's second extraction, as stages/sidecar_features.py runs it: the converted BirdNET
    ONNX the model folder carries (the sha256 that stage extracted with), opened by the same runner
    (backbone/runner.py, with birdnet.py's runner spec and no block outputs) at the recorded
    `sidecar.extract` knobs (threads, batch_size, chunk_mapping, frontend), over the windows the main
    extraction reads (every test chunk at every reserved shift, the sidecar's included, in the plan's
    order), read and batched by the same ``forward`` (``batch_windows``); its float32 final embedding is
    what the sidecar head reads. A test file the main pass skips (``on_bad_audio``) is skipped here too,
    as the stage sees only the windows the main store kept."""
    x = cfg["extraction"]
    if names != [x["output"]]:
        raise BundleError(f"bundle '{cfg['name']}': the sidecar head reads {names}, the carried BirdNET "
                          f"extraction gives {x['output']!r}")
    folder = root / cfg["files"]["sidecar_backbone"]
    audio.reserve(shifts, [])
    plan = soundscape_windows(audio.scapes, audio.chunks, sorted(audio.shifts))
    runner = Backbone(folder / "backbone.onnx", birdnet.runner_spec(birdnet.read_labels(folder / "labels.txt")),
                      {"blocks": []}, threads=x["threads"], batch_size=x["batch_size"],
                      chunk_mapping=x["chunk_mapping"], input_rate=x["sample_rate"], progress=False,
                      frontend=x["frontend"], provider="cpu")
    kept, arrays, _ = forward(runner, plan, names, x["batch_windows"], cfg["backbone"]["on_bad_audio"],
                              x["sample_rate"], desc="sidecar BirdNET")
    windows = plan[kept][WINDOW_COLUMNS].reset_index(drop=True)
    return windows, {n: arrays[n].astype(np.float32) for n in names}


def protossm_test(root: Path, cfg: dict, audio: TestAudio, labels: list[str]) -> pd.DataFrame:
    """The protossm stage's predictions/chain/protossm/test.csv for these files: every fold model on
    the test chunks at each shift, the mean over folds and shifts (as written: ``%.6g``)."""
    p = cfg["protossm"]
    folder = root / cfg["files"]["protossm"]
    saved = json.loads((folder / "config.json").read_text())
    if saved["labels"] != labels:
        raise BundleError(f"{folder}/config.json: its labels are not the species table's")
    if saved["config"]["mix_logits"]:
        raise BundleError(f"{folder}/config.json: mix_logits is on; a bundle does not carry the competition "
                          "logit mapping the protossm stage mixes (set base.protossm.mix_logits: false)")
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(int(p["threads"]))
    config = pssm.ProtoSSMConfig(**saved["config"])
    models = []
    for k in range(int(saved["n_folds"])):
        model = pssm.ProtoSSM(config)
        model.load_state_dict(torch.load(folder / f"fold_{k}.pt", map_location="cpu", weights_only=True))
        models.append(model)
    windows, arrays = audio.outputs(root, cfg, p["tta"], saved["inputs"])
    inputs = {n: arrays[n] for n in saved["inputs"]}
    probs, row_ids = [], None
    for shift in p["tta"]:
        rows = windows[np.isclose(windows["shift_s"].astype(float), float(shift))]
        data = file_sequences(rows, inputs, None, saved["site_slots"], labels, where=f"test windows at shift {shift}")
        row_ids = data["row_ids"] if row_ids is None else row_ids
        probs.append(sum(pssm.predict(m, data["emb"], data["site"], data["hour"], None) / len(models) for m in models))
    mean = np.mean(probs, axis=0)
    frame = pd.concat([pd.DataFrame({"row_id": row_ids.ravel()}), pd.DataFrame(mean.reshape(-1, len(labels)), columns=labels)], axis=1)
    return submission.as_written(frame, PREDICTIONS_FORMAT)


def test_mels(audio: TestAudio, spec: MelSpec, shifts: list[float]) -> tuple[pd.DataFrame, np.ndarray]:
    """(the test windows at ``shifts`` in the feature store's order, their log-mels [n, n_mels, frames]
    float16) as the spectrogram stage caches them: each window read with its reader, one file at a
    time, turned into the float32 log-mel by ``log_mel`` at ``spec`` and stored as float16."""
    rows = soundscape_windows(audio.scapes, audio.chunks, [float(s) for s in shifts])
    rows = rows[rows["source"] == "test"].reset_index(drop=True)
    mels = np.empty((len(rows), spec.n_mels, spec.frames(int(round(5.0 * spec.sample_rate)))), dtype=np.float16)
    for path, idx in rows.groupby("path", sort=False).groups.items():  # one file at a time, as the stage reads
        idx = list(idx)
        clips = read_file_windows(path, rows.loc[idx, "start_s"].astype(float).tolist(), spec.sample_rate)
        mels[idx] = log_mel(clips, spec).astype(np.float16)
    return rows, mels


def sed_test(root: Path, cfg: dict, audio: TestAudio, labels: list[str]) -> pd.DataFrame:
    """The sed stage's predictions/chain/sed/test.csv for these files, computed as the spectrogram and
    sed stages compute it: every test chunk at shift 0 (the SED reads no other shift), in the feature
    store's order, read with the spectrogram stage's reader at the MelSpec the SED was trained on (the
    model folder's config.json, which the sed stage copies from data/spectrograms/spec.json), turned
    into the same float32 log-mel by the same ``log_mel`` and stored as float16 as the cache stores it;
    every fold model scores the chunks in the sed stage's batches, the mean over folds is smoothed over
    each file's chunks (``sed.smooth_sigma``, probabilities) and written as the stage writes it (``%.6g``).
    No backbone pass: the SED reads audio."""
    s = cfg["sed"]
    folder = root / cfg["files"]["sed"]
    saved = json.loads((folder / "config.json").read_text())
    if saved["labels"] != labels:
        raise BundleError(f"{folder}/config.json: its labels are not the species table's")
    spec = MelSpec.from_dict(saved["spec"])
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(int(s["threads"]))
    config = sedlib.SEDConfig(**saved["config"])
    n_models = max(1, int(saved["folds"]))
    rows, mels = test_mels(audio, spec, [0.0])
    probs = np.zeros((len(rows), len(labels)))
    for k in range(n_models):
        model = sedlib.SED(config)
        model.load_state_dict(torch.load(folder / f"fold_{k}.pt", map_location="cpu", weights_only=True))
        probs += sedlib.predict(model.eval(), mels) / n_models
    probs = postprocess.gaussian_smooth(probs, rows["file_id"].to_numpy(), rows["chunk"].to_numpy(),
                                        float(s["smooth_sigma"]), mode="nearest", space="prob", truncate=4.0)
    frame = pd.concat([rows[["row_id"]].astype(str), pd.DataFrame(probs, columns=labels)], axis=1)
    return submission.as_written(frame, PREDICTIONS_FORMAT)


def vit_kind(root: Path, cfg: dict, test_dir: Path, audio: TestAudio | None = None,
             shared: dict | None = None) -> pd.DataFrame:
    """The vit stage's raw submission (submissions/vit<size>): the log-mels of the test windows at
    the ViT's TTA shifts, computed from the test audio as the spectrogram stage computes them at the
    MelSpec the ViT was trained on (its config.json), every trained fold model in the stage's batches,
    the mean over shifts in probability space, no post-processing. No backbone pass: the ViT reads audio."""
    audio = audio or TestAudio(test_dir)
    _, labels = read_species(root, cfg)
    folder = root / cfg["files"]["vit"]
    saved = json.loads((folder / "config.json").read_text())
    if saved["labels"] != labels:
        raise BundleError(f"{folder}/config.json: its labels are not the species table's")
    v = cfg["vit"]
    shifts = [float(s) for s in v["tta"]]
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(int(v["threads"]))
    models = []
    for k in saved["folds"]:
        model = vitlib.build_vit(saved["model"])
        model.load_state_dict(torch.load(folder / f"fold_{k}.pt", map_location="cpu", weights_only=True))
        models.append(model.eval())
    rows, mels = test_mels(audio, MelSpec.from_dict(saved["spec"]), shifts)
    test_rows, per_shift = predict_shifts(models, rows, {"mels": mels}, ["mels"], shifts, batch_size=vitlib.PREDICT_BATCH)
    order = audio.order(labels)
    sub = submission.build(test_rows["row_id"].astype(str), np.mean(per_shift, axis=0), labels, order)
    submission.validate(sub, order, name=f"bundle '{cfg['name']}'")
    return sub


CHAIN_PARTS = {"protossm": protossm_test, "sed": sed_test}  # the chain's models a bundle runs (base.blend's keys)


def chain_kind(root: Path, cfg: dict, test_dir: Path, audio: TestAudio | None = None,
               shared: dict | None = None) -> pd.DataFrame:
    """The base stage's stand-in chain: its models' test predictions, their rank blend over all test
    rows, then the base post-processing with the site/hour prior (a base-stage submission)."""
    check_config(cfg, shared)
    audio = audio or TestAudio(test_dir)
    species, labels = read_species(root, cfg)
    order = audio.order(labels)
    row_ids = order["row_id"].tolist()
    preds = {}
    for model in cfg["weights"]:
        frame = CHAIN_PARTS[model](root, cfg, audio, labels).set_index("row_id").reindex(row_ids)
        if frame[labels].isna().any().any():
            raise BundleError(f"bundle '{cfg['name']}': {model} has no prediction for some test chunks")
        preds[model] = frame[labels].to_numpy(dtype=np.float64)
    probs = mix(preds, cfg["weights"], "rank")
    knobs = postprocess.Knobs(**cfg["knobs"])
    probs = postprocess.postprocess(probs, audio.rows(row_ids), knobs, prior=fitted_prior(root, cfg, knobs, labels),
                                    species=species)
    sub = submission.build(row_ids, probs, labels, order)
    submission.validate(sub, order, name=f"bundle '{cfg['name']}'")
    return sub


def blend_kind(root: Path, cfg: dict, test_dir: Path, audio: TestAudio | None = None,
               shared: dict | None = None) -> pd.DataFrame:
    """A `blends:` entry: each part's submission (as the pipeline writes it: ``%.6f``; a part that is itself
    a blend unrounded, as the blend stage keeps it in memory for the blends after it), mixed with the
    entry's weights resolved against ``shared`` (the `blend:` section: weight, space, taxonomy) in its
    space, then taxonomy-smoothed (a blend-stage submission)."""
    spec = check_config(cfg, shared)
    audio = audio or TestAudio(test_dir)
    species, labels = read_species(root, cfg)
    shifts, names = needs(root, cfg)
    audio.reserve(shifts, names)
    frames = {}
    for part, part_cfg in cfg["parts"].items():
        made = KINDS[part_cfg["kind"]](root, part_cfg, test_dir, audio, shared)
        # a submission part is read back from its file (%.6f); a blend part (eos9's anchor, eos10's eos7) is
        # mixed as the blend stage mixes it: the frame it just made, unrounded
        frames[part] = made if part_cfg["kind"] == "blend" else submission.as_written(made, SUBMISSION_FORMAT)
    sub = blend(frames, spec, species)
    side = cfg["entry"].get("sidecar")
    if side:  # the blend stage's masked rank correction by the sidecar's submission (as written)
        made = sidecar_kind(root, cfg["sidecar"], test_dir, audio, shared)
        sub = sidecar_lib.apply(sub, submission.as_written(made, SUBMISSION_FORMAT), side)
    order = audio.order(labels)
    sub = sub.set_index("row_id").reindex(order["row_id"]).reset_index()
    submission.validate(sub, order, name=f"bundle '{cfg['name']}'")
    return sub


def check_config(cfg: dict, shared: dict | None, where: str | None = None):
    """Refuse what a bundle config cannot rebuild, before any audio is read (so Kaggle's save run,
    which has no test files, stops on it too): a chain weighing a model a bundle does not run, a
    blend whose weights name a part it does not carry or whose parts have unknown kinds. Returns a
    blend's resolved ``Blend`` (None for the other kinds)."""
    where = where or f"bundle '{cfg['name']}'"
    if cfg["kind"] not in KINDS:
        raise BundleError(f"{where}: kind '{cfg['kind']}' is not one of {sorted(KINDS)}")
    if cfg["kind"] == "chain":
        lacking = sorted(set(cfg["weights"]) - set(CHAIN_PARTS))
        if lacking:
            raise BundleError(f"{where}: the chain's blend weighs {lacking} > 0, which a bundle "
                              f"cannot run (it runs {sorted(CHAIN_PARTS)})")
    if cfg["kind"] != "blend":
        return None
    spec = resolve(cfg, shared)
    missing = sorted(set(spec.weights) - set(cfg["parts"]))
    if missing:
        raise BundleError(f"{where}: weights name part(s) {missing} the bundle does not carry "
                          f"(it has {sorted(cfg['parts'])})")
    for part, part_cfg in cfg["parts"].items():
        if part_cfg["kind"] not in KINDS:
            raise BundleError(f"{where}: part '{part}' has kind '{part_cfg['kind']}', not one of "
                              f"{sorted(KINDS)}")
    for part, part_cfg in cfg["parts"].items():
        check_config(part_cfg, shared, f"{where}, part '{part}'")
    if cfg["entry"].get("sidecar") and (cfg.get("sidecar") or {}).get("kind") != "sidecar":
        raise BundleError(f"{where}: its entry has a sidecar correction but the bundle carries no sidecar-kind "
                          "config (rebuild the model folder)")
    return spec


def resolve(cfg: dict, shared: dict | None):
    """The ``Blend`` of a blend-kind config: its `blends:` entry (``cfg["entry"]``) resolved against the
    shared `blend:` section, as the blend stage resolves it."""
    if shared is None:
        raise BundleError(f"bundle '{cfg['name']}': kind blend needs the shared `blend:` section (weight, space, "
                          "taxonomy); the kernel notebook passes it (eos_fork.submission(..., blend=BLEND))")
    return resolve_blend(cfg["submission"], cfg["entry"], shared)


KINDS: dict[str, Callable[..., pd.DataFrame]] = {"predict": predict_kind, "chain": chain_kind, "blend": blend_kind,
                                                 "sidecar": sidecar_kind, "vit": vit_kind}


POSTPROCESSED = ("predict", "chain")  # the kinds whose submissions are post-processed (their knobs: ``with_knobs``)


def with_knobs(cfg: dict, knobs: dict | None, where: str | None = None) -> dict:
    """``cfg`` with each post-processing part's knobs (``POSTPROCESSED`` kinds, a blend's parts included)
    taken from ``knobs`` ({submission: post-processing knobs}: the kernel notebook's ``KNOBS``, which the
    bundle stage reads from each submission's manifest). The model folder carries no post-processing
    knobs, so a post-processing change rebuilds the small kernel notebooks, never the model folder.
    With ``knobs`` None a config must carry its own ``knobs``."""
    where = where or f"bundle '{cfg['name']}'"
    out = dict(cfg)
    made = cfg.get("submission", cfg["name"])
    if cfg["kind"] in POSTPROCESSED:
        if knobs is not None:
            if made not in knobs:
                raise BundleError(f"{where}: no post-processing knobs for submission '{made}' in KNOBS "
                                  f"(has {sorted(knobs)}); rebuild the kernel notebook (the bundle stage)")
            out["knobs"] = knobs[made]
        elif "knobs" not in cfg:
            raise BundleError(f"{where}: submission '{made}' is post-processed but no knobs were passed "
                              "(eos_fork.submission(..., knobs=KNOBS), KNOBS from the bundle's kernel notebook)")
    if cfg["kind"] == "blend":
        out["parts"] = {p: with_knobs(c, knobs, f"{where}, part '{p}'") for p, c in cfg["parts"].items()}
    return out


def run_bundle(root: str | Path, name: str, test_dir: str | Path, shared: dict | None = None,
               knobs: dict | None = None) -> pd.DataFrame:
    """The submission of bundle ``name`` of the model folder ``root`` for the files in ``test_dir``;
    ``shared``: the `blend:` section a blend bundle resolves its weights with; ``knobs``: {submission:
    post-processing knobs} of the parts that post-process (``with_knobs``; the kernel passes both)."""
    root = Path(root)
    manifest = json.loads((root / "manifest.json").read_text())
    if name not in manifest["bundles"]:
        raise BundleError(f"{root}/manifest.json: no bundle '{name}' (has {sorted(manifest['bundles'])})")
    cfg = manifest["bundles"][name]
    if cfg["kind"] not in KINDS:
        raise BundleError(f"bundle '{name}': kind '{cfg['kind']}' is not one of {sorted(KINDS)}")
    check_config(cfg, shared)
    cfg = with_knobs(cfg, knobs)
    if not test_files(Path(test_dir)):
        return save_run_submission(root / "files", cfg, Path(test_dir))
    sub = KINDS[cfg["kind"]](root / "files", cfg, Path(test_dir), shared=shared)
    if not np.isfinite(sub.iloc[:, 1:].to_numpy(dtype=float)).all():
        raise BundleError(f"bundle '{name}': non-finite probabilities")
    return sub
