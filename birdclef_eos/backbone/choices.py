"""The words the backbone code accepts for its knobs, written once: the code that implements each
(runner.py, perch.py, frontend.py) and the typed config (config.py, birdclef_eos/io/runtime_config.py)
both import them from here.

Why a module of its own: runner.py and frontend.py ship inside the Kaggle model folder (bundle/infer.py's
import closure), where pydantic may not be imported, and they import numpy and onnx, which
stages/schema.py (loaded by every stage) must not. So this module imports nothing: it ships with them
and costs the schema nothing.

birdclef_eos/backbone/tflite_to_onnx.py keeps its own ``DFT_METHODS``: its bytes are part of BirdNET's
conversion cache key (birdnet.py ``conversion_key``), so editing it would convert BirdNET again under a
new key; a test holds that it accepts exactly ``DFT_METHODS`` here.
"""

CHUNK_MAPPINGS = ("center", "mean")  # BirdNET's 3-s window at the 5-s chunk's centre | the mean over its windows
PERCH_FORMATS = ("onnx", "onnx_no_dft", "saved_model")  # Perch v2 as ONNX with its DFT op | without | Kaggle's SavedModel
FRONTENDS = ("auto", "dft", "graph")  # where the DFT runs (auto: dft when the graph has one, else graph), or tensor:<name>
DFT_METHODS = ("factored64", "matmul64", "factored32", "matmul32")  # how the TFLite-to-ONNX rewrite computes the DFT

# runtime.provider: the onnxruntime execution providers (tried in order) of each word, and the
# PyTorch route's device of each (birdclef_eos/backbone/torch_route.py)
PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
TORCH_PROVIDERS = {"torch-cpu": "cpu", "torch-cuda": "cuda"}
