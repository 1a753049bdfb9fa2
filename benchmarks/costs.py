"""What each stage costs at the competition's size, before a user starts.

1. Runs every stage of dvc.yaml (or those `--targets` need), one `dvc repro -s <stage>` process each,
   in a dependency order that follows dvc.yaml's where it can, in throwaway copies of this repository
   (tests/fakes/repo_copy.py) at several sizes: the smoke knobs (tests/stages/smoke_params.yaml) with
   the smoke scale's recordings per species and soundscapes per split multiplied by each `--multiples`
   entry (a new `dataset.scales` entry per size). The default set is about 50x the smoke scale in
   windows and takes half an hour alone, too long for three sizes here; the page states how the
   measured sizes relate to it. Each stage's wall time and its peak resident memory (the process
   tree's, from wait4) are recorded, with the number of windows extracted (the size `n`).
   Two paths: the default one (synthetic set, BirdNET V2.4, as `dvc repro` runs it out of the box) and,
   with `--real-data`, real-data mode on a small competition folder in the BirdCLEF layout
   (tests/fakes/competition.py, scaled the same way) with the perch_tiny backbone, where
   `sidecar_features` is a second, BirdNET extraction (a pointer in the default path).
2. Fits, per stage, a power law t = a * n^b (and peak memory likewise) by least squares in log-log;
   only with at least three distinct sizes (fewer: a check run, measured seconds only, fit skipped).
3. Extrapolates to the competition's size (`--focal-recordings` x `--windows-per-recording` focal
   windows plus `--soundscapes` one-minute soundscapes of 12 chunks) for BirdNET and Perch v2: the
   stages that run the backbone (extract, extract_labelled) are scaled by the ratio of
   multiply-accumulates per 5-s window, counted from the ONNX graphs (BirdNET's converted graph; a
   Perch-v2-shaped graph, the perch_tiny fixture at width 1.0 with Perch v2's 14,795 classes; in
   real-data mode the measured perch_tiny graph too). With Perch v2, `sidecar_features` is real-data
   mode's second extraction, BirdNET over the same windows.
4. Writes benchmarks/results/costs.json and docs/costs.md (with `--real-data`: costs_real_data.json and
   docs/costs_real_data.md; the page is generated from the json: `--docs-only` rewrites it from an
   existing json), each atomically and only after every stage ran: a
   failing stage stops the benchmark naming the stage, with its log's tail, and writes nothing.
   With the default record paths it also rewrites README.md's costs block from both records
   (birdclef_eos/report/stage_costs.py): totals, dominant stages, largest peak memory.

The fits are over small sizes, where each stage's fixed cost (process start, notebook, DVC) is a
large share: the exponent of a data-bound stage comes out low, so the power-law figure is a lower
bound; the page also gives the linear bound (the largest run's seconds per window times the
competition's windows).

Usage: nice -n 10 .venv/bin/python benchmarks/costs.py [--multiples 1 2 4] [--real-data] [--targets ...]
       (a check run: --multiples 1 --out /tmp/costs.json --docs /tmp/costs.md)
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from birdclef_eos.report import readme, stage_costs  # noqa: E402
from birdclef_eos.report.stage_costs import LINEAR_FROM, fmt_s  # noqa: E402
from tests.fakes.repo_copy import VENV_BIN, deep_update, make_repo  # noqa: E402

OUT = ROOT / "benchmarks/results/costs.json"
DOCS = ROOT / "docs/costs.md"
OUT_REAL = ROOT / "benchmarks/results/costs_real_data.json"   # real-data mode's record and page: beside the
DOCS_REAL = ROOT / "docs/costs_real_data.md"                  # default path's, never over it
STAGE = re.compile(r"Running stage '([^']+)'")
BACKBONE_STAGES = ("extract", "extract_labelled")  # stages whose cost is the backbone's forward passes
SIDECAR_STAGE = "sidecar_features"    # real-data mode's second (BirdNET) extraction; a pointer in BirdNET mode
CHUNKS_PER_SOUNDSCAPE = 12
MIN_FIT_SIZES = 3                     # a power law through fewer distinct sizes has no residual to judge it by
REAL_OVERRIDES = {                    # as tests/stages/test_real_pipeline.py: 10 labelled files, 4 of them held
    "dataset": {"source": "birdclef", "holdout": {"share": 0.4, "group": "file", "seed": 0}},  # out as the board
    "train": {"variants": {"residual": {"blocks": [24, 25]}}}}  # perch_tiny's probe pick has unequal widths
REAL_FOLDER = {"labelled": 10}        # the small folder's labelled soundscapes at x1 (over tests/fakes/competition.py CFG)
PERCH_V2_CLASSES = 14795


# ----------------------------------------------------------------------------- multiply-accumulates
def graph_macs(onnx_path: Path, input_len: int) -> int:
    """Multiply-accumulates of one forward pass of an ONNX graph on one input of ``input_len``
    samples: Conv (out elements x in-channels/group x kernel), ConvTranspose likewise, MatMul and
    Gemm (out elements x inner size). Shapes come from one onnxruntime run with every such node's
    inputs and outputs exposed (shape inference leaves spatial sizes symbolic)."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(onnx_path))
    graph = model.graph
    wanted = [n for n in graph.node if n.op_type in ("Conv", "ConvTranspose", "MatMul", "Gemm")]
    inits = {i.name: list(i.dims) for i in graph.initializer}
    existing = {o.name for o in graph.output}
    for n in wanted:
        for name in list(n.input[:2]) + [n.output[0]]:
            if name and name not in inits and name not in existing:
                graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
                existing.add(name)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "exposed.onnx"
        onnx.save(model, str(path))
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: np.zeros((1, input_len), np.float32)}
        names = [o.name for o in sess.get_outputs()]
        shapes = {k: list(v.shape) for k, v in zip(names, sess.run(names, feed))}
    shapes.update(inits)
    macs = 0
    for n in wanted:
        out = shapes[n.output[0]]
        if n.op_type in ("Conv", "ConvTranspose"):
            w = shapes[n.input[1]]
            group = next((a.i for a in n.attribute if a.name == "group"), 1)
            per_out = int(np.prod(w[1:])) if n.op_type == "Conv" else int(w[0] // group * np.prod(w[2:]))
            macs += int(np.prod(out)) * per_out
        else:
            a = shapes[n.input[0]]
            trans_a = next((x.i for x in n.attribute if x.name == "transA"), 0)
            inner = a[-2] if (n.op_type == "Gemm" and trans_a) else a[-1]
            macs += int(np.prod(out)) * int(inner)
    return macs


def macs_ratio(params: dict) -> dict:
    """Perch-v2-shaped graph vs BirdNET: multiply-accumulates per 5-s window (BirdNET reads one 3-s
    window per 5-s chunk: chunk_mapping center)."""
    from birdclef_eos.backbone import birdnet
    from birdclef_eos.backbone.perch_tiny import export_perch_tiny

    prepared = birdnet.prepare(params["backbone"]["birdnet"], Path(os.path.expanduser(params["runtime"]["cache_dir"])))
    bn = graph_macs(Path(prepared["onnx"]), 144000)
    with tempfile.TemporaryDirectory() as tmp:
        perch_path = Path(tmp) / "perch_shaped.onnx"
        export_perch_tiny(perch_path, seed=0, width_multiplier=1.0, n_classes=PERCH_V2_CLASSES)
        perch = graph_macs(perch_path, 160000)
        tiny_cfg = params["backbone"]["perch_tiny"]   # real-data mode's measured backbone
        tiny_path = Path(tmp) / "perch_tiny.onnx"
        export_perch_tiny(tiny_path, seed=tiny_cfg["seed"], width_multiplier=tiny_cfg["width_multiplier"])
        tiny = graph_macs(tiny_path, 160000)
    return {"birdnet_macs_per_window": bn, "perch_v2_shaped_macs_per_window": perch,
            "perch_tiny_macs_per_window": tiny, "ratio": round(perch / bn, 3),
            "how": "Conv/MatMul/Gemm multiply-accumulates counted on the ONNX graphs at batch 1: BirdNET V2.4's "
                   "converted graph (3 s at 48 kHz) and the perch_tiny fixture at width 1.0 with 14,795 classes "
                   "(Perch v2's EfficientNet-B3 body and frontend shape, 5 s at 32 kHz)"}


# ----------------------------------------------------------------------------------- pipeline runs
class StageFailed(RuntimeError):
    """A stage's `dvc repro -s` failed: the benchmark stops here and writes no results."""


def scaled(scale: dict, m: float) -> dict:
    """A `dataset.scales` entry with recordings per species and soundscapes per split times ``m``."""
    out = dict(scale)
    for key in ("head_recordings", "tail_recordings"):
        out[key] = [max(1, int(round(v * m))) for v in scale[key]]
    for key in ("labelled", "unlabelled", "test"):
        out[key] = max(1, int(round(scale[key] * m)))
    return out


def expected_windows(scale: dict, params: dict) -> dict:
    """The windows `extract` reads from a synthetic scale, in expectation: focal recordings (the mean
    of each recording range) x `extract.windows_per_recording`, and every soundscape's chunks (the
    test split's at each TTA shift). Lets the page say how a measured size relates to the default set
    without running it."""
    ds, ex = params["dataset"], params["extract"]
    chunks = int(ds["soundscape_s"] // ds["chunk_s"])
    recordings = (scale["head_species"] * float(np.mean(scale["head_recordings"]))
                  + (scale["species"] - scale["head_species"]) * float(np.mean(scale["tail_recordings"])))
    out = {"focal": recordings * ex["windows_per_recording"], "labelled": scale["labelled"] * chunks,
           "test": scale["test"] * chunks * len(ex["tta_shifts"]), "unlabelled": scale["unlabelled"] * chunks}
    return {k: round(v, 1) for k, v in out.items()}


def dependency_order(graph: dict[str, set], file_order: list[str]) -> list[str]:
    """Every stage of ``graph`` (stage -> the stages it reads from) in ``file_order`` (dvc.yaml's),
    each stage preceded by whatever it reads that has not run yet: so the run reads like dvc.yaml,
    top to bottom, and a stage written lower that an earlier one reads (sidecar, read by blend) runs
    just before it. Stages missing from ``file_order`` come last, by name."""
    rank = {s: i for i, s in enumerate(file_order)}
    key = lambda s: (rank.get(s, len(rank)), s)  # noqa: E731
    stages = set(graph) | {d for deps in graph.values() for d in deps}
    order: list[str] = []
    done: set[str] = set()

    def visit(stage: str, path: tuple) -> None:
        if stage in done:
            return
        if stage in path:
            raise ValueError(f"a cycle: {' -> '.join(path + (stage,))}")
        for dep in sorted(graph.get(stage, ()), key=key):
            visit(dep, path + (stage,))
        done.add(stage)
        order.append(stage)

    for stage in sorted(stages, key=key):
        visit(stage, ())
    return order


def stage_order(repo: Path, dvc: str, targets: list[str]) -> list[str]:
    """The stages `dvc repro <targets>` would run (all of dvc.yaml without targets), from
    `dvc dag --dot`, ordered by `dependency_order` over `dvc stage list`'s order."""
    graph: dict[str, set] = {}
    for target in targets or [None]:
        proc = subprocess.run([dvc, "dag", "--dot", *([target] if target else [])], cwd=repo, capture_output=True,
                              text=True, env=env_with_venv())
        if proc.returncode != 0:
            raise RuntimeError(f"dvc dag failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        for line in proc.stdout.splitlines():
            edge = re.findall(r'"([^"]+)"', line)
            if "->" in line and len(edge) == 2:
                graph.setdefault(edge[1], set()).add(edge[0])
                graph.setdefault(edge[0], set())
            elif len(edge) == 1:
                graph.setdefault(edge[0], set())
    listed = subprocess.run([dvc, "stage", "list", "--name-only"], cwd=repo, capture_output=True, text=True,
                            env=env_with_venv(), check=True).stdout.split()
    graph = {s: {d for d in deps if not d.endswith(".dvc")} for s, deps in graph.items() if not s.endswith(".dvc")}
    return dependency_order(graph, listed)


def env_with_venv() -> dict:
    return dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")


def run_stage(repo: Path, dvc: str, stage: str, log_path: Path) -> dict:
    """One stage in its own process: wall seconds and the tree's peak RSS (wait4)."""
    with open(log_path, "a") as log:
        log.write(f"\n===== {stage}\n")
        log.flush()
        started = time.perf_counter()
        proc = subprocess.Popen([dvc, "repro", "-s", stage], cwd=repo, stdout=log, stderr=subprocess.STDOUT,
                                env=env_with_venv())
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text().splitlines()[-40:])
        raise StageFailed(f"stage {stage} failed (rc {proc.returncode}) after {seconds:.0f} s; "
                          f"the log's last lines:\n{tail}")
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def size_overrides(m: float, smoke: dict, params: dict, real_data: bool, workdir: Path) -> tuple[str, dict, dict]:
    """params.yaml overrides for one size: the smoke knobs; the default path with BirdNET V2.4 on a
    `dataset.scales` entry ``m`` times the smoke one; real-data mode with perch_tiny (the smoke
    backbone) on a small competition folder whose recordings and soundscapes are ``m`` times the
    test folder's. Returns the size's name, the overrides and the scale (for the record)."""
    name = f"cost_x{m:g}".replace(".", "_")
    overrides = copy.deepcopy(smoke)
    if real_data:
        from tests.fakes.competition import CFG
        scale = scaled({**CFG, **REAL_FOLDER}, m)
        # generated in a child process: the generator's imports would raise this process's resident
        # size, which every stage process started from it would then report as its own peak
        comp = Path(subprocess.run(
            [sys.executable, "-c", "import json, sys; from tests.fakes.competition import small_competition; "
             "print(small_competition(__import__('pathlib').Path(sys.argv[1]), cfg=json.loads(sys.argv[2])))",
             str(workdir / f"{name}_folder"), json.dumps(scale)],
            cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        deep_update(overrides, copy.deepcopy(REAL_OVERRIDES))
        overrides["dataset"]["root"] = str(comp)
        return name, overrides, scale
    overrides.pop("backbone", None)   # the default backbone: BirdNET V2.4
    scale = scaled(params["dataset"]["scales"]["smoke"], m)
    overrides.setdefault("dataset", {})["scale"] = name
    overrides["dataset"]["scales"] = {name: scale}
    return name, overrides, scale


def one_size(m: float, smoke: dict, params: dict, targets: list[str], workdir: Path, deadline: float | None,
             real_data: bool = False) -> dict:
    name, overrides, scale = size_overrides(m, smoke, params, real_data, workdir)
    repo = make_repo(workdir / name, overrides)
    dvc = str(VENV_BIN / "dvc")
    stages = stage_order(repo, dvc, targets)
    results, skipped = {}, []
    log = workdir / f"{name}.log"
    for stage in stages:
        if deadline is not None and time.time() > deadline:
            skipped.append(stage)
            continue
        try:
            results[stage] = run_stage(repo, dvc, stage, log)
        except StageFailed as err:
            raise StageFailed(f"x{m:g}: {err}") from None
        print(f"  x{m:g} {stage}: {results[stage]['seconds']} s, {results[stage]['peak_rss_mb']} MB", flush=True)
    meta = repo / "data/features/meta.json"
    windows = json.loads(meta.read_text())["windows"] if meta.exists() else {}
    shutil.rmtree(repo, ignore_errors=True)
    return {"multiple": m, "scale": scale, "windows": windows, "n_windows": int(sum(windows.values())),
            "stages": results, "not_run_deadline": skipped}


# ------------------------------------------------------------------------------------------ fitting
def power_fit(n: list[float], y: list[float]) -> dict | None:
    """y = a * n^b by least squares on logs; None (with the reason) below two distinct sizes."""
    pts = [(a, b) for a, b in zip(n, y) if a > 0 and b > 0]
    if len({a for a, _ in pts}) < 2:
        return None
    x, v = np.log([a for a, _ in pts]), np.log([b for _, b in pts])
    b, log_a = np.polyfit(x, v, 1)
    pred = log_a + b * x
    ss = float(((v - v.mean()) ** 2).sum())
    r2 = 1.0 - float(((v - pred) ** 2).sum()) / ss if ss > 0 else None
    return {"a": float(np.exp(log_a)), "b": round(float(b), 3), "r2": None if r2 is None else round(r2, 3)}


def backbone_factors(macs: dict, real_data: bool) -> dict:
    """What the backbone stages' measured seconds are multiplied by for each extrapolated backbone:
    the ratio of multiply-accumulates per window, target over measured (BirdNET in the default path,
    perch_tiny in real-data mode)."""
    if not real_data:
        return {"birdnet": 1.0, "perch_v2": macs["ratio"]}
    tiny = macs["perch_tiny_macs_per_window"]
    return {"birdnet": round(macs["birdnet_macs_per_window"] / tiny, 3),
            "perch_v2": round(macs["perch_v2_shaped_macs_per_window"] / tiny, 3)}


def extrapolate(runs: list[dict], n_target: int, macs: dict, real_data: bool = False) -> dict:
    """Per stage: the measured points, the fits (with at least MIN_FIT_SIZES distinct sizes) and the
    seconds and peak memory at ``n_target`` windows for BirdNET and Perch v2. The backbone stages
    scale by `backbone_factors`. `sidecar_features` is a pointer with BirdNET as the backbone and a
    second BirdNET extraction with Perch v2: measured as such in real-data mode; in the default path
    derived from BirdNET's extract."""
    factors = backbone_factors(macs, real_data)
    stages = sorted({s for r in runs for s in r["stages"]}, key=lambda s: min(
        list(r["stages"]).index(s) for r in runs if s in r["stages"]))
    fits = len({r["n_windows"] for r in runs if r["n_windows"]}) >= MIN_FIT_SIZES
    table = {}
    largest = max(runs, key=lambda r: r["n_windows"])
    for s in stages:
        pts = [(r["n_windows"], r["stages"][s]) for r in runs if s in r["stages"]]
        n = [p[0] for p in pts]
        t_fit = power_fit(n, [p[1]["seconds"] for p in pts]) if fits else None
        m_fit = power_fit(n, [p[1]["peak_rss_mb"] for p in pts]) if fits else None
        row = {"measured": {str(a): b for a, b in pts}, "time_fit": t_fit, "memory_fit": m_fit}
        if not fits:   # a check run: no extrapolation from fewer sizes than a fit needs
            table[s] = row
            continue
        measured = {}
        if t_fit:
            measured["seconds"] = round(t_fit["a"] * n_target ** t_fit["b"], 1)
        if m_fit:
            measured["peak_mb"] = round(m_fit["a"] * n_target ** m_fit["b"], 1)
        if s in largest["stages"] and largest["n_windows"]:
            # data-bound stages (time exponent >= LINEAR_FROM): the largest run's seconds per window
            # times the target; the others are a fixed cost: the largest run's seconds
            grows = t_fit is not None and t_fit["b"] >= LINEAR_FROM
            per = largest["stages"][s]["seconds"]
            measured["seconds_linear"] = round(per / largest["n_windows"] * n_target if grows else per, 1)
        for backbone, factor in factors.items():
            scale = factor if s in BACKBONE_STAGES else 1.0
            for k in ("seconds", "seconds_linear"):
                if k in measured:
                    row[f"{backbone}_{k}"] = round(measured[k] * scale, 1)
            if "peak_mb" in measured:
                row[f"{backbone}_peak_mb"] = measured["peak_mb"]
        if s == SIDECAR_STAGE:   # a pointer when BirdNET is the backbone; a BirdNET extraction with Perch v2
            drop = "birdnet" if real_data else "perch_v2"
            for k in ("seconds", "seconds_linear", "peak_mb"):
                row.pop(f"{drop}_{k}", None)
        table[s] = row
    if fits and not real_data and "extract" in table:   # real-data mode's second extraction, not run here
        e = table["extract"]
        table[f"{SIDECAR_STAGE} (real-data mode)"] = {
            "derived_from": "extract (BirdNET, same windows)",
            **{k.replace("birdnet", "perch_v2"): e[k] for k in ("birdnet_seconds", "birdnet_seconds_linear", "birdnet_peak_mb") if k in e}}
    return table


# ------------------------------------------------------------------------------------------- page
def size_text(result: dict) -> str:
    """Which sizes were measured and how they relate to the default set, in words."""
    sizes = ", ".join(f"x{r['multiple']:g}: {r['n_windows']:,} windows" for r in result["runs"])
    if result.get("mode") == "real-data":
        return (f"Measured sizes, as multiples of the small competition folder's recordings per species and "
                f"soundscapes (tests/fakes/competition.py, 10 labelled 20-s soundscapes at x1): {sizes}.")
    rel = result.get("default_set")
    text = f"Measured sizes, as multiples of the smoke scale's recordings per species and soundscapes per split: {sizes}."
    if rel:
        share = ", ".join(f"x{r['multiple']:g} = {r['n_windows'] / rel['default_windows']:.1%}" for r in result["runs"])
        text += (f" The default set (`dataset.scale: default`, what `dvc repro` runs) is about "
                 f"{rel['default_windows']:,.0f} windows in expectation, {rel['ratio']:.0f}x the smoke scale's "
                 f"{rel['smoke_windows']:,.0f}, so the measured sizes are {share} of it; a multiple scales only the "
                 f"recordings and soundscapes, the species ({rel['smoke_species']} vs {rel['default_species']}), "
                 "genera and sites stay at the smoke scale's.")
    return text


def write_docs(result: dict, path: Path = DOCS) -> None:
    t = result["table"]
    comp = result["competition"]
    real = result.get("mode") == "real-data"
    fitted = any(row.get("time_fit") for row in t.values())
    backbone = "perch_tiny (real-data mode, small competition folder)" if real else "BirdNET V2.4"
    targets = result.get("targets") or []
    lines = [
        "# What each stage costs at the competition's size",
        "",
        f"Generated by `benchmarks/costs.py{' --real-data' if real else ''}` from "
        f"`benchmarks/results/{'costs_real_data' if real else 'costs'}.json` ({result['date']}, "
        f"{result['machine']['cpus']} CPUs, load {result['load_average_1min']} at the start; do not edit by hand).",
        "",
        f"Measured: {'every stage up to ' + ', '.join(targets) if targets else 'every stage of dvc.yaml'} as "
        f"`dvc repro -s <stage>` on the {'competition-layout folder' if real else 'synthetic set'} at the smoke "
        f"knobs with {backbone}, at {len(result['runs'])} size{'s' if len(result['runs']) != 1 else ''}.",
        "",
        size_text(result),
        "",
    ]
    if not fitted:
        lines += [f"Fit skipped: {len({r['n_windows'] for r in result['runs']})} distinct size(s) measured and a fit "
                  f"needs {MIN_FIT_SIZES} (a check run): measured seconds and peak memory only, nothing extrapolated.",
                  "", "| stage | " + " | ".join(f"x{r['multiple']:g} s | x{r['multiple']:g} peak MB" for r in result["runs"]) + " |",
                  "| --- |" + " --- | --- |" * len(result["runs"])]
        for s, row in t.items():
            cells = []
            for r in result["runs"]:
                m = r["stages"].get(s)
                cells += [f"{m['seconds']:.1f}", f"{m['peak_rss_mb']:.0f}"] if m else ["-", "-"]
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        lines.append("")
    else:
        factors = backbone_factors(result["macs"], real)
        perch_how = (f"the backbone stages ({', '.join(BACKBONE_STAGES)}) times {factors['perch_v2']} for Perch v2 "
                     f"and {factors['birdnet']} for BirdNET (multiply-accumulates per window over the measured "
                     f"perch_tiny's, {result['macs'].get('perch_tiny_macs_per_window', 0) / 1e9:.2f} G; a tiny graph's "
                     "time is overhead-heavy, so these are rough); `sidecar_features` (BirdNET's second extraction, "
                     "measured) counts with Perch v2 only" if real else
                     f"the backbone stages ({', '.join(BACKBONE_STAGES)}) times {result['macs']['ratio']} "
                     f"(multiply-accumulates per window, Perch-v2-shaped graph "
                     f"{result['macs']['perch_v2_shaped_macs_per_window'] / 1e9:.2f} G vs BirdNET "
                     f"{result['macs']['birdnet_macs_per_window'] / 1e9:.2f} G), plus real-data mode's second BirdNET "
                     "extraction (`sidecar_features`, derived from extract)")
        lines += [
            f"Fitted per stage: seconds = a * n^b and peak memory likewise (n = windows extracted). "
            f"Extrapolated to {comp['n_windows']:,} windows ({comp['focal_recordings']:,} focal recordings x "
            f"{comp['windows_per_recording']} windows + {comp['soundscapes']:,} one-minute soundscapes x 12 chunks). "
            f"{'BirdNET and Perch v2' if real else 'Perch v2'}: {perch_how}.",
            "",
            "Read the power-law column as a lower bound and the linear column as an upper bound: at these small "
            "sizes a stage's fixed cost (process start, notebook, DVC: several seconds) dominates, so the "
            f"fitted exponent of a data-bound stage comes out below 1; the linear column scales a stage whose "
            f"exponent is {LINEAR_FROM} or more in proportion to the windows and keeps the others at their largest "
            "measured time (a fixed cost). Training stages also depend on the "
            "model knobs (smoke knobs here: 2 epochs, small heads), so their figures scale with `*.optim.epochs`.",
            "",
            "| stage | b (time) | r2 | BirdNET, power law | BirdNET, linear | Perch v2, power law | Perch v2, linear | peak MB (fit) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for s, row in t.items():
            tf = row.get("time_fit") or {}
            lines.append(f"| {s} | {tf.get('b', '-')} | {tf.get('r2', '-')} | {fmt_s(row.get('birdnet_seconds'))} | "
                         f"{fmt_s(row.get('birdnet_seconds_linear'))} | {fmt_s(row.get('perch_v2_seconds'))} | "
                         f"{fmt_s(row.get('perch_v2_seconds_linear'))} | "
                         f"{row.get('birdnet_peak_mb', row.get('perch_v2_peak_mb', '-'))} |")
        tot = result["totals"]
        lines += ["", f"Totals: BirdNET {fmt_s(tot['birdnet_seconds'])} (power law) to {fmt_s(tot['birdnet_seconds_linear'])} "
                  f"(linear); Perch v2 {fmt_s(tot['perch_v2_seconds'])} to {fmt_s(tot['perch_v2_seconds_linear'])}.", "",
                  "Dominant stages (linear bound, Perch v2): " + ", ".join(
                      f"{s} ({share:.0%})" for s, share in result["dominant"]) + ".", ""]
    if not real:
        lines += ["Real-data mode's extra stage, `sidecar_features` (a second, BirdNET extraction when the backbone "
                  "is not BirdNET), is derived above; `benchmarks/costs.py --real-data` measures it, with perch_tiny on "
                  "a small competition-layout folder, into `docs/costs_real_data.md`.", ""]
    if result.get("not_run"):
        lines += ["Not run at this size, and why: " + "; ".join(f"`{s}`: {why}" for s, why in result["not_run"].items()), ""]
    if result.get("note"):
        lines += [f"Note on this run: {result['note']}", ""]
    if any(r["not_run_deadline"] for r in result["runs"]):
        lines += ["Not measured (the run's deadline): " + "; ".join(
            f"x{r['multiple']:g}: {', '.join(r['not_run_deadline'])}" for r in result["runs"] if r["not_run_deadline"]), ""]
    write_atomic(path, "\n".join(lines))


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` beside ``path`` and rename it over: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def records() -> tuple[dict | None, dict | None]:
    """The recorded default-path and real-data runs (None where a path has no record)."""
    return tuple(json.loads(p.read_text()) if p.exists() else None for p in (OUT, OUT_REAL))


def update_readme() -> None:
    """Splice both records' summary into README.md's costs block (a check run's --out leaves it alone)."""
    readme.update_page(ROOT / "README.md", "costs", stage_costs.costs_markdown(*records()))


def default_set(params: dict) -> dict:
    """The default set's expected windows against the smoke scale's (`expected_windows`)."""
    scales = params["dataset"]["scales"]
    smoke, default = (sum(expected_windows(scales[k], params).values()) for k in ("smoke", "default"))
    return {"smoke_windows": smoke, "default_windows": default, "ratio": round(default / smoke, 1),
            "smoke_species": scales["smoke"]["species"], "default_species": scales["default"]["species"]}


def totals(table: dict) -> tuple[dict, list]:
    """Sum of each extrapolated column; the four stages with the largest share of Perch v2's linear bound."""
    tot = {k: round(sum(r.get(k, 0) or 0 for r in table.values()), 1)
           for k in ("birdnet_seconds", "birdnet_seconds_linear", "perch_v2_seconds", "perch_v2_seconds_linear")}
    lin = {s: r.get("perch_v2_seconds_linear", 0) or 0 for s, r in table.items()}
    whole = sum(lin.values()) or 1.0
    dominant = [(s, v / whole) for s, v in sorted(lin.items(), key=lambda kv: -kv[1])[:4]]
    return tot, dominant


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--multiples", type=float, nargs="+", default=[1, 2, 4],
                    help=f"recordings per species and soundscapes per split, times the smoke scale (the fit needs "
                         f"{MIN_FIT_SIZES} distinct sizes; fewer: a check run, measured seconds only)")
    ap.add_argument("--real-data", action="store_true",
                    help="real-data mode on a small competition folder with perch_tiny (sidecar_features extracts)")
    ap.add_argument("--targets", nargs="*", default=[], help="dvc repro targets (default: every stage of dvc.yaml)")
    ap.add_argument("--budget-min", type=float, default=None,
                    help="stop starting stages after this many minutes (default: no limit); skipped stages are listed")
    ap.add_argument("--focal-recordings", type=int, default=50_000)
    ap.add_argument("--windows-per-recording", type=int, default=3)
    ap.add_argument("--soundscapes", type=int, default=10_000, help="one-minute training soundscapes (an estimate)")
    ap.add_argument("--out", type=Path, help="the json (default: benchmarks/results/costs.json; with --real-data "
                                             "costs_real_data.json)")
    ap.add_argument("--docs", type=Path, help="the page (default: docs/costs.md; with --real-data docs/costs_real_data.md)")
    ap.add_argument("--docs-only", action="store_true", help="refit from the runs in the existing json; rewrite it and the page")
    ap.add_argument("--note", help="a sentence on the conditions of the run, kept in the json and the page")
    ap.add_argument("--macs-only", action="store_true", help="print the multiply-accumulates json and stop")
    args = ap.parse_args(argv)
    args.out = args.out or (OUT_REAL if args.real_data else OUT)
    args.docs = args.docs or (DOCS_REAL if args.real_data else DOCS)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    if args.macs_only:
        print(json.dumps(macs_ratio(params)))
        return 0
    if args.docs_only:   # refit from the recorded runs (no stage runs) and rewrite the json's fits and the page
        result = json.loads(args.out.read_text())
        real = result.get("mode") == "real-data"
        result["table"] = extrapolate(result["runs"], result["competition"]["n_windows"], result["macs"], real)
        result["totals"], result["dominant"] = totals(result["table"])
        if not real:
            result["default_set"] = default_set(params)
        if args.note:
            result["note"] = args.note
        write_atomic(args.out, json.dumps(result, indent=2) + "\n")
        write_docs(result, args.docs)
        if args.out.resolve() in (OUT, OUT_REAL):
            update_readme()
        return 0
    started = time.time()
    deadline = None if args.budget_min is None else started + args.budget_min * 60
    smoke = yaml.safe_load((ROOT / "tests/stages/smoke_params.yaml").read_text())
    load = round(os.getloadavg()[0], 2)
    # in a child process: torch and the exported graphs would raise this process's resident size,
    # which every stage process forked from it would then report as its own peak
    macs = json.loads(subprocess.run([sys.executable, __file__, "--macs-only"], check=True, capture_output=True,
                                     text=True).stdout.strip().splitlines()[-1])
    print(f"MACs per window: BirdNET {macs['birdnet_macs_per_window']:,}, Perch-v2-shaped "
          f"{macs['perch_v2_shaped_macs_per_window']:,} (ratio {macs['ratio']}), perch_tiny "
          f"{macs['perch_tiny_macs_per_window']:,}", flush=True)
    runs = []
    with tempfile.TemporaryDirectory(prefix="costs-") as tmp:
        try:
            for m in args.multiples:
                runs.append(one_size(m, smoke, params, args.targets, Path(tmp), deadline, args.real_data))
        except StageFailed as err:
            print(f"costs: stopped, nothing written: {err}", file=sys.stderr)
            return 1
    n_target = args.focal_recordings * args.windows_per_recording + args.soundscapes * CHUNKS_PER_SOUNDSCAPE
    table = extrapolate(runs, n_target, macs, args.real_data)
    tot, dominant = totals(table)
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "seconds": round(time.time() - started, 1),
              "load_average_1min": load, "mode": "real-data" if args.real_data else "default",
              "targets": args.targets, "multiples": args.multiples,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
              "competition": {"focal_recordings": args.focal_recordings, "windows_per_recording": args.windows_per_recording,
                              "soundscapes": args.soundscapes, "n_windows": n_target},
              "note": args.note, "macs": macs, "runs": runs, "table": table, "totals": tot, "dominant": dominant}
    if not args.real_data:
        result["default_set"] = default_set(params)
    write_atomic(args.out, json.dumps(result, indent=2) + "\n")
    write_docs(result, args.docs)
    if args.out.resolve() in (OUT, OUT_REAL):
        update_readme()
    print(f"costs: {result['seconds']:.0f} s -> {args.out}, {args.docs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
