"""DVCLive training curves, one folder per fold (the train and vit stages log through it)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def dvclive_logger(curves_dir: Path):
    """Per fold: DVCLive curves (loss, val_macro_auc) under curves_dir/fold_<k>."""
    from dvclive import Live

    def open_fold(k: int):
        live = Live(str(curves_dir / f"fold_{k}"), save_dvc_exp=False, dvcyaml=False, report=None)

        def log(epoch: int, record: dict) -> None:
            live.log_metric("loss", record["loss"])
            if np.isfinite(record["val_macro_auc"]):
                live.log_metric("val_macro_auc", record["val_macro_auc"])
            live.next_step()

        def close() -> None:
            live.end()
            # DVCLive's own summary would sit among the curves that `plots:` reads; metrics.json has it
            (curves_dir / f"fold_{k}" / "metrics.json").unlink(missing_ok=True)
        return log, close
    return open_fold
