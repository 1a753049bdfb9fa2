"""A sandbox that runs a generated kernel as Kaggle runs it, on this machine.

Layout (a temporary folder ``<root>/kaggle`` stands for ``/kaggle``; the notebook reads it from
``EOS_KAGGLE_ROOT``): ``input/<model dataset>/`` (a copy of the model folder) and
``input/<competition>/`` (sample_submission.csv, test_soundscapes/) read-only, ``working/`` the
kernel's output folder and current directory, ``tmp/`` its TMPDIR and HOME (Kaggle's /tmp).

The kernel's code cells run as one script (``kernel.code_of``: Kaggle runs the cells in order; no
magics are used) with ``python`` and a ``sitecustomize`` that

- refuses every import of a top-level module that is neither the standard library, nor a
  distribution listed in kaggle/image.txt (Kaggle's CPU image), nor a file under the sandbox
  (the model folder's code and the wheels the kernel installed into working/): ModuleNotFoundError,
  as on Kaggle; every refusal is logged to ``tmp/refused_imports.txt``;
- refuses network: ``socket.connect``/``connect_ex`` on IP sockets, ``create_connection`` and
  ``getaddrinfo`` raise OSError;
- refuses Python-level writes outside working/ and tmp/ (``open`` for writing, ``os.open`` with a
  write flag, mkdir, symlink, unlink, rename, rmdir): the tests run as root, for whom chmod's
  read-only input would not stop a write (the input is chmod a-w as well).

CUDA is hidden (``CUDA_VISIBLE_DEVICES=""``). Limits: the packages are this venv's versions of the
image's names (numpy, pandas, torch here are not Kaggle's exact versions); C-level writes are not
intercepted. The guard is applied to pip too (the kernel's offline install runs under it).
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from birdclef_eos.bundle import kernel

REPO = Path(__file__).resolve().parents[2]
IMAGE = REPO / "kaggle" / "image.txt"

SITECUSTOMIZE = r'''
import builtins, io, os, re, socket, sys, sysconfig
from importlib.machinery import PathFinder

_ROOTS = [os.path.realpath(p) for p in os.environ["EOS_SANDBOX_ALLOWED"].split(os.pathsep)]
_WRITABLE = [os.path.realpath(p) for p in os.environ["EOS_SANDBOX_WRITABLE"].split(os.pathsep)] + ["/dev"]
_LOG = os.environ["EOS_SANDBOX_LOG"]
_STDLIB = {os.path.realpath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib")}


def _norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


_IMAGE = set()
with open(os.environ["EOS_SANDBOX_IMAGE"], encoding="utf-8") as _f:
    for _line in _f:
        _line = _line.split("#", 1)[0].strip()
        if _line:
            _IMAGE.add(_norm(_line.split("==")[0]))
_DISTS = None


def _inside(path, bases, follow=True):
    real = os.path.realpath(path) if follow else path
    return any(real == b or real.startswith(b + os.sep) for b in bases)


def _refuse(what):
    with io.open(_LOG, "a") as log:
        log.write(what + "\n")


class _ImageOnly:
    """Top-level imports: the standard library, kaggle/image.txt's distributions, the sandbox's files."""

    def find_spec(self, name, path=None, target=None):
        global _DISTS
        if "." in name or name in sys.builtin_module_names:
            return None
        spec = PathFinder.find_spec(name, path)
        if spec is None:
            return None
        origin = spec.origin if spec.origin not in (None, "namespace") else next(iter(spec.submodule_search_locations or []), None)
        if origin is None:
            return None
        real = os.path.realpath(origin)
        parts = real.split(os.sep)
        if _inside(real, _ROOTS):
            return None
        if any(_inside(real, [s]) for s in _STDLIB) and "site-packages" not in parts and "dist-packages" not in parts:
            return None
        if _DISTS is None:
            from importlib.metadata import packages_distributions
            _DISTS = packages_distributions()
        dists = _DISTS.get(name, [])
        if any(_norm(d) in _IMAGE for d in dists):
            return None
        _refuse(f"{name} {dists} {real}")
        raise ModuleNotFoundError(f"sandbox: No module named {name!r} (distribution {dists or '?'} is not in "
                                  "Kaggle's image, kaggle/image.txt, nor carried by the model folder)", name=name)


sys.meta_path.insert(0, _ImageOnly())


def _no_network(*args, **kwargs):
    raise OSError("sandbox: no network (Kaggle kernels run with internet off)")


_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def _guarded(method):
    def call(self, *args, **kwargs):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _no_network()
        return method(self, *args, **kwargs)
    return call


socket.socket.connect = _guarded(_connect)
socket.socket.connect_ex = _guarded(_connect_ex)
socket.create_connection = _no_network
socket.getaddrinfo = _no_network


def _writable(path, what, follow=True):
    if isinstance(path, int):
        return
    path = os.path.abspath(os.fsdecode(path))
    if not follow:  # the entry itself (a link is removed or made, not its target)
        path = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    if not _inside(path, _WRITABLE, follow):
        _refuse(f"write {what} {path}")
        raise PermissionError(13, f"sandbox: read-only file system ({what})", os.fsdecode(path))


_open = io.open


def _guarded_open(file, mode="r", *args, **kwargs):
    if any(c in mode for c in "wax+"):
        _writable(file, "open")
    return _open(file, mode, *args, **kwargs)


builtins.open = io.open = _guarded_open
_os_open = os.open


def _guarded_os_open(path, flags, *args, **kwargs):
    if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND):
        _writable(path, "os.open")
    return _os_open(path, flags, *args, **kwargs)


os.open = _guarded_os_open
for _name in ("mkdir", "rmdir", "unlink", "remove"):
    def _make(fn, name):
        def call(path, *args, **kwargs):
            _writable(path, name, follow=name == "mkdir")
            return fn(path, *args, **kwargs)
        return call
    setattr(os, _name, _make(getattr(os, _name), _name))
for _name in ("symlink", "link", "rename", "replace"):
    def _make2(fn, name):
        def call(src, dst, *args, **kwargs):
            _writable(dst, name, follow=False)
            if name in ("rename", "replace"):
                _writable(src, name, follow=False)
            return fn(src, dst, *args, **kwargs)
        return call
    setattr(os, _name, _make2(getattr(os, _name), _name))
'''


@dataclass
class KernelRun:
    returncode: int
    stdout: str
    stderr: str
    working: Path
    refused: list[str]

    @property
    def submission(self) -> Path:
        return self.working / "submission.csv"


class KaggleSandbox:
    """One /kaggle-shaped root for one model folder and competition (see the module's docstring)."""

    def __init__(self, base: Path, model_folder: Path, dataset: str, competition: str,
                 sample_submission: Path | None = None):
        self.base = Path(base)
        self.kaggle = self.base / "kaggle"
        self.model_dir = self.kaggle / "input" / dataset
        self.comp = self.kaggle / "input" / competition
        self.working = self.kaggle / "working"
        self.tmp = self.base / "tmp"
        self.guard = self.base / "guard"
        shutil.copytree(model_folder, self.model_dir)
        (self.comp / "test_soundscapes").mkdir(parents=True)
        if sample_submission is not None:
            shutil.copyfile(sample_submission, self.comp / "sample_submission.csv")
        self.guard.mkdir()
        (self.guard / "sitecustomize.py").write_text(SITECUSTOMIZE)
        self.read_only(True)

    def read_only(self, on: bool) -> None:
        for path in [self.kaggle / "input", *(self.kaggle / "input").rglob("*")]:
            mode = path.stat().st_mode
            path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) if on else mode | stat.S_IWUSR)

    def set_test_files(self, files: list[Path]) -> None:
        """Kaggle's scoring run: the hidden files appear in test_soundscapes/ (empty list: the save run)."""
        self.read_only(False)
        test = self.comp / "test_soundscapes"
        for old in test.iterdir():
            old.unlink()
        for f in files:
            shutil.copy2(f, test / Path(f).name)
        self.read_only(True)

    def run(self, notebook: Path, timeout: int = 600) -> KernelRun:
        """Run the notebook's code cells in a fresh working/ and tmp/; its exit status, output and refusals."""
        import json

        for d in (self.working, self.tmp):
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
        script = self.tmp / "kernel.py"
        script.write_text(kernel.code_of(json.loads(Path(notebook).read_text())))
        log = self.tmp / "refused_imports.txt"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               "PYTHONPATH": str(self.guard), "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
               "EOS_KAGGLE_ROOT": str(self.kaggle), "CUDA_VISIBLE_DEVICES": "",
               "HOME": str(self.tmp), "TMPDIR": str(self.tmp),
               "EOS_SANDBOX_IMAGE": str(IMAGE), "EOS_SANDBOX_LOG": str(log),
               "EOS_SANDBOX_ALLOWED": os.pathsep.join([str(self.kaggle), str(self.tmp)]),
               "EOS_SANDBOX_WRITABLE": os.pathsep.join([str(self.working), str(self.tmp)])}
        proc = subprocess.run([sys.executable, str(script)], cwd=self.working, env=env, capture_output=True,
                              text=True, timeout=timeout)
        refused = log.read_text().splitlines() if log.exists() else []
        return KernelRun(proc.returncode, proc.stdout, proc.stderr, self.working, refused)
