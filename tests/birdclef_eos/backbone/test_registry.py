"""The backbone registry: every entry names a module that builds it, its spec agrees with what the
builders write, and it stays importable without the heavy libraries (every stage loads it)."""
import importlib
import subprocess
import sys

import pytest

from birdclef_eos.backbone import birdnet, registry, surgery
from birdclef_eos.backbone.perch_tiny import export_perch_tiny
from birdclef_eos.backbone.registry import BACKBONES, SIDECAR_BACKBONE


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_entry_names_a_module_with_a_builder(name):
    spec = BACKBONES[name]
    assert spec.name == name
    assert callable(importlib.import_module(spec.module).build)
    assert registry.builder(name) is importlib.import_module(spec.module).build
    assert spec.block_rule is None or spec.block_rule in surgery.SCOPE_RULES
    assert spec.window_samples > 0 and spec.sample_rate > 0


def test_unknown_name_says_which_knob_and_the_known_ones():
    with pytest.raises(registry.BackboneRegistryError, match=r"params.yaml backbone.name: unknown backbone 'perch_v3'.*birdnet_v24"):
        registry.builder("perch_v3")


def test_only_the_sidecar_model_skips_the_sidecar_extraction():
    assert [n for n, s in BACKBONES.items() if not s.sidecar_extraction] == [SIDECAR_BACKBONE]
    assert [n for n, s in BACKBONES.items() if s.paper_blocks] == ["perch_v2"]


def test_knob_sections_are_the_backbone_params():
    assert registry.knob_sections() == ("backbone.birdnet", "backbone.perch_v2", "backbone.perch_tiny")


def test_birdnet_spec_is_the_registry_entry():
    assert birdnet.runner_spec(["a", "b"]) == {
        "input_name": "INPUT", "sample_rate": 48_000, "window_samples": 144_000, "normalisation": "none",
        "logits_output": "Identity", "embedding_output": "embedding", "classes": ["a", "b"]}


def test_perch_tiny_writes_the_spec_and_graph_its_entry_describes(tmp_path):
    import onnx

    spec = export_perch_tiny(tmp_path / "tiny.onnx", seed=0, width_multiplier=0.25, n_classes=4)
    assert spec == BACKBONES["perch_tiny"].io([f"perch_tiny_{i:03d}" for i in range(4)])
    model = onnx.load(str(tmp_path / "tiny.onnx"))
    assert [i.name for i in model.graph.input] == [spec["input_name"]]
    assert {spec["logits_output"], spec["embedding_output"]} <= {o.name for o in model.graph.output}
    rule, blocks = surgery.find_blocks(model)
    assert rule == BACKBONES["perch_tiny"].block_rule and blocks


def test_registry_imports_only_the_standard_library():
    code = ("import sys; import birdclef_eos.backbone.registry, birdclef_eos.heads.registry, "
            "birdclef_eos.bundle.kinds; print(sorted(m for m in ('numpy', 'torch', 'onnx', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
