"""Run DVC in a throwaway copy of this repository (shared by the pipeline smoke tests)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
SKIP = (".venv", ".venv-convert", "data/", "models/", "reports/", "metrics/", "predictions/",
        "submissions/", "build/", "figures/", "paper/tables/", "dvc.lock", ".dvc/cache", ".dvc/tmp",
        ".dvc/config.local")


def copy_repo(dest: Path) -> None:
    """Tracked files plus untracked, not-ignored ones (the working tree as it is)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if rel.startswith(SKIP) or not src.is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)


def sh(args: list[str], cwd: Path, timeout: int = 900) -> str:
    env = dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def deep_update(base: dict, override: dict) -> dict:
    """``override`` merged into ``base``; a key set to null in ``override`` is removed."""
    for key, value in override.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def make_repo(dest: Path, overrides: dict) -> Path:
    """A git-initialised copy of the repo with ``overrides`` merged into params.yaml."""
    copy_repo(dest)
    # the conversion environment (BirdNET's TFLite -> ONNX), which a stage finds by a path relative to
    # the repository: without it a fresh machine's first BirdNET conversion would fail in the copy
    if (REPO / ".venv-convert").exists() and not (dest / ".venv-convert").exists():
        (dest / ".venv-convert").symlink_to(REPO / ".venv-convert")
    params = yaml.safe_load((dest / "params.yaml").read_text())
    (dest / "params.yaml").write_text(yaml.safe_dump(deep_update(params, overrides), sort_keys=False))
    sh(["git", "init", "-q"], dest)
    sh(["git", "config", "user.email", "test@localhost"], dest)
    sh(["git", "config", "user.name", "test"], dest)
    sh(["git", "add", "-A"], dest)
    sh(["git", "commit", "-qm", "copy"], dest)  # DVCLive and `dvc exp run` need a commit
    return dest
