"""What one `dvc exp run -S <knob>=<value>` re-runs and how long it takes, against its limit (a share
of the full default run). Shared by benchmarks/blend_experiment.py and
benchmarks/postprocess_experiment.py.

Measured in a throwaway clone (git clone of HEAD, the repository's own DVC cache, `dvc checkout`), so
the repository's own workspace and experiments are untouched. The full run's time is read from
benchmarks/results/default_run.json (benchmarks/default_run.py, same machine); the machine is
shared, so the 1-minute load average is recorded beside the seconds.
"""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RUN = ROOT / "benchmarks/results/default_run.json"
STAGE = re.compile(r"Running stage '([^']+)'")
RESTORED = re.compile(r"Stage '([^']+)' is cached - skipping run")  # DVC's run-cache: no work was timed


def sh(args: list[str], cwd: Path) -> str:
    env = dict(os.environ, PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout + proc.stderr


def timed_run(args: list[str], cwd: Path) -> tuple[str, dict[str, float]]:
    """Run ``args`` streaming its output; returns (output, {stage: seconds from its "Running stage" line
    to the next stage's, or to the end}): each stage's work plus DVC's bookkeeping after it."""
    env = dict(os.environ, PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}")
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, starts = [], []
    for line in proc.stdout:
        lines.append(line)
        if (m := STAGE.search(line)):
            starts.append((m.group(1), time.perf_counter()))
    end = time.perf_counter()
    out = "".join(lines)
    if proc.wait() != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{out[-4000:]}")
    ends = [t for _, t in starts[1:]] + [end]
    return out, {name: round(e - t, 1) for (name, t), e in zip(starts, ends)}


def ledger_estimate(stages: list[str], full: dict) -> dict:
    """What the stages run cost in the full run's own ledger (benchmarks/results/default_run.json
    stages_s, the same load as its total): a share of the full run that the load at measuring time
    does not move. Stages the ledger lacks (added since) are named, not guessed."""
    known = {s: full["stages_s"][s] for s in stages if s in full.get("stages_s", {})}
    seconds = sum(known.values())
    return {"seconds": round(seconds, 1), "share_of_full_run": round(seconds / full["total_s"], 4),
            "not_in_ledger": [s for s in stages if s not in known]}


def cache_dir() -> str:
    """The repository's DVC cache as `dvc cache dir` reports it (a worktree's may be another's .dvc/cache)."""
    return sh(["dvc", "cache", "dir"], ROOT).strip().splitlines()[-1]


def measure(setting: str, limit_share: float, result_name: str) -> dict:
    """Run ``dvc exp run -S <setting>`` in a throwaway clone; write benchmarks/results/<result_name>.json
    with its seconds, the stages it ran, its share of the full run and its ratio to ``limit_share`` of it."""
    full = json.loads(DEFAULT_RUN.read_text()) if DEFAULT_RUN.exists() else None
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "repo"
        sh(["git", "clone", "-q", str(ROOT), str(clone)], ROOT)
        (clone / ".venv").symlink_to(ROOT / ".venv")
        sh(["dvc", "cache", "dir", "--local", cache_dir()], clone)
        sh(["dvc", "config", "--local", "cache.type", "hardlink"], clone)
        sh(["dvc", "checkout"], clone)  # not -q: a failure says why
        load = os.getloadavg()[0]
        started = time.perf_counter()
        out, per_stage = timed_run(["dvc", "exp", "run", "-S", setting], clone)
        seconds = time.perf_counter() - started
        load = max(load, os.getloadavg()[0])
        diff = sh(["dvc", "metrics", "diff", "--md"], clone)
    ran, restored = STAGE.findall(out), RESTORED.findall(out)
    full_s = full["total_s"] if full else None
    limit_s = limit_share * full_s if full else None
    result = {"command": f"dvc exp run -S {setting}", "seconds": round(seconds, 1),
              "stages_run": ran, "stage_seconds": per_stage,
              "restored_from_run_cache": restored,  # non-empty: this value ran before; pass a new one
              "full_run_s": full_s,
              "share_of_full_run": round(seconds / full_s, 4) if full else None,
              "limit_share_of_full_run": limit_share,
              "limit_s": round(limit_s, 1) if full else None,
              "ratio_to_limit": round(seconds / limit_s, 3) if full else None,
              "ledger_estimate": ledger_estimate(ran, full) if full else None,
              "full_run_date": full.get("date") if full else None,
              "full_run_load_average_1min": full.get("load_average_1min") if full else None,
              "metrics_diff": diff, "load_average_1min": round(load, 2),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
              "date": time.strftime("%Y-%m-%d")}
    path = ROOT / "benchmarks/results" / f"{result_name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['command']}: {seconds:.1f} s"
          + (f" ({result['share_of_full_run']:.1%} of the {full_s:.0f}-s full run, {result['ratio_to_limit']:.2f} of "
             f"its {limit_share:.0%} limit)" if full else "")
          + f"; stages: {', '.join(ran)}"
          + (f"; restored from the run-cache (not timed work): {', '.join(restored)}" if restored else "")
          + f"; load {result['load_average_1min']}"
          + (f"; the full run's own ledger for these stages: {result['ledger_estimate']['seconds']} s "
             f"({result['ledger_estimate']['share_of_full_run']:.1%}; not in it: "
             f"{', '.join(result['ledger_estimate']['not_in_ledger']) or 'none'})" if full else "")
          + f"; per stage: {per_stage} -> {path}")
    return result
