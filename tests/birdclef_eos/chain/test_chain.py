import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from birdclef_eos.chain import protossm as pssm
from birdclef_eos.chain import sed
from birdclef_eos.chain.sequences import SequenceError, file_index


def test_protossm_shapes_and_parameter_count():
    c = pssm.ProtoSSMConfig(d_input=1024, n_classes=48)
    m = pssm.ProtoSSM(c)
    out = m(torch.randn(2, 12, 1024), torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.long))
    assert out.shape == (2, 12, 48)
    assert pssm.n_params(m) == 567_793  # the default run's model (BirdNET 1024-d, 48 classes)
    assert torch.isclose(F.softplus(m.temperature), torch.tensor(5.0))


def test_bidirectional_merge_on_a_sequence_and_its_reverse():
    torch.manual_seed(0)
    layer = pssm.BiSSMLayer(8, 4, 4, 0.0).eval()
    layer.bwd.load_state_dict(layer.fwd.state_dict())  # the same scan both ways
    x = torch.randn(1, 6, 8)
    hf, hb = layer.directions(x)
    rf, rb = layer.directions(x.flip(1))
    # the backward pass of x is the forward pass of reversed x, flipped back
    assert torch.allclose(hb, rf.flip(1), atol=1e-6) and torch.allclose(rb, hf.flip(1), atol=1e-6)
    # forward scan is causal: changing the last step leaves earlier outputs alone
    y = x.clone()
    y[:, -1] += 1
    assert torch.allclose(layer.fwd(y)[:, :-1], hf[:, :-1], atol=1e-6)


def test_prototypes_start_at_the_class_means():
    torch.manual_seed(0)
    m = pssm.ProtoSSM(pssm.ProtoSSMConfig(d_input=5, n_classes=3, d_model=4))
    emb = torch.randn(10, 5)
    y = torch.zeros(10, 3)
    y[:4, 0] = 1
    y[4:, 1] = 1  # class 2 has no positive: keeps its random start
    before = m.prototypes[2].clone()
    m.init_prototypes(emb, y)
    m.eval()
    h = m.input_proj(emb).detach()
    assert torch.allclose(m.prototypes[0], F.normalize(h[:4].mean(0), dim=0), atol=1e-6)
    assert torch.allclose(m.prototypes[1], F.normalize(h[4:].mean(0), dim=0), atol=1e-6)
    assert torch.equal(m.prototypes[2], before)


def test_sed_shapes_score_and_parameter_count():
    m = sed.SED(sed.SEDConfig(n_classes=48, d_distill=1024, stem=8, widths=[16, 24, 32, 48],
                              strides=[2, 2, 2, 1], expand=2, head=128)).eval()
    out = m(torch.randn(3, 64, 201))
    assert out["clip"].shape == (3, 48) and out["frame"].shape[::2] == (3, 48) and out["distill"].shape == (3, 1024)
    s = sed.score(out)
    assert s.shape == (3, 48) and bool(((s >= 0) & (s <= 1)).all())
    assert sed.n_params(m) == 164_860  # the default run's SED


def test_file_index_names_a_missing_chunk():
    rows = pd.DataFrame({"file_id": ["f", "f", "g"], "chunk": [1, 0, 1]})
    with pytest.raises(SequenceError, match="file g lacks chunk 0"):
        file_index(rows)
    files, pos = file_index(pd.DataFrame({"file_id": ["f", "f"], "chunk": [1, 0]}))
    assert files == ["f"] and pos.tolist() == [[1, 0]]
