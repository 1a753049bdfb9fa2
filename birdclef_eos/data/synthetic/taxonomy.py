"""Taxonomy of the synthetic set: species names, labels, and genus/species call templates.

Species sit in genera; each genus has a call template (FM sweep, trill, harmonic stack, vibrato
whistle, insect buzz, frog pulse train) and each species perturbs its genus template, so that
congeners are confusable.

Determinism: every item (taxonomy, one recording, one soundscape) draws from its own
``numpy.random.Generator`` seeded by ``(seed, stream, index)`` (``rng_for``), so serial and
parallel runs write the same bytes.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

# random streams: one per kind of item, so adding soundscapes never changes recordings
TAXONOMY, RECORDING, SOUNDSCAPE, LAYOUT = 0, 1, 2, 3

CLASS_TEMPLATES = {
    "Aves": ["fm_sweep", "trill", "harmonic_stack", "vibrato_whistle"],
    "Amphibia": ["frog_pulse_train", "frog_pulse_train", "trill"],
    "Insecta": ["insect_buzz", "insect_buzz", "trill"],
}
COMMON_NOUNS = {
    "Aves": ["Antbird", "Tanager", "Flycatcher", "Wren", "Thornbird", "Seedeater", "Woodcreeper",
             "Tyrannulet", "Spinetail", "Parakeet", "Dove", "Cuckoo", "Nightjar", "Kingbird"],
    "Amphibia": ["Treefrog", "Toad", "Frog", "Leaf Frog", "Chorus Frog"],
    "Insecta": ["Katydid", "Cricket", "Cicada", "Bush Cricket"],
}
ADJECTIVES = ["Rufous", "Pale", "Spotted", "Lesser", "Greater", "Chaco", "Pantanal", "Olive",
              "Dusky", "Striped", "Golden", "Ashy", "Masked", "Little", "Plain", "Banded",
              "Scaled", "Crested", "Sooty", "Grey", "White-bellied", "Black-throated", "Marsh",
              "Forest", "Common", "Short-tailed", "Long-billed", "Yellow", "Ochre", "Chestnut"]
SYLLABLES = ["tha", "mno", "phi", "lus", "cra", "nio", "lep", "ido", "syn", "all", "axi", "pyr",
             "rho", "hyl", "odo", "bra", "chy", "sci", "nax", "pse", "udi", "bol", "mar", "tor"]
EPITHET_ENDS = ["ensis", "atus", "ata", "icus", "ipes", "us", "ii", "ura", "ops", "alis"]
GENUS_ENDS = ["us", "a", "ops", "ix", "ella", "oides", "ornis", "ila"]


def rng_for(seed: int, stream: int, index: int = 0) -> np.random.Generator:
    """The random stream of one item: ``stream`` is one of the constants above."""
    return np.random.default_rng([int(seed), stream, index])


def _latin(rng: np.random.Generator, ends: list[str], n_syl: int) -> str:
    return "".join(rng.choice(SYLLABLES, n_syl)) + str(rng.choice(ends))


def _genus_template(kind: str, cls: str, rng: np.random.Generator) -> dict:
    """Call parameters shared by a genus. Frequencies in Hz, durations in s, rates in Hz."""
    u = rng.uniform
    t = dict(kind=kind, f_start=0.0, f_end=0.0, note_s=0.2, n_notes=1, gap_s=0.1, vib_rate=0.0,
             vib_depth=0.0, am_rate=0.0, am_depth=0.0, am_sharp=1.0, n_harm=1, harm_decay=0.5)
    if kind == "fm_sweep":
        f = u(1500, 6000)
        t.update(f_start=f, f_end=f * u(0.45, 1.9), note_s=u(0.08, 0.35), n_notes=int(rng.integers(2, 6)),
                 gap_s=u(0.05, 0.25), n_harm=int(rng.integers(1, 3)), harm_decay=u(0.2, 0.5))
    elif kind == "trill":
        f = {"Aves": u(2500, 7000), "Amphibia": u(900, 2500), "Insecta": u(4500, 9000)}[cls]
        t.update(f_start=f * u(1.0, 1.15), f_end=f * u(0.85, 1.0), note_s=u(0.6, 1.6), n_notes=int(rng.integers(1, 3)),
                 gap_s=u(0.2, 0.5), am_rate=u(8, 28), am_depth=u(0.8, 1.0), am_sharp=u(1.5, 4),
                 n_harm=int(rng.integers(1, 3)), harm_decay=u(0.2, 0.4))
    elif kind == "harmonic_stack":
        f = u(500, 1600)
        t.update(f_start=f, f_end=f * u(0.85, 1.2), note_s=u(0.15, 0.5), n_notes=int(rng.integers(1, 5)),
                 gap_s=u(0.1, 0.3), n_harm=int(rng.integers(4, 9)), harm_decay=u(0.6, 0.9))
    elif kind == "vibrato_whistle":
        f = u(1800, 5000)
        t.update(f_start=f, f_end=f * u(0.8, 1.25), note_s=u(0.4, 1.2), n_notes=int(rng.integers(1, 4)),
                 gap_s=u(0.15, 0.4), vib_rate=u(4, 30), vib_depth=u(0.02, 0.08), n_harm=1)
    elif kind == "insect_buzz":
        f = u(3500, 10000)
        t.update(f_start=f, f_end=f * u(0.97, 1.03), note_s=u(0.8, 2.5), n_notes=int(rng.integers(1, 3)),
                 gap_s=u(0.2, 0.8), am_rate=u(30, 160), am_depth=u(0.6, 1.0), am_sharp=u(1, 3),
                 n_harm=int(rng.integers(1, 4)), harm_decay=u(0.3, 0.7))
    elif kind == "frog_pulse_train":
        f = u(300, 1800)
        t.update(f_start=f, f_end=f * u(0.92, 1.08), note_s=u(0.2, 1.0), n_notes=int(rng.integers(1, 5)),
                 gap_s=u(0.15, 0.6), am_rate=u(5, 45), am_depth=1.0, am_sharp=u(2, 6),
                 n_harm=int(rng.integers(2, 6)), harm_decay=u(0.4, 0.8))
    return t


def _species_template(genus_t: dict, rng: np.random.Generator, spread: float) -> dict:
    """A species: its genus template perturbed by ``spread`` (log-normal, relative)."""
    s = dict(genus_t)
    shift = math.exp(rng.normal(0, spread))
    s["f_start"] *= shift * math.exp(rng.normal(0, spread / 2))
    s["f_end"] *= shift * math.exp(rng.normal(0, spread / 2))
    for k in ("note_s", "gap_s", "vib_rate", "am_rate"):
        s[k] *= math.exp(rng.normal(0, 1.5 * spread))
    s["vib_depth"] *= math.exp(rng.normal(0, spread))
    s["harm_decay"] = float(np.clip(s["harm_decay"] + rng.normal(0, spread), 0.1, 0.95))
    s["n_harm"] = max(1, s["n_harm"] + int(rng.integers(-1, 2)))
    s["n_notes"] = max(1, s["n_notes"] + int(rng.integers(-1, 2)))
    return s


def _ebird_code(common: str, taken: set[str]) -> str:
    words = [w for w in common.replace("-", " ").lower().split() if w.isalpha()]
    stem = (words[0][:3] + "".join(w[:3] for w in words[1:]))[:6] if len(words) > 1 else words[0][:6]
    n = 1
    while f"{stem}{n}" in taken:
        n += 1
    return f"{stem}{n}"


def make_taxonomy(seed: int, n_genera: int, n_species: int, class_shares: dict[str, float],
                  species_spread: float) -> tuple[pd.DataFrame, dict[str, dict]]:
    """(taxonomy table in the competition's columns, sorted by label; {label: call template})."""
    if n_species < n_genera:
        raise ValueError(f"dataset size: species ({n_species}) must be >= genera ({n_genera})")
    rng = rng_for(seed, TAXONOMY)
    classes = list(class_shares)
    counts = np.round(np.array([class_shares[c] for c in classes]) * n_genera).astype(int)
    if n_genera >= len(classes):  # every class present, even in the smoke size
        counts = np.maximum(counts, 1)
    counts[int(np.argmax(counts))] += n_genera - counts.sum()
    genus_class = [c for c, k in zip(classes, counts) for _ in range(k)]
    sizes = np.ones(n_genera, dtype=int)  # every genus has one member, the rest spread unevenly
    weights = rng.dirichlet(np.full(n_genera, 0.8))
    np.add.at(sizes, rng.choice(n_genera, n_species - n_genera, p=weights), 1)
    rows, templates, taken, genera, inat, binomials = [], {}, set(), set(), set(), {}
    sonotype = 0
    for g, (cls, size) in enumerate(zip(genus_class, sizes)):
        while (genus := _latin(rng, GENUS_ENDS, 2).capitalize()) in genera:
            pass
        genera.add(genus)
        noun = str(rng.choice(COMMON_NOUNS[cls]))
        genus_t = _genus_template(str(rng.choice(CLASS_TEMPLATES[cls])), cls, rng)
        adjectives = rng.choice(ADJECTIVES, size, replace=False)
        for adj in adjectives:
            while (taxon := int(rng.integers(100_000, 1_500_000))) in inat:
                pass
            inat.add(taxon)
            while (epithet := _latin(rng, EPITHET_ENDS, 1)) in binomials.get(genus, set()):
                pass
            binomials.setdefault(genus, set()).add(epithet)
            common = f"{adj} {genus} {noun}" if cls != "Aves" else f"{adj} {noun}"
            if cls == "Aves":
                label = _ebird_code(f"{adj} {genus} {noun}", taken)
            elif cls == "Insecta" and g % 2 == 0:  # sonotypes, as in the competition
                sonotype += 1
                label = f"47158son{sonotype:02d}"
            else:
                label = str(taxon)
            taken.add(label)
            rows.append(dict(primary_label=label, inat_taxon_id=taxon,
                             scientific_name=f"{genus} {epithet}", common_name=common, class_name=cls))
            templates[label] = _species_template(genus_t, rng, species_spread)
    taxonomy = pd.DataFrame(rows).sort_values("primary_label", kind="stable").reset_index(drop=True)
    return taxonomy, templates
