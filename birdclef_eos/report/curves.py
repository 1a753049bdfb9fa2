"""DVCLive training curves, one folder per fold (every stage that trains folds logs through it)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def dvclive_logger(curves_dir: Path):
    """Per fold: DVCLive curves (loss, val_macro_auc) under curves_dir/fold_<k>."""
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
            # DVCLive's own summary would sit among the curves that `plots:` reads; metrics.json has it
            (Path(curves_dir) / f"fold_{k}" / "metrics.json").unlink(missing_ok=True)
        return log, close
    return open_fold
