"""What each stage costs at the competition's size, before a user starts.

1. Runs the pipeline, stage by stage, in throwaway copies of this repository (tests/fakes/repo_copy.py)
   at three sizes of the synthetic set: the smoke knobs (tests/stages/smoke_params.yaml) with the
   default backbone (BirdNET V2.4), and the smoke scale's recordings per species and soundscapes per
   split multiplied by each `--multiples` entry (a new `dataset.scales` entry per size; the default
   scale is about 30x the smoke one and takes 16 minutes alone, too long for three sizes here). Each stage runs as
   `dvc repro -s <stage>` in its own process: its wall time and its peak resident memory (the
   process tree's, from wait4) are recorded, with the number of windows extracted (the size `n`).
2. Fits, per stage, a power law t = a * n^b (and peak memory likewise) by least squares in log-log.
3. Extrapolates to the competition's size (`--focal-recordings` x `--windows-per-recording` focal
   windows plus `--soundscapes` one-minute soundscapes of 12 chunks) for BirdNET; for Perch v2, the
   stages that run the backbone (extract) are scaled by the ratio of multiply-accumulates per 5-s
   window, counted from the ONNX graphs (BirdNET's converted graph; a Perch-v2-shaped graph, the
   perch_tiny fixture at width 1.0 with Perch v2's 14,795 classes), and `sidecar_features` (real-data
   mode's second extraction, BirdNET over the same windows) costs what BirdNET's extract costs.
4. Writes benchmarks/results/costs.json and docs/costs.md (generated from the json: `--docs-only`
   rewrites the page from an existing json).

The fits are over small sizes, where each stage's fixed cost (process start, notebook, DVC) is a
large share: the exponent of a data-bound stage comes out low, so the power-law figure is a lower
bound; the page also gives the linear bound (the largest run's seconds per window times the
competition's windows).

Usage: nice -n 10 .venv/bin/python benchmarks/costs.py [--multiples 1 2 4] [--targets base sidecar]
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

from tests.fakes.repo_copy import VENV_BIN, make_repo  # noqa: E402

OUT = ROOT / "benchmarks/results/costs.json"
DOCS = ROOT / "docs/costs.md"
STAGE = re.compile(r"Running stage '([^']+)'")
BACKBONE_STAGES = ("extract",)        # stages whose cost is the backbone's forward passes
CHUNKS_PER_SOUNDSCAPE = 12
PERCH_V2_CLASSES = 14795
LINEAR_FROM = 0.5                     # a stage whose fitted time exponent is below this is a fixed cost


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
    return {"birdnet_macs_per_window": bn, "perch_v2_shaped_macs_per_window": perch,
            "ratio": round(perch / bn, 3),
            "how": "Conv/MatMul/Gemm multiply-accumulates counted on the ONNX graphs at batch 1: BirdNET V2.4's "
                   "converted graph (3 s at 48 kHz) and the perch_tiny fixture at width 1.0 with 14,795 classes "
                   "(Perch v2's EfficientNet-B3 body and frontend shape, 5 s at 32 kHz)"}


# ----------------------------------------------------------------------------------- pipeline runs
def scaled(scale: dict, m: float) -> dict:
    """A `dataset.scales` entry with recordings per species and soundscapes per split times ``m``."""
    out = dict(scale)
    for key in ("head_recordings", "tail_recordings"):
        out[key] = [max(1, int(round(v * m))) for v in scale[key]]
    for key in ("labelled", "unlabelled", "test"):
        out[key] = max(1, int(round(scale[key] * m)))
    return out


def stage_order(repo: Path, dvc: str, targets: list[str]) -> list[str]:
    """The stages `dvc repro <targets>` would run, in a dependency order (from `dvc dag --dot`)."""
    from graphlib import TopologicalSorter

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
    return [s for s in TopologicalSorter(graph).static_order() if not s.endswith(".dvc")]


def env_with_venv() -> dict:
    return dict(os.environ, PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")


def run_stage(repo: Path, dvc: str, stage: str, log) -> dict:
    """One stage in its own process: wall seconds and the tree's peak RSS (wait4)."""
    started = time.perf_counter()
    proc = subprocess.Popen([dvc, "repro", "-s", stage], cwd=repo, stdout=log, stderr=subprocess.STDOUT,
                            env=env_with_venv())
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"stage {stage} failed (rc {proc.returncode}); see {log.name}")
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def one_size(m: float, smoke: dict, base_scale: dict, targets: list[str], workdir: Path, deadline: float) -> dict:
    overrides = copy.deepcopy(smoke)
    overrides.pop("backbone", None)   # the default backbone: BirdNET V2.4
    name = f"cost_x{m:g}".replace(".", "_")
    overrides.setdefault("dataset", {})["scale"] = name
    overrides["dataset"]["scales"] = {name: scaled(base_scale, m)}
    repo = make_repo(workdir / name, overrides)
    dvc = str(VENV_BIN / "dvc")
    stages = stage_order(repo, dvc, targets)
    results, skipped = {}, []
    with open(workdir / f"{name}.log", "w") as log:
        for stage in stages:
            if time.time() > deadline:
                skipped.append(stage)
                continue
            results[stage] = run_stage(repo, dvc, stage, log)
            print(f"  x{m:g} {stage}: {results[stage]['seconds']} s, {results[stage]['peak_rss_mb']} MB", flush=True)
    windows = json.loads((repo / "data/features/meta.json").read_text())["windows"] if (repo / "data/features/meta.json").exists() else {}
    shutil.rmtree(repo, ignore_errors=True)
    return {"multiple": m, "scale": overrides["dataset"]["scales"][name], "windows": windows,
            "n_windows": int(sum(windows.values())), "stages": results, "not_run_deadline": skipped}


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


def extrapolate(runs: list[dict], n_target: int, ratio: float) -> dict:
    stages = sorted({s for r in runs for s in r["stages"]}, key=lambda s: min(
        list(r["stages"]).index(s) for r in runs if s in r["stages"]))
    table = {}
    largest = max(runs, key=lambda r: r["n_windows"])
    for s in stages:
        pts = [(r["n_windows"], r["stages"][s]) for r in runs if s in r["stages"]]
        n = [p[0] for p in pts]
        t_fit = power_fit(n, [p[1]["seconds"] for p in pts])
        m_fit = power_fit(n, [p[1]["peak_rss_mb"] for p in pts])
        row = {"measured": {str(a): b for a, b in pts}, "time_fit": t_fit, "memory_fit": m_fit}
        if t_fit:
            row["birdnet_seconds"] = round(t_fit["a"] * n_target ** t_fit["b"], 1)
        if m_fit:
            row["birdnet_peak_mb"] = round(m_fit["a"] * n_target ** m_fit["b"], 1)
        if s in largest["stages"] and largest["n_windows"]:
            # data-bound stages (time exponent >= LINEAR_FROM): the largest run's seconds per window
            # times the target; the others are a fixed cost: the largest run's seconds
            grows = t_fit is not None and t_fit["b"] >= LINEAR_FROM
            per = largest["stages"][s]["seconds"]
            row["birdnet_seconds_linear"] = round(per / largest["n_windows"] * n_target if grows else per, 1)
        scale = ratio if s in BACKBONE_STAGES else 1.0
        for k in ("birdnet_seconds", "birdnet_seconds_linear"):
            if k in row:
                row[k.replace("birdnet", "perch_v2")] = round(row[k] * scale, 1)
        if "birdnet_peak_mb" in row:
            row["perch_v2_peak_mb"] = row["birdnet_peak_mb"]
        table[s] = row
    if "sidecar_features" in table:  # default mode's pointer; with Perch v2 the derived row below replaces it
        for k in ("perch_v2_seconds", "perch_v2_seconds_linear", "perch_v2_peak_mb"):
            table["sidecar_features"].pop(k, None)
    if "extract" in table:   # real-data mode's second extraction: BirdNET over the same windows
        e = table["extract"]
        table["sidecar_features (real-data mode)"] = {
            "derived_from": "extract (BirdNET, same windows)",
            **{k.replace("birdnet", "perch_v2"): e[k] for k in ("birdnet_seconds", "birdnet_seconds_linear", "birdnet_peak_mb") if k in e}}
    return table


# ------------------------------------------------------------------------------------------- page
def fmt_s(s) -> str:
    if s is None:
        return "-"
    return f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def write_docs(result: dict, path: Path = DOCS) -> None:
    t = result["table"]
    comp = result["competition"]
    sizes = ", ".join(f"x{r['multiple']:g}: {r['n_windows']} windows" for r in result["runs"])
    lines = [
        "# What each stage costs at the competition's size",
        "",
        f"Generated by `benchmarks/costs.py` from `benchmarks/results/costs.json` ({result['date']}, "
        f"{result['machine']['cpus']} CPUs, load {result['load_average_1min']} at the start; do not edit by hand).",
        "",
        f"Measured: every stage up to {', '.join(result['targets']) or 'the end'} as `dvc repro -s <stage>` on the "
        f"synthetic set at the smoke knobs with BirdNET V2.4, at three sizes ({sizes}). "
        f"Fitted per stage: seconds = a * n^b and peak memory likewise (n = windows extracted). "
        f"Extrapolated to {comp['n_windows']:,} windows ({comp['focal_recordings']:,} focal recordings x "
        f"{comp['windows_per_recording']} windows + {comp['soundscapes']:,} one-minute soundscapes x 12 chunks). "
        f"Perch v2: the backbone stage (extract) times {result['macs']['ratio']} (multiply-accumulates per window, "
        f"Perch-v2-shaped graph {result['macs']['perch_v2_shaped_macs_per_window'] / 1e9:.2f} G vs BirdNET "
        f"{result['macs']['birdnet_macs_per_window'] / 1e9:.2f} G), plus real-data mode's second BirdNET extraction "
        "(`sidecar_features`).",
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
    if result.get("note"):
        lines += [f"Note on this run: {result['note']}", ""]
    if any(r["not_run_deadline"] for r in result["runs"]):
        lines += ["Not measured (the run's deadline): " + "; ".join(
            f"x{r['multiple']:g}: {', '.join(r['not_run_deadline'])}" for r in result["runs"] if r["not_run_deadline"]), ""]
    path.write_text("\n".join(lines))


def totals(table: dict) -> tuple[dict, list]:
    tot = {k: round(sum(r.get(k, 0) or 0 for r in table.values()), 1)
           for k in ("birdnet_seconds", "birdnet_seconds_linear", "perch_v2_seconds", "perch_v2_seconds_linear")}
    lin = {s: r.get("perch_v2_seconds_linear", 0) or 0 for s, r in table.items()}
    whole = sum(lin.values()) or 1.0
    dominant = [(s, v / whole) for s, v in sorted(lin.items(), key=lambda kv: -kv[1])[:4]]
    return tot, dominant


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--multiples", type=float, nargs=3, default=[1, 2, 4],
                    help="recordings per species and soundscapes per split, times the smoke scale")
    ap.add_argument("--targets", nargs="*", default=[], help="dvc repro targets (default: the whole pipeline)")
    ap.add_argument("--budget-min", type=float, default=12.0, help="stop starting stages after this many minutes")
    ap.add_argument("--focal-recordings", type=int, default=50_000)
    ap.add_argument("--windows-per-recording", type=int, default=3)
    ap.add_argument("--soundscapes", type=int, default=10_000, help="one-minute training soundscapes (an estimate)")
    ap.add_argument("--docs-only", action="store_true", help="refit from the runs in the existing json; rewrite it and docs/costs.md")
    ap.add_argument("--note", help="a sentence on the conditions of the run, kept in the json and the page")
    ap.add_argument("--macs-only", action="store_true", help="print the multiply-accumulates json and stop")
    args = ap.parse_args(argv)
    if args.macs_only:
        print(json.dumps(macs_ratio(yaml.safe_load((ROOT / "params.yaml").read_text()))))
        return 0
    if args.docs_only:   # refit from the recorded runs (no stage runs) and rewrite the json's fits and the page
        result = json.loads(OUT.read_text())
        result["table"] = extrapolate(result["runs"], result["competition"]["n_windows"], result["macs"]["ratio"])
        result["totals"], result["dominant"] = totals(result["table"])
        if args.note:
            result["note"] = args.note
        OUT.write_text(json.dumps(result, indent=2) + "\n")
        write_docs(result)
        return 0
    started = time.time()
    deadline = started + args.budget_min * 60
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    smoke = yaml.safe_load((ROOT / "tests/stages/smoke_params.yaml").read_text())
    load = round(os.getloadavg()[0], 2)
    # in a child process: torch and the exported graphs would raise this process's resident size,
    # which every stage process forked from it would then report as its own peak
    macs = json.loads(subprocess.run([sys.executable, __file__, "--macs-only"], check=True, capture_output=True,
                                     text=True).stdout.strip().splitlines()[-1])
    print(f"MACs per window: BirdNET {macs['birdnet_macs_per_window']:,}, Perch-v2-shaped "
          f"{macs['perch_v2_shaped_macs_per_window']:,} (ratio {macs['ratio']})", flush=True)
    runs = []
    with tempfile.TemporaryDirectory(prefix="costs-") as tmp:
        for m in args.multiples:
            runs.append(one_size(m, smoke, params["dataset"]["scales"]["smoke"], args.targets, Path(tmp), deadline))
    n_target = args.focal_recordings * args.windows_per_recording + args.soundscapes * CHUNKS_PER_SOUNDSCAPE
    table = extrapolate(runs, n_target, macs["ratio"])
    tot, dominant = totals(table)
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "seconds": round(time.time() - started, 1),
              "load_average_1min": load, "targets": args.targets,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
              "competition": {"focal_recordings": args.focal_recordings, "windows_per_recording": args.windows_per_recording,
                              "soundscapes": args.soundscapes, "n_windows": n_target},
              "note": args.note, "macs": macs, "runs": runs, "table": table, "totals": tot, "dominant": dominant}
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    write_docs(result)
    print(f"costs: {result['seconds']:.0f} s -> {OUT}, {DOCS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
