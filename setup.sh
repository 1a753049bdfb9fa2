#!/usr/bin/env bash
# One set-up command: the Python environment (.venv/), the conversion environment
# (.venv-convert/, used only by the checkpoint stage), and DVC configured for offline use.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# the whole environment from the lock file (every distribution pinned with its sha256; the
# top-level pins are requirements.txt, and tests/test_project.py checks the two agree)
.venv/bin/pip install --disable-pip-version-check -q --require-hashes --no-deps -r requirements.lock

[ -x .venv-convert/bin/python ] || "$PYTHON" -m venv .venv-convert
.venv-convert/bin/pip install --disable-pip-version-check -q -r requirements-convert.txt

# The wheels a Kaggle kernel carries for what Kaggle's image lacks (kaggle/wheels.txt: onnxruntime for
# Kaggle's Python and this one), fetched here once, sha256-checked, wheels only: no stage reaches the
# registry for them (the model_folder stage reads them from the cache).
.venv/bin/python -m birdclef_eos.bundle.wheels kaggle/wheels.txt "${BIRDCLEF_EOS_CACHE:-$HOME/.cache/birdclef-eos}" >/dev/null

# DVC: analytics and update checks are off in .dvc/config; a default local remote so that
# `dvc push` works out of the box (per machine, so it goes in the untracked config.local).
STORAGE=${DVC_STORAGE:-$HOME/.cache/birdclef-eos/dvc-storage}
mkdir -p "$STORAGE"
.venv/bin/dvc remote add --local --force -d storage "$STORAGE" >/dev/null
# `dvc exp run` needs a git identity; set a local one only if none is configured.
git config user.email >/dev/null || git config user.email "researcher@localhost"
git config user.name >/dev/null || git config user.name "researcher"
echo "setup done: activate with 'source .venv/bin/activate', then 'dvc repro'"
