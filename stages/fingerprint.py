"""Stage `fingerprint`: what the dataset stage reads from outside the repository, in a few bytes.

In real-data mode (`dataset.source: birdclef`) the competition folder `dataset.root` lies outside
the repository, where DVC hashes nothing. This stage runs on every `dvc repro` (`always_changed`,
well under a second, no notebook) and writes data/source_fingerprint.json: the folder's file
count, bytes and, per top-level entry, a sha256 over the sorted (path, size, modification time)
listing (`folder_fingerprint`). The dataset stage depends on that file, whose bytes change only
when the folder does, so `dataset` (and what follows it) re-runs exactly then. In synthetic mode
the file is `{"source": "synthetic"}`.

Being always changed and first in `dvc repro`, this stage is also where a user's input path that lies
on an output is refused (`stages.params.stage_params` -> `stages.schema.check_pipeline`), before the
`dataset` stage's outputs (or any later stage's) are deleted by DVC; its second output,
data/inputs_checked.json (constant bytes), puts the `checkpoint` stage downstream of it too. `dvc exp run` is the exception:
DVC force-checks-out every output before it runs any stage (docs/reliability.md).
"""
from __future__ import annotations

from pathlib import Path

from birdclef_eos.io.files import folder_fingerprint, write_json
from stages.paths import INPUTS_CHECKED, SOURCE_FINGERPRINT

PARAMS = ("dataset.source", "dataset.root")
NOTEBOOK = False  # stages/notebook.py calls run() directly: this stage runs on every repro


def fingerprint(p: dict) -> dict:
    if p["source"] != "birdclef":
        return {"source": p["source"]}
    root = Path(p["root"])
    if not root.is_dir():
        raise FileNotFoundError(f"params.yaml: dataset.root '{root}' is not a folder "
                                f"(dataset.source: birdclef needs the competition folder there)")
    return {"source": "birdclef", "root": root.as_posix(), **folder_fingerprint(root)}


# what data/inputs_checked.json says (constant: a stage that depends on it never re-runs because of it)
CHECKED = {"checked": "no input path in params.yaml lies on or around an output in dvc.yaml (stages/schema.py)"}


def run(params: dict, key: str | None = None) -> Path:
    """``params`` come from stages.params.stage_params, which has refused input paths on outputs."""
    write_json(SOURCE_FINGERPRINT, fingerprint(params["dataset"]))
    write_json(INPUTS_CHECKED, CHECKED)
    return SOURCE_FINGERPRINT
