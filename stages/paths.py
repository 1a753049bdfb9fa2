"""Where every pipeline artifact lives, relative to the repository root.

dvc.yaml names the same paths as deps and outs; tests/stages/test_layout.py checks they agree.
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARAMS_FILE = ROOT / "params.yaml"
DVC_YAML = ROOT / "dvc.yaml"            # the stages and their outs (input paths must stay off them)
NOTEBOOKS = ROOT / "notebooks"
REPORTS = ROOT / "reports"

# fingerprint (runs on every repro): a digest of the real folder `dataset.root`, which DVC cannot hash
SOURCE_FINGERPRINT = Path("data/source_fingerprint.json")
# fingerprint: constant bytes, written once the input paths are found apart from every output. The one
# stage not downstream of `dataset` (checkpoint, and surgery after it) depends on it, so that DVC runs the
# check before it deletes any output (`dvc repro checkpoint` included); it never makes checkpoint re-run
INPUTS_CHECKED = Path("data/inputs_checked.json")

# dataset
DATASET = Path("data/dataset")      # the competition layout (synthetic set, or a record of the real folder)
HIDDEN = Path("data/hidden")          # hidden test soundscapes, solution, boards
INDEX = Path("data/index")            # index tables every later stage reads

# checkpoint / surgery
BACKBONE_ONNX = Path("models/backbone.onnx")
BACKBONE_JSON = Path("models/backbone.json")
PROBED_ONNX = Path("models/backbone_probed.onnx")
BLOCKS_JSON = Path("models/blocks.json")

# probe
PROBE_METRICS = Path("build/metrics/probe")  # probe.json lives inside
PROBE_SELECTED = Path("models/probe_selected.json")

# extract / train / predict / leaderboard
FEATURES = Path("data/features")
# extract's progress, kept outside its outputs (DVC deletes those before a stage runs) so that a
# killed extraction resumes: .dvc/tmp/extract-shards/<sha256 of what the features depend on>/
EXTRACT_SHARDS = Path(".dvc/tmp/extract-shards")
FEATURES_LABELLED = Path("data/features_labelled")  # labelled soundscape chunks at extract.labelled_shifts (extract_labelled)
LABELLED_SHARDS = Path(".dvc/tmp/labelled-shards")  # extract_labelled's progress (same mechanism)
SIDECAR_SHARDS = Path(".dvc/tmp/sidecar-shards")  # sidecar_features' progress (same mechanism)
HEADS = Path("models/heads")           # models/heads/<variant>/
TRAIN_METRICS = Path("build/metrics/train")  # build/metrics/train/<variant>/metrics.json
OOF = Path("predictions/oof")
BASE_OOF = OOF / "base"                # the base's and its reference head's OOF as scored (base.csv, reference.csv)
SUBMISSIONS = Path("submissions")      # submissions/<name>/
LEADERBOARD_METRICS = Path("build/metrics/leaderboard")

# Small results (metrics, tables, figures) are written under build/ by the stages that make them,
# as cached DVC outputs (so those stages keep DVC's run-cache); the cheap `paper` stage copies
# them to the git-tracked folders a reader and `dvc metrics diff` see.
FIGURES = Path("build/figures")
TABLES = Path("build/tables")
PUBLISHED = {Path("build/metrics"): Path("metrics"), FIGURES: Path("figures"), TABLES: Path("paper/tables")}

# predict / leaderboard
REPORTED = Path("paper/reported.yaml")         # the paper's numbers, one key per table
KAGGLE_SCORES = Path("leaderboard/kaggle.yaml")  # real-data mode: scores copied from Kaggle (git-tracked)
BENCHMARK_RESULTS = Path("benchmarks/results")
DEFAULT_RUN = BENCHMARK_RESULTS / "default_run.json"  # the last timed full `dvc repro` (benchmarks/default_run.py)

# surgery
ARCHITECTURE_FIGURE = FIGURES / "architecture.png"  # Figure 1, drawn from blocks.json

# ablation
ABLATION_METRICS = Path("build/metrics/ablation")  # ablation.json lives inside

# pseudo-labelling
PSEUDO = Path("data/pseudo")                      # the teacher's soft labels of the unlabelled soundscapes
PSEUDO_METRICS = Path("build/metrics/pseudo")     # summary.json (a copy of data/pseudo/summary.json)
PSEUDO_TABLE_METRICS = Path("build/metrics/pseudo_table")  # pseudo.json: the table's numbers

# the blends (submissions/<name>/ like any submission) and the v7 sweep
BLEND_METRICS = Path("build/metrics/blend")        # blend.json: each blend's resolved weights and sha256
SWEEP_METRICS = Path("build/metrics/sweep")        # sweep.json: the v7 prior/sigma grid on the OOF
# figures and paper
TRAJECTORIES_FIGURE = FIGURES / "trajectories.png"   # Figure 2
PIPELINES_FIGURE = FIGURES / "pipelines.png"         # Figure 3
FIGURES_METRICS = Path("build/metrics/figures")     # trajectories.json: Figure 2's coordinates and lengths
CLAIMS = Path("paper/claims.yaml")                  # the paper's claims, how each is tested (git-tracked, hand-written)
PAPER = Path("paper/paper.md")                      # the regenerated paper (git-tracked, written by the paper stage)
VERDICTS = Path("paper/verdicts.json")              # every claim's numbers and verdict (what paper.md shows)

# the ceiling attempts' plateau and the shake-up
CEILING_METRICS = Path("build/metrics/ceiling")    # ceiling.json: plateau curves and control partners
SHAKEUP_METRICS = Path("build/metrics/shakeup")    # shakeup.json: private - public over random splits, swaps
# the spectrogram ViT: one folder per input size, never shared between sizes
VIT_MODELS = Path("models/vit")                   # models/vit/<size>/fold_<k>.pt, config.json
VIT_METRICS = Path("build/metrics/vit")           # build/metrics/vit/<size>/metrics.json, curves/
# the BirdNET sidecar: its features (real-data mode: BirdNET over data/features' windows; default
# mode: meta.json pointing to data/features), its head, OOF, metrics and standalone submission submissions/sidecar/
SIDECAR_FEATURES = Path("data/sidecar_features")
SIDECAR_METRICS = Path("build/metrics/sidecar")   # metrics.json + DVCLive curves
# the baseline chain
SPECTROGRAMS = Path("data/spectrograms")             # windows.csv, mels.npy (float16 log-mel), spec.json
CHAIN_MODELS = Path("models/chain")                  # models/chain/<model>/: fold checkpoints + config.json
CHAIN_PREDICTIONS = Path("predictions/chain")        # predictions/chain/<model>/test.csv: test chunk probabilities
PROTOSSM_METRICS = Path("build/metrics/protossm")    # metrics.json + DVCLive curves
SED_METRICS = Path("build/metrics/sed")
BASE_METRICS = Path("build/metrics/base")            # metrics.json: base OOF and its paired bootstrap against v6's head

# Kaggle kernel bundles
MODEL_FOLDER = Path("bundles/models")   # the shared, content-addressed model folder (one Kaggle dataset)
KERNELS = Path("bundles/kernels")       # bundles/kernels/<bundle>/: the generated notebook + kernel-metadata.json
