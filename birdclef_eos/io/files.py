"""Files: atomic writes (outputs appear complete or not at all), the one sha256 helper, JSON reading.

Every writer builds its file or folder under a temporary sibling name and renames it into
place, so a stage killed halfway leaves nothing that looks finished. A temporary's name carries
the id of the process writing it (``.<stem>.<pid>-<random>.tmp<suffix>``, ``.<name>.<pid>-<random>.tmp``
for folders); before a writer creates one, it sweeps the leftovers of the same target whose process
is gone (``sweep_stale``), so a killed stage leaves no litter after the next run.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


LEGACY_MAX_AGE_S = 24 * 3600  # a temporary named before PIDs were in the name is stale after a day


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (a reused id counts as alive: safe)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    return True


def _temp_patterns(path: Path, folder: bool) -> tuple[re.Pattern, re.Pattern]:
    """(current names with a PID, legacy names from mkstemp/mkdtemp without one) of ``path``'s temporaries."""
    if folder:
        head, tail = re.escape(f".{path.name}."), re.escape(".tmp")
    else:
        head, tail = re.escape(f".{path.stem}."), re.escape(f".tmp{path.suffix}")
    return (re.compile(head + r"(?P<pid>[0-9]+)-[A-Za-z0-9_]+" + tail + r"\Z"),
            re.compile(head + r"[a-z0-9_]{8}" + tail + r"\Z"))


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def sweep_stale(path: str | os.PathLike, folder: bool = False) -> list[Path]:
    """Remove the leftover temporaries of ``path`` (a file, or a folder when ``folder``) that no
    live process is writing: those whose PID (in the name) is gone, legacy ones without a PID that
    are older than a day, and a folder's ``.<name>.old``. Returns what it removed."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    current, legacy = _temp_patterns(path, folder)
    removed = []
    for p in path.parent.iterdir():
        name = p.name
        if not name.startswith("."):
            continue
        if (m := current.match(name)) is not None:
            stale = not pid_alive(int(m["pid"]))
        elif legacy.match(name) is not None:
            try:
                stale = time.time() - p.lstat().st_mtime > LEGACY_MAX_AGE_S
            except FileNotFoundError:
                continue
        else:
            stale = folder and name == f".{path.name}.old"
        if stale:
            _remove(p)
            removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path next to ``path``; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    # keep the real suffix last: numpy, papermill and matplotlib look at it
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{os.getpid()}-", suffix=f".tmp{path.suffix}",
                               dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``path``; swap it in for ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path, folder=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes 0700
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj) -> None:
    """Write JSON with sorted keys and a trailing newline (byte-stable for the same object)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def sha256_file(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(paths) -> dict[str, str]:
    """{posix path: sha256} of every file under the given files or folders, sorted by path."""
    out = {}
    for p in map(Path, paths):
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for f in files:
            out[f.as_posix()] = sha256_file(f)
    return dict(sorted(out.items()))


def folder_fingerprint(root: str | os.PathLike) -> dict:
    """A small, deterministic digest of what a folder holds, without reading its files: per
    top-level entry, the number of files, their bytes and a sha256 over the sorted
    ``path<TAB>size<TAB>mtime_ns`` lines of the files under it (symlinks followed); the same over
    the whole folder. It changes when a file is added, removed, resized or touched, and only then."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    entries: dict[str, dict] = {}
    whole = hashlib.sha256()
    total_files = total_bytes = 0
    for top in sorted(os.listdir(root)):
        digest, files, size = hashlib.sha256(), 0, 0
        if (root / top).is_dir():
            listing = []
            for folder, dirs, names in os.walk(root / top, followlinks=True):
                dirs.sort()
                listing.extend(Path(folder) / n for n in names)
            listing.sort()
        else:
            listing = [root / top]
        for f in listing:
            st = f.stat()
            line = f"{f.relative_to(root).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode()
            digest.update(line)
            whole.update(line)
            files, size = files + 1, size + st.st_size
        entries[top] = {"files": files, "bytes": size, "sha256": digest.hexdigest()}
        total_files, total_bytes = total_files + files, total_bytes + size
    return {"files": total_files, "bytes": total_bytes, "sha256": whole.hexdigest(), "entries": entries}


class FileFormatError(ValueError):
    """A file that exists but cannot be parsed; the message names the file."""


def read_json(path: str | os.PathLike, what: str = "") -> object:
    """Parse a JSON file; a missing or corrupt file raises an error naming it (and ``what`` made it)."""
    path = Path(path)
    hint = f" ({what})" if what else ""
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found{hint}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise FileFormatError(f"{path}: not valid JSON{hint}: {exc}") from exc


def read_yaml(path: str | os.PathLike, error: type[Exception] = FileFormatError):
    """A YAML file read as DVC reads it (YAML 1.2, so `3e-4` is a float; duplicate keys are errors).
    A syntax error raises ``error`` naming the file and line; bytes that are not UTF-8, the file and
    the byte offset."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise error(f"{path}: not UTF-8 text: byte {raw[e.start]:#04x} at byte offset {e.start} (line {line}); "
                    "save the file as UTF-8") from None
    try:
        return YAML(typ="safe", pure=False).load(text)  # libyaml's scanner (ruamel.yaml.clib), ruamel's YAML 1.2 resolver: 8x faster, same values
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise error(f"{path}{where}: YAML syntax error: {e.problem or e.context}") from None
    except YAMLError as e:
        raise error(f"{path}: YAML syntax error: {e}") from None
