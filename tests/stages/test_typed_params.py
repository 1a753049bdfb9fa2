"""Each stage that reads typed params gets them from exactly what it declares (stages.params hands a
stage only its PARAMS plus `runtime`): the shipped params.yaml types into the stage's ``Params``,
every value equal to the file's, and a typed ``Params`` passes through untouched."""
from __future__ import annotations

import copy
import importlib

import pytest

from birdclef_eos.audio.config import ExtractParams, LabelledExtract, SpectrogramParams
from birdclef_eos.backbone.config import SidecarExtract
from birdclef_eos.backbone.surgery_config import SurgeryParams
from birdclef_eos.bundle.config import Bundle, KaggleParams
from birdclef_eos.chain.base_config import ChainParams
from birdclef_eos.chain.config import ProtoSSMParams, SEDParams
from birdclef_eos.data.config import DatasetParams
from birdclef_eos.heads.config import (HeadFolds, HeadModel, PseudoLabels, PseudoTeacher, SidecarHead, Student,
                                       TrainOptim, TrainParams, VitParams)
from birdclef_eos.io.runtime_config import RuntimeParams
from birdclef_eos.probe.config import AblationParams
from birdclef_eos.report.leaderboard_config import LeaderboardParams
from birdclef_eos.report.paper_config import PaperParams
from birdclef_eos.report.pipelines_config import Pipelines
from birdclef_eos.report.pseudo_table_config import PseudoTableParams
from birdclef_eos.report.trajectories_config import Trajectories
from birdclef_eos.scoring.blend_config import BlendEntry, BlendShared
from birdclef_eos.scoring.ceiling_config import CeilingParams
from birdclef_eos.scoring.postprocess_config import Postprocess
from birdclef_eos.scoring.shakeup_config import ShakeupParams
from birdclef_eos.scoring.submission_config import Submission
from birdclef_eos.scoring.sweep_config import SweepParams
from stages import schema
from stages.params import RUNTIME, declared, pick, put
from tests.stages.test_schema import SHIPPED
from tests.stages.test_schema_models import assert_as_written


def handed(stage: str, key: str | None = None) -> dict:
    """What stages.params.stage_params gives the stage, without the file and pipeline checks."""
    out: dict = {}
    for dotted in declared(stage, key):
        put(out, dotted, pick(SHIPPED, dotted, "params.yaml"))
    out[RUNTIME] = SHIPPED[RUNTIME]
    return copy.deepcopy(out)  # a test may spoil it


@pytest.mark.parametrize("stage,key", [("protossm", None), ("train", "attn"), ("train", "abl_last3"),
                                       ("student", "pseudo_fold"), ("sidecar", None), ("sed", None),
                                       ("vit", "224")])
def test_a_stage_types_what_it_is_handed(stage, key):
    module = importlib.import_module(f"stages.{stage}")
    typed = module.Params.of(handed(stage, key))
    assert module.Params.of(typed) is typed
    if stage == "protossm":
        assert isinstance(typed.protossm, ProtoSSMParams)
        assert typed.protossm.model_dump() == SHIPPED["base"]["protossm"]
        assert (typed.n_folds, typed.fold_salt) == (SHIPPED["train"]["n_folds"], SHIPPED["train"]["fold_salt"])
        assert typed.runtime.model_dump() == SHIPPED[RUNTIME]
    elif stage == "train":
        assert isinstance(typed.train, TrainParams) and isinstance(typed.train.model, HeadModel)
        assert list(typed.train.variants) == [key]
        assert typed.train.model_dump(exclude_unset=True) == {**SHIPPED["train"],
                                                              "variants": {key: SHIPPED["train"]["variants"][key]}}
    elif stage == "student":
        assert isinstance(typed.folds, HeadFolds) and isinstance(typed.optim, TrainOptim)
        assert typed.optim.model_dump() == SHIPPED["train"]["optim"]
        assert typed.folds.model_dump() == {k: SHIPPED["train"][k] for k in HeadFolds.model_fields}
        assert typed.pseudo.model_dump() == {k: SHIPPED["pseudo"][k] for k in PseudoLabels.model_fields}
        assert list(typed.students) == [key] and isinstance(typed.students[key], Student)
        assert typed.students[key].model_dump(exclude_unset=True) == SHIPPED["students"][key]
    elif stage == "vit":
        assert isinstance(typed.vit, VitParams) and list(typed.vit.sizes) == [key]
        assert typed.vit.model_dump() == {**SHIPPED["vit"], "sizes": {key: SHIPPED["vit"]["sizes"][key]}}
        assert (typed.n_folds, typed.secondary_weight) == (SHIPPED["train"]["n_folds"], SHIPPED["train"]["secondary_weight"])
    elif stage == "sed":
        assert isinstance(typed.sed, SEDParams) and typed.sed.model_dump() == SHIPPED["base"]["sed"]
        assert typed.fold_salt == SHIPPED["train"]["fold_salt"]
    else:
        assert isinstance(typed.head, SidecarHead) and isinstance(typed.folds, HeadFolds)
        assert typed.head.model_dump(exclude_unset=True) == SHIPPED["sidecar"]["head"]


def test_a_bad_value_handed_to_a_stage_directly_is_refused_naming_the_field():
    params = handed("protossm")
    params["base"]["protossm"]["d_model"] = 0
    from stages import protossm
    with pytest.raises(ValueError, match=r"d_model\n.*greater than or equal to 1"):
        protossm.Params.of(params)


# The stages that type their section at the top of ``run`` (no ``Params``): what each types, out of
# exactly what it is handed, and where that sits in params.yaml.
TYPED_IN_RUN = [
    ("submit", None, lambda p: Postprocess.model_validate(p["postprocess"]), "postprocess"),
    ("submit", None, lambda p: Submission.model_validate(p["submissions"]["v7"]), "submissions.v7"),
    ("predict", "v6", lambda p: Submission.model_validate(p["submissions"]["v6"]), "submissions.v6"),
    ("base", None, lambda p: ChainParams.pick(p["base"]), "base"),
    ("base", None, lambda p: Postprocess.model_validate(p["postprocess"]), "postprocess"),
    ("blend", None, lambda p: BlendShared.model_validate(p["blend"]), "blend"),
    ("blend", None, lambda p: BlendEntry.model_validate(p["blends"]["eos10"]), "blends.eos10"),
    ("blend", None, lambda p: Submission.model_validate(p["submissions"]["v6"]), "submissions.v6"),
    ("leaderboard", None, lambda p: LeaderboardParams.model_validate(p["leaderboard"]), "leaderboard"),
    ("paper", None, lambda p: PaperParams.model_validate(p["paper"]), "paper"),
    ("leaderboard", None, lambda p: ShakeupParams.model_validate(p["shakeup"]), "shakeup"),
    ("blend", None, lambda p: Pipelines.model_validate(p["figures"]["pipelines"]), "figures.pipelines"),
    ("surgery", None, lambda p: SurgeryParams.model_validate(p["surgery"]), "surgery"),
    ("bundle", None, lambda p: KaggleParams.model_validate(p["kaggle"]), "kaggle"),
    ("bundle", None, lambda p: Bundle.model_validate(p["bundles"]["eos7"]), "bundles.eos7"),
    ("model_folder", None, lambda p: KaggleParams.model_validate(p["kaggle"]), "kaggle"),
    ("dataset", None, lambda p: DatasetParams.model_validate(p["dataset"]), "dataset"),
    ("extract", None, lambda p: ExtractParams.model_validate(p["extract"]), "extract"),
    ("extract_labelled", None, lambda p: LabelledExtract.pick(p["extract"]), "extract"),
    ("spectrogram", None, lambda p: SpectrogramParams.model_validate(p["spectrogram"]), "spectrogram"),
    ("sidecar_features", None, lambda p: SidecarExtract.model_validate(p["sidecar"]["extract"]), "sidecar.extract"),
    ("pseudo", None, lambda p: PseudoTeacher.pick(p["pseudo"]), "pseudo"),
    ("sweep", None, lambda p: SweepParams.model_validate(p["sweep"]), "sweep"),
    ("ablation", None, lambda p: AblationParams.model_validate(p["ablation"]), "ablation"),
    ("ceiling", None, lambda p: CeilingParams.model_validate(p["ceiling"]), "ceiling"),
    ("figures", None, lambda p: Trajectories.model_validate(p["figures"]["trajectories"]), "figures.trajectories"),
    ("pseudo_table", None, lambda p: PseudoTableParams.model_validate(p["pseudo_table"]), "pseudo_table"),
    *[(stage, None, lambda p: RuntimeParams.model_validate(p["runtime"]), "runtime")
      for stage in ("extract", "extract_labelled", "sidecar_features", "model_folder")],
]


@pytest.mark.parametrize("stage,key,typed_of,where", TYPED_IN_RUN, ids=[f"{t[0]}:{t[3]}" for t in TYPED_IN_RUN])
def test_a_stage_typing_in_run_types_what_it_is_handed_as_written(stage, key, typed_of, where):
    params = handed(stage, key)
    typed = typed_of(params)
    raw = schema.get(SHIPPED, where)
    fields = {f.alias or n for n, f in type(typed).model_fields.items()}
    assert_as_written(typed.model_dump(exclude_unset=True, by_alias=True),
                      {k: raw[k] for k in schema.get(params, where) if k in fields}, where, ordered=False)
