"""Dataset reading, snapshot hashes and splits (synthetic images only)."""

from __future__ import annotations

import csv
from collections import Counter

import pytest

from ml_core.data import (
    Sample,
    deduplicate,
    ensure_splits,
    load_dataset,
    manifest_hash,
    read_image_folder,
    read_manifest,
    sample_sources,
    stratified_split,
)
from ml_core.imaging import encode_png
from ml_core.testing import make_tiny_imagefolder, make_xray_like_pixels


@pytest.fixture()
def folder(tmp_path):
    return make_tiny_imagefolder(tmp_path / "data", per_split={"train": 4, "val": 2, "test": 2}, size=64)


def test_image_folder_with_splits_reads_classes_and_splits(folder):
    ds = load_dataset(folder)
    assert ds.classes == ["COVID-19", "NORMAL", "PNEUMONIA"]
    assert ds.class_counts("train") == {"COVID-19": 4, "NORMAL": 4, "PNEUMONIA": 4}
    assert len(ds.split("test")) == 6 and all(len(s.sha256) == 64 for s in ds.samples)


def test_manifest_hash_is_stable_and_changes_with_a_label(folder, tmp_path):
    samples = read_image_folder(folder)
    first = manifest_hash(samples)
    assert manifest_hash(list(reversed(samples))) == first  # order-independent
    assert manifest_hash(read_image_folder(folder)) == first  # re-read: same snapshot
    relabelled = [Sample(s.path, "NORMAL" if i == 0 else s.label, s.split, s.sha256) for i, s in enumerate(samples)]
    assert samples[0].label != "NORMAL" and manifest_hash(relabelled) != first
    assert manifest_hash(samples[1:]) != first


def test_manifest_csv_round_trip_gives_the_same_snapshot(folder, tmp_path):
    samples = read_image_folder(folder)
    csv_path = tmp_path / "manifest.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "split", "sha256"])
        for s in samples:
            w.writerow([s.path.relative_to(folder).as_posix(), s.label, s.split, s.sha256])
    from_csv = read_manifest(csv_path, root=folder)
    assert manifest_hash(from_csv) == manifest_hash(samples)
    with pytest.raises(ValueError):
        load_dataset(_tampered_manifest(tmp_path, folder, samples[0]), verify=True)


def _tampered_manifest(tmp_path, folder, sample):
    path = tmp_path / "bad.csv"
    path.write_text(
        f"path,label,split,sha256\n{sample.path.relative_to(folder).as_posix()},{sample.label},train,{'0' * 64}\n"
    )
    (tmp_path / sample.path.relative_to(folder)).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / sample.path.relative_to(folder)).write_bytes(sample.path.read_bytes())
    return path


def test_split_is_stratified_seeded_and_duplicate_free(tmp_path):
    root = tmp_path / "flat"
    for k, label in enumerate(["A", "B"]):
        (root / label).mkdir(parents=True)
        for i in range(40 if label == "A" else 20):
            (root / label / f"{i}.png").write_bytes(encode_png(make_xray_like_pixels(64, seed=1000 * k + i)))
    # exact duplicate within a class (kept once) and across classes (dropped: conflicting labels)
    (root / "A" / "dup.png").write_bytes((root / "A" / "0.png").read_bytes())
    (root / "B" / "conflict.png").write_bytes((root / "A" / "1.png").read_bytes())

    samples = read_image_folder(root)
    split = stratified_split(samples, seed=7)
    hashes = [s.sha256 for s in split]
    assert len(hashes) == len(set(hashes)) == 40 - 1 + 20  # one dup kept once, the conflicting pair dropped
    counts = Counter((s.label, s.split) for s in split)
    assert counts[("A", "train")] == 27 and counts[("A", "val")] == 6 and counts[("A", "test")] == 6
    assert counts[("B", "train")] == 14 and counts[("B", "val")] == 3 and counts[("B", "test")] == 3
    assignment = {s.sha256: s.split for s in split}
    assert {s.sha256: s.split for s in stratified_split(list(reversed(samples)), seed=7)} == assignment
    assert {s.sha256: s.split for s in stratified_split(samples, seed=8)} != assignment
    assert len(deduplicate(samples)) == 59
    assert {s.split for s in ensure_splits(load_dataset(root)).samples} == {"train", "val", "test"}


def test_sources_come_from_provenance_in_a_parent_folder(folder):
    rows = ["relative_path,label,split,source_dataset"]
    for s in read_image_folder(folder):
        rows.append(f"{s.path.relative_to(folder).as_posix()},{s.label},{s.split},src-{s.label}")
    (folder / "provenance.csv").write_text("\n".join(rows) + "\n")
    test_only = load_dataset(folder / "test")  # class folders directly; provenance one level up
    sources = sample_sources(test_only.root, test_only.samples)
    assert sources == [f"src-{s.label}" for s in test_only.samples]
    assert sample_sources(folder.parent / "nowhere", test_only.samples) is None


def test_cell_weights_keep_the_base_mix_of_an_unbalanced_pool():
    from ml_core.data import cell_weights

    # Base: adults 50/50 normal/pneumonia. The pool adds 400 adult normals and no pneumonia:
    # drawn naively, "adult" would mean "normal" 9 times out of 10.
    base = [("adult", "NORMAL")] * 50 + [("adult", "PNEUMONIA")] * 50
    pool = [("adult", "NORMAL")] * 400 + [("child", "NORMAL")] * 30
    weights = cell_weights(base, base + pool)
    cells = base + pool
    mass = Counter()
    for cell, w in zip(cells, weights):
        mass[cell] += w
    assert weights.sum() == pytest.approx(1.0)
    assert mass[("adult", "NORMAL")] == pytest.approx(mass[("adult", "PNEUMONIA")], rel=1e-6)
    # Only in the pool: its natural share (count / all), next to the base cells' shares.
    assert mass[("child", "NORMAL")] / mass[("adult", "NORMAL")] == pytest.approx((30 / 530) / 0.5)
    # Every image of a cell is equally likely, so the pool's 400 normals are all used.
    adult_normal = {w for c, w in zip(cells, weights) if c == ("adult", "NORMAL")}
    assert len(adult_normal) == 1
