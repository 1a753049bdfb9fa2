"""The bundle kinds by name (bundle/kinds.py, read by the params schema) are the kinds the kernel
runs (bundle/infer.py KINDS)."""
from birdclef_eos.bundle import infer, kinds


def test_kind_names_are_the_kernel_kinds():
    assert set(kinds.KINDS) == set(infer.KINDS)
    assert not set(kinds.BUNDLE_KINDS) & set(kinds.PART_KINDS)

