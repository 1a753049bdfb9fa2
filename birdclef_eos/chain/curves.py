"""DVCLive training curves per fold, as the heads write them (stages/train.py keeps its own copy;
the two can be unified when that stage next changes)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def dvclive_logger(curves_dir: Path):
    """open_fold(k) -> (log(epoch, record), close()): loss and val_macro_auc under curves_dir/fold_<k>."""
    from dvclive import Live

    def open_fold(k: int):
        live = Live(str(Path(curves_dir) / f"fold_{k}"), save_dvc_exp=False, dvcyaml=False, report=None)

        def log(epoch: int, record: dict) -> None:
            live.log_metric("loss", record["loss"])
            if np.isfinite(record.get("val_macro_auc", float("nan"))):
                live.log_metric("val_macro_auc", record["val_macro_auc"])
            live.next_step()

        def close() -> None:
            live.end()
            (Path(curves_dir) / f"fold_{k}" / "metrics.json").unlink(missing_ok=True)
        return log, close
    return open_fold
