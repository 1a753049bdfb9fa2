"""Project hygiene: the code passes the linter as configured in pyproject.toml (ruff's defaults:
pyflakes and the pycodestyle errors; `ruff check --fix .` fixes most), and the lock file setup.sh
installs from agrees with the top-level pins of requirements.txt."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s\\;#]+)")


def pins(path: Path) -> dict[str, str]:
    """{normalised name: version} of each `name==version` line (a local tag such as +cpu dropped)."""
    out = {}
    for line in path.read_text().splitlines():
        m = PIN.match(line.strip())
        if m:
            out[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2).split("+")[0]
    return out


def test_ruff_check_is_clean():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, f"`ruff check .` found:\n{proc.stdout}{proc.stderr}"


def test_the_lock_file_holds_every_top_level_pin_at_its_version_with_a_hash():
    top, lock = pins(ROOT / "requirements.txt"), pins(ROOT / "requirements.lock")
    assert len(top) > 20
    wrong = {name: (version, lock.get(name)) for name, version in top.items() if lock.get(name) != version}
    assert not wrong, f"requirements.lock disagrees with requirements.txt (pin, lock): {wrong}; regenerate it (its header)"
    text = (ROOT / "requirements.lock").read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n\n", 1)[1].strip())
    unhashed = [e.split()[0] for e in entries if "--hash=sha256:" not in e]
    assert not unhashed, f"requirements.lock: no sha256 for {unhashed}"
    setup = (ROOT / "setup.sh").read_text()
    assert "--require-hashes" in setup and "requirements.lock" in setup
