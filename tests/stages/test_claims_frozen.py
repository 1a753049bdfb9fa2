"""paper/claims.yaml is frozen by the sha256 in paper/claims.sha256: a claim's test (its kind, source,
direction, margin) changes only in a commit that records the new hash and says why, so no verdict is
bent after its numbers are in without the change showing in the history."""
import hashlib

import pytest

from birdclef_eos.report.paper import ClaimError, check_frozen
from stages.paths import ROOT


def test_claims_match_their_recorded_sha256():
    claims, digest = ROOT / "paper/claims.yaml", ROOT / "paper/claims.sha256"
    actual = hashlib.sha256(claims.read_bytes()).hexdigest()
    recorded = digest.read_text().split()[0] if digest.exists() else "(no paper/claims.sha256)"
    assert actual == recorded, (
        f"paper/claims.yaml changed (sha256 {actual}) but paper/claims.sha256 records {recorded}. "
        "A claim's test changes only in a commit that says why: record the new hash "
        "(cd paper && sha256sum claims.yaml > claims.sha256) in the commit that changes the claims, "
        "and say in its message why the test changed.")


def test_check_frozen_refuses_an_edited_claims_file(tmp_path):
    claims, digest = tmp_path / "claims.yaml", tmp_path / "claims.sha256"
    claims.write_text("claims: []\n")
    digest.write_text(hashlib.sha256(claims.read_bytes()).hexdigest() + "  claims.yaml\n")
    assert check_frozen(claims, digest) == hashlib.sha256(b"claims: []\n").hexdigest()
    claims.write_text("claims: [bent]\n")
    with pytest.raises(ClaimError, match="says why"):
        check_frozen(claims, digest)
    digest.unlink()
    with pytest.raises(ClaimError, match="missing"):
        check_frozen(claims, digest)
