"""The wheels a model folder carries for what Kaggle's image lacks (kaggle/wheels.txt), fetched once.

Each line of the wheels file: ``<name>==<version> <python tag> <platform> <sha256>``. ``fetch`` downloads
a wheel with ``pip download --only-binary :all: --no-deps`` for that Python and platform into a user
cache (no build code runs: wheels only) and refuses it unless its sha256 is the pinned one; a cached
wheel is reused when its sha256 still matches. The kernel installs them offline (eos_fork.py
``install_wheels``: ``pip install --no-index --no-deps --target``).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from birdclef_eos.io.files import sha256_file

LINE = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)==(?P<version>[A-Za-z0-9_.+!-]+)\s+(?P<python>cp3\d+)\s+"
                  r"(?P<platform>[a-z0-9_]+)\s+(?P<sha256>[0-9a-f]{64})$")


class WheelError(ValueError):
    pass


@dataclass(frozen=True)
class Wheel:
    """One pinned wheel: ``name==version`` built for ``python`` (cp312) on ``platform``."""
    name: str
    version: str
    python: str
    platform: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


def read(path: Path) -> list[Wheel]:
    """The pinned wheels of ``path``; a malformed line is refused naming its number."""
    out = []
    for no, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = LINE.match(" ".join(line.split()))
        if not m:
            raise WheelError(f"{path}:{no}: {raw.strip()!r} is not '<name>==<version> <cp3XY> <platform> <sha256>'")
        out.append(Wheel(**m.groupdict()))
    if len({(w.name, w.python) for w in out}) != len(out):
        raise WheelError(f"{path}: a package is pinned twice for one Python")
    return out


def fetch(wheel: Wheel, cache: Path, download: bool = True) -> Path:
    """The wheel's file in ``cache/kaggle-wheels``: reused when its sha256 matches, else downloaded
    (wheels only, no dependencies) and refused unless its sha256 is the pinned one. With
    ``download=False`` (the pipeline's stages: set-up is the only step that reaches the registry) a
    wheel not in the cache is an error that names the set-up command."""
    folder = Path(cache) / "kaggle-wheels"
    for found in sorted(folder.glob(f"{wheel.name}-{wheel.version}-{wheel.python}-*.whl")) if folder.exists() else []:
        if sha256_file(found) == wheel.sha256:
            return found
    if not download:
        raise WheelError(f"{wheel.requirement} ({wheel.python}, sha256 {wheel.sha256[:12]}...) is not in {folder}: "
                         f"run `bash setup.sh` (or `.venv/bin/python -m birdclef_eos.bundle.wheels kaggle/wheels.txt "
                         f"{cache}`), which fetches the pinned wheels once")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--only-binary", ":all:", "--no-deps",
               "--disable-pip-version-check", "-q", wheel.requirement, "--python-version", wheel.python[2:],
               "--implementation", "cp", "--abi", wheel.python, "--platform", wheel.platform, "-d", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True)
        got = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or len(got) != 1:
            raise WheelError(f"`{' '.join(cmd)}` failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
        sha = sha256_file(got[0])
        if sha != wheel.sha256:
            raise WheelError(f"{got[0].name}: sha256 {sha}, not the pinned {wheel.sha256} (kaggle/wheels.txt)")
        os.replace(got[0], folder / got[0].name)
        return folder / got[0].name


def main(argv: list[str] | None = None) -> int:
    """``python -m birdclef_eos.bundle.wheels WHEELS_FILE CACHE``: fetch every pinned wheel (set-up)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m birdclef_eos.bundle.wheels WHEELS_FILE CACHE", file=sys.stderr)
        return 2
    for pin in read(Path(args[0])):
        print(f"{pin.requirement} {pin.python}: {fetch(pin, Path(os.path.expanduser(args[1])))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
