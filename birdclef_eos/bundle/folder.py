"""The shared model folder a Kaggle dataset holds: every file once, named by its sha256.

Layout (what `build` writes; upload the folder as one Kaggle dataset):

- ``objects/<sha256>``: the bytes of every file any bundle needs (probed ONNX, backbone and block
  descriptions, head checkpoints and configs, species table, the labelled chunks the prior is fitted
  on, in real-data mode the sidecar's converted BirdNET ONNX and labels, the library code the kernel
  runs, vendored packages), each stored once, so fifteen bundles do
  not mean fifteen copies of the backbone;
- ``manifest.json``: ``files`` / ``code`` / ``vendor`` / ``wheels`` ({logical path: sha256}), ``bundles``
  ({name: its inference config, with the logical paths it reads}), ``vendor_python`` (the
  interpreter the vendored binaries were built for), ``entry_sha256`` (eos_fork.py's);
- ``eos_fork.py``: the stdlib-only entry a kernel or a fork imports (``birdclef_eos/bundle/kernel.py``).

eos_fork.py's ``materialise`` (stdlib only, run in the kernel) checks every object against its
sha256 and links it under its logical path in a work folder.
"""
from __future__ import annotations

import ast
import hashlib
import json
import shutil
import sys
from importlib import metadata
from pathlib import Path, PurePosixPath

from birdclef_eos.io.files import sha256_file


class FolderError(ValueError):
    pass


def project_imports(path: Path, package_root: Path) -> set[Path]:
    """The project modules a source file imports (``birdclef_eos.*``), as files under ``package_root``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if not name.startswith(package_root.name):
                continue
            rel = Path(*name.split("."))
            for cand in (package_root.parent / rel.with_suffix(".py"), package_root.parent / rel / "__init__.py"):
                if cand.is_file():
                    found.add(cand)
    return found


def code_closure(entry: Path, package_root: Path) -> list[Path]:
    """``entry`` and every project module it imports, transitively, plus the packages' __init__ files."""
    seen, todo = set(), [Path(entry)]
    while todo:
        f = todo.pop()
        if f in seen:
            continue
        seen.add(f)
        todo.extend(project_imports(f, package_root))
        for parent in f.parents:
            if parent == package_root.parent:
                break
            init = parent / "__init__.py"
            if init.is_file() and init not in seen:
                todo.append(init)
    return sorted(seen)


def vendor_files(distributions: list[str], exclude: list[str]) -> dict[str, Path]:
    """{path relative to site-packages: installed file} of each distribution, without caches,
    its metadata folder or paths containing any ``exclude`` part (e.g. a package's test data)."""
    out = {}
    for dist in distributions:
        try:
            files = metadata.distribution(dist).files or []
        except metadata.PackageNotFoundError as exc:
            raise FolderError(f"vendor: distribution '{dist}' is not installed here") from exc
        for f in files:
            rel = str(f)
            if (rel.startswith("..") or "__pycache__" in rel or ".dist-info/" in rel
                    or any(x in rel for x in exclude)):
                continue
            path = Path(f.locate())
            if path.is_file():
                out[rel] = path
    return dict(sorted(out.items()))


def build(out: Path, files: dict[str, Path], code: dict[str, Path], vendor: dict[str, Path], bundles: dict,
          entry_text: str, wheels: dict[str, Path] | None = None) -> dict:
    """Write the model folder into ``out`` (an empty folder); return its manifest. ``wheels``: {wheel
    file name: file} the kernel installs offline; ``entry_sha256`` pins ``eos_fork.py`` (the notebook
    checks it before running it)."""
    objects = out / "objects"
    objects.mkdir(parents=True, exist_ok=True)

    def store(table: dict[str, Path]) -> dict[str, str]:
        shas = {}
        for logical, path in sorted(table.items()):
            if not Path(path).is_file():
                raise FolderError(f"{path}: not found (wanted as {logical} in the model folder)")
            sha = sha256_file(path)
            if not (objects / sha).exists():
                shutil.copyfile(path, objects / sha)
            shas[logical] = sha
        return shas

    for part, table in (("files", files), ("code", code), ("vendor", vendor), ("wheels", wheels or {})):
        for logical in table:
            pure = PurePosixPath(logical)
            if (not logical or pure.is_absolute() or "\\" in logical
                    or any(p in ("", ".", "..") for p in logical.split("/"))):
                raise FolderError(f"{part} path {logical!r}: a logical path is relative and stays inside the folder")
    manifest = {"format": 1, "files": store(files), "code": store(code), "vendor": store(vendor),
                "wheels": store(wheels or {}), "entry_sha256": hashlib.sha256(entry_text.encode()).hexdigest(),
                "vendor_python": f"cpython-{sys.version_info.major}{sys.version_info.minor}-{sys.platform}",
                "bundles": bundles}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    (out / "eos_fork.py").write_text(entry_text)
    return manifest

