"""Datasets: ImageFolder trees and manifest CSVs -> labelled samples, snapshot ids, splits.

A *snapshot id* is the sha256 of the sorted (image sha256, label, split) triples, so
it names exactly which image bytes with which labels a model saw; renaming files
does not change it, relabelling or adding/removing an image does.

numpy + Pillow only (no torch): evaluation and the web app read datasets too.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ml_core.imaging import decode_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")
SPLITS = ("train", "val", "test")
MANIFEST_NAME = "manifest.csv"
PROVENANCE_NAME = "provenance.csv"


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str
    split: str | None = None  # train | val | test, or None when the source has no split
    sha256: str = ""


@dataclass
class Dataset:
    root: Path
    classes: list[str]  # sorted: the class index order every model trained on it uses
    samples: list[Sample]

    @property
    def manifest_sha256(self) -> str:
        return manifest_hash(self.samples)

    def split(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.split == name]

    def class_counts(self, split: str | None = None) -> dict[str, int]:
        counts = Counter(s.label for s in self.samples if split is None or s.split == split)
        return {c: counts.get(c, 0) for c in self.classes}


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def manifest_hash(samples: Iterable[Sample]) -> str:
    """Dataset snapshot id: sha256 over the sorted 'sha256,label,split' lines."""
    lines = sorted(f"{s.sha256 or file_sha256(s.path)},{s.label},{s.split or ''}" for s in samples)
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_image_folder(root: str | Path, *, split: str | None = None) -> list[Sample]:
    """``root/<CLASS>/*`` or ``root/<split>/<CLASS>/*`` -> samples (sha256 computed from the files)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no dataset folder at {root}")
    subdirs = _class_dirs(root)
    if split is None and subdirs and {d.name for d in subdirs} <= set(SPLITS):
        return [s for d in subdirs for s in read_image_folder(d, split=d.name)]
    samples = [
        Sample(path=p, label=d.name, split=split, sha256=file_sha256(p))
        for d in subdirs
        for p in sorted(d.iterdir())
        if _is_image(p)
    ]
    return samples


def read_manifest(csv_path: str | Path, root: str | Path | None = None) -> list[Sample]:
    """Manifest CSV with columns path (or relative_path), label, [split], [sha256]."""
    csv_path = Path(csv_path)
    root = Path(root) if root is not None else csv_path.parent
    samples = []
    with open(csv_path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            rel = row.get("relative_path") or row.get("path")
            if not rel or not row.get("label"):
                raise ValueError(f"{csv_path}: every row needs path/relative_path and label")
            path = root / rel
            samples.append(
                Sample(path=path, label=row["label"], split=row.get("split") or None, sha256=row.get("sha256") or "")
            )
    return samples


def load_dataset(source: str | Path, *, verify: bool = False) -> Dataset:
    """A dataset from a folder (uses its manifest.csv when present) or a manifest CSV file.

    ``verify`` re-hashes every file listed in a manifest (slow on big sets; catches edits).
    """
    source = Path(source)
    if source.is_file():
        samples, root = read_manifest(source), source.parent
    elif (source / MANIFEST_NAME).is_file():
        samples, root = read_manifest(source / MANIFEST_NAME), source
    else:
        samples, root = read_image_folder(source), source
    if not samples:
        raise ValueError(f"no images found in {source}")
    filled = []
    for s in samples:
        actual = file_sha256(s.path) if (verify or not s.sha256) else s.sha256
        if verify and s.sha256 and actual != s.sha256:
            raise ValueError(f"{s.path} does not match its manifest sha256")
        filled.append(replace(s, sha256=actual))
    return Dataset(root=root, classes=sorted({s.label for s in filled}), samples=filled)


def deduplicate(samples: Sequence[Sample]) -> list[Sample]:
    """One sample per sha256; identical bytes under different labels are dropped entirely."""
    by_hash: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_hash[s.sha256 or file_sha256(s.path)].append(s)
    kept = []
    for digest, group in by_hash.items():
        if len({s.label for s in group}) == 1:
            kept.append(replace(group[0], sha256=digest))
    return sorted(kept, key=lambda s: s.sha256)


def stratified_split(
    samples: Sequence[Sample],
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> list[Sample]:
    """Deduplicate, then assign train/val/test per class with a seeded shuffle.

    Deterministic: the order is fixed by sha256 before shuffling, so the same files
    and seed always give the same split whatever order the filesystem lists them in.
    """
    if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[Sample]] = defaultdict(list)
    for s in deduplicate(samples):
        by_class[s.label].append(s)
    out: list[Sample] = []
    for label in sorted(by_class):
        group = by_class[label]
        order = rng.permutation(len(group))
        n_val = int(round(fractions[1] * len(group)))
        n_test = int(round(fractions[2] * len(group)))
        n_train = len(group) - n_val - n_test
        for rank, idx in enumerate(order):
            split = "train" if rank < n_train else ("val" if rank < n_train + n_val else "test")
            out.append(replace(group[idx], split=split))
    return out


def ensure_splits(dataset: Dataset, seed: int = 0) -> Dataset:
    """The dataset's own train/val/test split when it has one, else a seeded stratified split."""
    if {s.split for s in dataset.samples} >= {"train", "val"}:
        return dataset
    return Dataset(root=dataset.root, classes=dataset.classes, samples=stratified_split(dataset.samples, seed=seed))


def load_pixels(path: str | Path) -> np.ndarray:
    """uint8 greyscale pixels of a PNG/JPEG/DICOM file (the same decoder as uploads use)."""
    return decode_image(Path(path).read_bytes(), min_side=8).pixels


def load_all_pixels(samples: Sequence[Sample]) -> list[np.ndarray]:
    return [load_pixels(s.path) for s in samples]


def find_provenance(root: str | Path, levels: int = 2) -> Path | None:
    """provenance.csv in ``root`` or up to ``levels`` parents (``cxr/test`` finds ``cxr/provenance.csv``)."""
    folder = Path(root).resolve()
    for candidate in [folder, *folder.parents][: levels + 1]:
        if (candidate / PROVENANCE_NAME).is_file():
            return candidate / PROVENANCE_NAME
    return None


def sample_sources(root: str | Path, samples: Sequence[Sample]) -> list[str] | None:
    """The provenance ``source_dataset`` of each sample, or None when there is no provenance.csv."""
    path = find_provenance(root)
    if path is None:
        return None
    with open(path, newline="", encoding="utf-8") as fh:
        rows = {row["relative_path"]: row for row in csv.DictReader(fh)}
    sources = []
    for s in samples:
        try:
            rel = s.path.resolve().relative_to(path.parent).as_posix()
        except ValueError:
            rel = ""
        sources.append(rows.get(rel, {}).get("source_dataset", "unknown"))
    return sources


def cell_weights(base_cells: Sequence[Hashable], all_cells: Sequence[Hashable]) -> np.ndarray:
    """Sampling weights for ``all_cells`` (one cell key per sample, e.g. (source, class)) so
    that each cell carries the share it has in ``base_cells``.

    ``base_cells`` are the keys of the base training set (a prefix or subset of what is
    drawn from). Draws then keep the base set's mix of sources and classes while using
    every image of a larger, unbalanced pool. A cell that only the pool has keeps its
    natural share (its count over the pool's size).
    """
    if not all_cells:
        return np.zeros(0, dtype=np.float64)
    base_counts, all_counts = Counter(base_cells), Counter(all_cells)
    n_base, n_all = max(1, len(base_cells)), len(all_cells)
    share = {
        cell: (base_counts[cell] / n_base if cell in base_counts else count / n_all)
        for cell, count in all_counts.items()
    }
    weights = np.array([share[c] / all_counts[c] for c in all_cells], dtype=np.float64)
    return weights / weights.sum()
