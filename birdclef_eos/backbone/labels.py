"""The backbone's classes read as the competition's: which logit columns a later stage needs.

A backbone predicts its own label set (BirdNET V2.4: 6,522 "Genus species_Common name" labels;
Perch v2: 14,795). At real scale those logits dominate the feature store, and a later stage reads
only the competition's classes: each is taken from the backbone class of the same scientific name,
else from the maximum over the backbone classes of its genus (the public chain's "genus max" for
unmatched classes), else it has no source.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LogitMap:
    """How K competition classes are read from L backbone logits.

    source: K entries, "species" | "genus" | "none"; columns: K lists of backbone column indices
    (one for "species", the genus's columns for "genus", empty for "none")."""
    source: list[str]
    columns: list[list[int]]

    def counts(self) -> dict[str, int]:
        return {s: self.source.count(s) for s in ("species", "genus", "none")}


def scientific_name(label: str) -> str:
    """BirdNET's "Genus species_Common name" -> "Genus species" (other labels: unchanged)."""
    return label.split("_", 1)[0].strip()


def genus_of(name: str) -> str:
    return name.split(" ", 1)[0].strip().lower()


def competition_map(backbone_classes: list[str], scientific_names: list[str]) -> LogitMap:
    """Match the competition's scientific names (species.csv order) to the backbone's labels."""
    by_species: dict[str, int] = {}
    by_genus: dict[str, list[int]] = {}
    for i, label in enumerate(backbone_classes):
        name = scientific_name(label)
        by_species.setdefault(name.lower(), i)
        if " " in name:
            by_genus.setdefault(genus_of(name), []).append(i)
    source, columns = [], []
    for name in scientific_names:
        if name.lower() in by_species:
            source.append("species")
            columns.append([by_species[name.lower()]])
        elif genus_of(name) in by_genus:
            source.append("genus")
            columns.append(by_genus[genus_of(name)])
        else:
            source.append("none")
            columns.append([])
    return LogitMap(source=source, columns=columns)


def select_logits(logits: np.ndarray, mapping: LogitMap) -> np.ndarray:
    """[N, L] backbone logits -> [N, K] competition logits (a class with no source reads 0)."""
    logits = np.asarray(logits)
    out = np.zeros((len(logits), len(mapping.columns)), np.float32)
    for k, cols in enumerate(mapping.columns):
        if cols:
            out[:, k] = logits[:, cols].max(axis=1)
    return out
