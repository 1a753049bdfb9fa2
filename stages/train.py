"""Stage `train@<variant>`: one sequence head (paper section 4), trained in 5 folds on the
extracted block features.

Reads data/features (the selected blocks), data/index/species.csv (label order) and, for the
probe-versus-weights table, metrics/probe/probe.json. Writes models/heads/<variant>/ (fold
checkpoints + config.json), predictions/oof/<variant>/oof.csv (one row per labelled soundscape
chunk), metrics/train/<variant>/ (metrics.json + DVCLive curves per fold) and, when the variant
names a `table`, the probe ranking next to the learned block weights.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from tqdm import tqdm

from birdclef_eos.data import features
from birdclef_eos.data import folds
from birdclef_eos.heads import models as heads
from birdclef_eos.heads import training
from birdclef_eos.io.files import atomic_dir, atomic_path, write_json, write_text
from stages.paths import FEATURES, HEADS, INDEX, OOF, PROBE_METRICS, TRAIN_METRICS

PARAMS = ("train",)
PAPER_N_PARAMS = 430_000          # the paper's "about 430k parameters"
PAPER_CHANNELS = [232, 384, 384]  # blocks 21, 24, 25 of Perch v2
PAPER_CLASSES = 234
REPORTED = Path("paper/reported.yaml")


class TrainStageError(ValueError):
    pass


def variant_params(train: dict, key: str | None) -> dict:
    variants = train.get("variants", {})
    if key not in variants:
        raise TrainStageError(f"params.yaml train.variants has no entry '{key}'; known: {sorted(variants)}")
    return variants[key]


def model_config(train: dict, variant: dict, channels: list[int], n_classes: int) -> dict:
    m = train["model"]
    return {"type": variant["head"], "channels": channels, "n_classes": n_classes, "d": m["d"],
            "heads": m["heads"], "ffn": m["ffn"], "dropout": m["dropout"]}


def train_config(train: dict) -> training.TrainConfig:
    o = train["optim"]
    return training.TrainConfig(epochs=o["epochs"], patience=o["patience"], min_delta=o["min_delta"],
                                batch_size=o["batch_size"],
                                lr=o["lr"], weight_decay=o["weight_decay"], mixup_alpha=o["mixup_alpha"],
                                samples_per_epoch=o.get("samples_per_epoch"),
                                mix_lr_scale=o["mix_lr_scale"])


def training_rows(windows: pd.DataFrame) -> pd.DataFrame:
    """Focal windows and labelled soundscape chunks at shift 0 (shifted copies are for TTA)."""
    focal = windows["source"] == "focal"
    labelled = ((windows["source"] == "soundscape") & (windows["split"] == "labelled")
                & np.isclose(windows["shift_s"].astype(float), 0.0))
    rows = windows[focal | labelled]
    if not focal.any():
        raise TrainStageError(f"{FEATURES}/windows.csv: no focal rows to train on")
    return rows


def load_tokens(arrays: dict, names: list[str], index: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(np.asarray(arrays[n])[index], dtype=np.float32))
            for n in names]


def pick(tokens: list[torch.Tensor], mask: np.ndarray) -> list[torch.Tensor]:
    idx = torch.from_numpy(np.flatnonzero(mask))
    return [t[idx] for t in tokens]


def validation_rows(is_sc: np.ndarray, fold_of: np.ndarray, k: int, y: np.ndarray) -> tuple[np.ndarray, str]:
    """The fold's labelled soundscape chunks when their macro-AUC is defined, else its focal rows."""
    sc = is_sc & (fold_of == k)
    pos = y[sc].sum(axis=0) > 0.5
    if sc.any() and (pos & (pos < sc.sum())).any():
        return sc, "soundscape"
    return ~is_sc & (fold_of == k), "focal"


def make_logger(live):
    def log(epoch: int, record: dict) -> None:
        live.log_metric("loss", record["loss"])
        if np.isfinite(record["val_macro_auc"]):
            live.log_metric("val_macro_auc", record["val_macro_auc"])
        live.next_step()
    return log


def train_folds(train: dict, variant: dict, key: str, rows: pd.DataFrame, tokens, y: np.ndarray,
                fold_of: np.ndarray, mconfig: dict, curves_dir: Path) -> dict:
    from dvclive import Live

    is_sc = (rows["source"] == "soundscape").to_numpy()
    tconfig = train_config(train)
    oof = np.zeros_like(y)
    states, fold_records, weights, attention = [], [], [], []
    for k in tqdm(range(train["n_folds"]), desc=f"train@{key} folds"):
        torch.manual_seed(train["seed"] * 1000 + k)
        model = heads.build_head(mconfig)
        tr = fold_of != k
        if variant["soundscape_fraction"] == 0:
            tr &= ~is_sc
        val, val_source = validation_rows(is_sc, fold_of, k, y)
        live = Live(str(curves_dir / f"fold_{k}"), save_dvc_exp=False, dvcyaml=False, report=None)
        best, history = training.train_fold(
            model, pick(tokens, tr), torch.from_numpy(y[tr]),
            training.source_weights(is_sc[tr], variant["soundscape_fraction"]),
            pick(tokens, val), y[val], tconfig, seed=train["seed"] * 1000 + k,
            log=make_logger(live), desc=f"fold {k}")
        live.end()
        # DVCLive's own summary would sit among the curves that `plots:` reads; metrics.json has it
        (curves_dir / f"fold_{k}" / "metrics.json").unlink(missing_ok=True)
        held = fold_of == k
        oof[held] = torch.sigmoid(training.predict_logits(best, pick(tokens, held))).numpy()
        best_epoch = history[-1]["best_epoch"]
        fold_records.append({"fold": k, "val_source": val_source, "epochs_run": len(history),
                             "best_epoch": best_epoch,
                             "val_macro_auc": round_or_none(history[best_epoch]["val_macro_auc"]),
                             "n_train": int(tr.sum()), "n_val": int(val.sum())})
        if isinstance(best, heads.ScalarMix):
            weights.append(best.block_weights().detach().tolist())
        else:
            attention.append(best.cls_attention(pick(tokens, held)).tolist())
        states.append(best.state_dict())
    return {"oof": oof, "states": states, "folds": fold_records, "weights": weights, "attention": attention}


def round_or_none(x: float, digits: int = 6):
    return round(float(x), digits) if np.isfinite(x) else None


def focal_top1(rows: pd.DataFrame, oof: np.ndarray, labels: list[str]) -> float:
    focal = (rows["source"] == "focal").to_numpy()
    truth = rows.loc[focal, "primary_label"].map({l: i for i, l in enumerate(labels)}).to_numpy()
    return float((oof[focal].argmax(axis=1) == truth).mean())


def weight_summary(blocks: list[int], per_fold: list[list[float]]) -> dict:
    per_fold = [[round(w, 6) for w in fold] for fold in per_fold]
    return {"blocks": blocks, "per_fold": per_fold,
            "mean": [round(float(w), 6) for w in np.mean(per_fold, axis=0)]}


def read_probe(path: Path, blocks: list[int]) -> dict[int, dict]:
    """Accuracy and rank (among all probed blocks) of each selected block."""
    if not path.exists():
        raise TrainStageError(f"{path}: missing; the probe-versus-weights table needs the probe stage")
    scores = json.loads(path.read_text()).get("blocks", {})
    out = {}
    for b in blocks:
        name = f"block_{b:02d}"
        if name not in scores or "accuracy" not in scores[name]:
            raise TrainStageError(f"{path}: no accuracy for {name} (the features hold blocks {blocks})")
        out[b] = {"accuracy": float(scores[name]["accuracy"]), "rank": scores[name].get("rank")}
    return out


def agreement_sentence(rho: float, probe_order: list[int], weight_order: list[int]) -> str:
    if probe_order == weight_order:
        return (f"They agree: the learned weights order the blocks exactly as the probe does "
                f"({' > '.join(map(str, probe_order))}; Spearman rho = {rho:.2f}).")
    if probe_order[0] == weight_order[0]:
        return (f"They agree only on the top block ({probe_order[0]}): probe order "
                f"{' > '.join(map(str, probe_order))}, weight order {' > '.join(map(str, weight_order))} "
                f"(Spearman rho = {rho:.2f}).")
    return (f"They do not agree: probe order {' > '.join(map(str, probe_order))}, weight order "
            f"{' > '.join(map(str, weight_order))} (Spearman rho = {rho:.2f}).")


def probe_vs_weights(probe: dict[int, dict], blocks: list[int], mean_weights: list[float],
                     weight_name: str, reported: dict | None) -> tuple[str, float]:
    acc = [probe[b]["accuracy"] for b in blocks]
    rho = float(spearmanr(acc, mean_weights).statistic) if len(blocks) > 1 else float("nan")
    probe_order = [b for _, b in sorted(zip(acc, blocks), key=lambda t: (-t[0], t[1]))]
    weight_order = [b for _, b in sorted(zip(mean_weights, blocks), key=lambda t: (-t[0], t[1]))]
    lines = [f"Probe ranking of the selected blocks next to the learned {weight_name} "
             f"(5-fold mean), this run.", "",
             f"| Block | Probe accuracy | Probe rank (all blocks) | Learned {weight_name} |",
             "|---|---|---|---|"]
    for b, a, w in zip(blocks, acc, mean_weights):
        lines.append(f"| {b} | {a:.3f} | {probe[b]['rank']} | {w:.3f} |")
    lines += ["", agreement_sentence(rho, probe_order, weight_order)]
    if reported:
        rb = [int(b) for b in reported["blocks"]]
        rp = [float(reported["probe"][b]) for b in rb]
        rw = [float(reported["weights"][b]) for b in rb]
        rrho = float(spearmanr(rp, rw).statistic)
        lines += ["", "The paper (Perch v2, section 3.3), for comparison:", "",
                  "| Block | Probe accuracy (reported) | Learned scalar-mix weight (reported) |",
                  "|---|---|---|"]
        lines += [f"| {b} | {p:.3f} | {w:.3f} |" for b, p, w in zip(rb, rp, rw)]
        lines += ["", f"Reported Spearman rho = {rrho:.2f}."]
    return "\n".join(lines) + "\n", rho


def reported_weights() -> dict | None:
    import yaml
    if not REPORTED.exists():
        return None
    return (yaml.safe_load(REPORTED.read_text()) or {}).get("scalar_mix_weights")


def paper_config_params(train: dict, head: str) -> int:
    m = train["model"]
    model = heads.build_head({"type": head, "channels": PAPER_CHANNELS, "n_classes": PAPER_CLASSES,
                              "d": m["d"], "heads": m["heads"], "ffn": m["ffn"], "dropout": m["dropout"]})
    return heads.count_parameters(model)


def run(params: dict, key: str | None = None) -> dict:
    train = params["train"]
    variant = variant_params(train, key)
    started = time.perf_counter()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(train["threads"])

    windows, _, meta = features.load(FEATURES, names=[])
    names = features.block_names(meta)
    _, arrays, _ = features.load(FEATURES, names=names)
    labels = pd.read_csv(INDEX / "species.csv").sort_values("label_idx")["primary_label"].astype(str).tolist()
    rows = training_rows(windows)
    y = training.targets_matrix(rows, labels, train["secondary_weight"])
    fold_of = folds.assign_folds(rows, train["n_folds"], train["fold_salt"])
    tokens = load_tokens(arrays, names, rows.index.to_numpy())
    channels = [int(t.shape[1]) for t in tokens]
    mconfig = model_config(train, variant, channels, len(labels))

    with atomic_dir(TRAIN_METRICS / key) as metrics_dir:
        result = train_folds(train, variant, key, rows, tokens, y, fold_of, mconfig, metrics_dir / "curves")
        oof = result["oof"]
        is_sc = (rows["source"] == "soundscape").to_numpy()
        n_params = heads.count_parameters(heads.build_head(mconfig))
        paper_count = paper_config_params(train, variant["head"])
        metrics = {
            "variant": key, "head": variant["head"], "blocks": meta["blocks"], "channels": channels,
            "oof_macro_auc": round_or_none(training.auc_or_nan(y[is_sc], oof[is_sc])),
            "focal_top1": round(focal_top1(rows, oof, labels), 6),
            "n_params": n_params, "n_params_paper_reported": PAPER_N_PARAMS,
            "n_params_minus_paper": n_params - PAPER_N_PARAMS,
            "n_params_paper_config": paper_count,
            "n_params_paper_config_minus_paper": paper_count - PAPER_N_PARAMS,
            "n_labelled_chunks": int(is_sc.sum()), "n_focal_windows": int((~is_sc).sum()),
            "folds": result["folds"],
        }
        if result["weights"]:
            metrics["block_weights"] = weight_summary(meta["blocks"], result["weights"])
        if result["attention"]:
            metrics["cls_attention"] = weight_summary(meta["blocks"], result["attention"])
        write_json(metrics_dir / "metrics.json", metrics)

    with atomic_dir(HEADS / key) as model_dir:
        for k, state in enumerate(result["states"]):
            torch.save(state, model_dir / f"fold_{k}.pt")
        write_json(model_dir / "config.json", {"variant": key, "model": mconfig, "blocks": meta["blocks"],
                                               "labels": labels, "n_folds": train["n_folds"]})

    sc_rows = rows[is_sc]
    oof_frame = pd.concat([sc_rows[["row_id"]].reset_index(drop=True),
                           pd.DataFrame(oof[is_sc], columns=labels)], axis=1)
    with atomic_dir(OOF / key) as oof_dir:
        oof_frame.to_csv(oof_dir / "oof.csv", index=False, float_format="%.6g")

    table = None
    if variant.get("table"):
        weights = metrics.get("block_weights") or metrics["cls_attention"]
        weight_name = "scalar-mix weight" if "block_weights" in metrics else "CLS attention weight"
        probe = read_probe(PROBE_METRICS / "probe.json", meta["blocks"])
        table, rho = probe_vs_weights(probe, meta["blocks"], weights["mean"], weight_name,
                                      reported_weights() if variant["head"] == "scalarmix" else None)
        if variant["head"] == "residual":
            table += ("\nThe last token of the residual head is h_last - h_previous, so its weight "
                      "belongs to that difference, not to the block itself.\n")
        write_text(variant["table"], table)
    return {"metrics": metrics, "table": table, "seconds": time.perf_counter() - started,
            "curves": str(TRAIN_METRICS / key / "curves")}
