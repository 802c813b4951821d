"""Test fixtures shared by the ml_core and Django test suites.

Everything here is SYNTHETIC: random-weight models and generated images. Nothing
produced here is a medical model or a real patient record. torch is imported
lazily (only ``make_tiny_package`` needs it).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ml_core.imaging import encode_png

TINY_IMAGE_SIZE = 64

# Identifying values written into synthetic DICOMs: tests assert none of them leaks.
FAKE_PATIENT_TAGS = {
    "PatientName": "Doe^Jane",
    "PatientID": "MRN-0042-SECRET",
    "PatientBirthDate": "19700101",
    "PatientSex": "F",
    "InstitutionName": "St Example Hospital",
    "ReferringPhysicianName": "House^Gregory",
    "AccessionNumber": "ACC-99887766",
    "StudyDate": "20240229",
    "StudyTime": "101500",
}


def make_xray_like_pixels(size: int = 256, seed: int = 0, *, height: int | None = None) -> np.ndarray:
    """A uint8 greyscale picture with chest-radiograph structure (dark lungs, bright
    mediastinum, spine and ribs), varied by ``seed``. Not anatomy, just plausible statistics."""
    rng = np.random.default_rng(seed)
    h, w = (height or size), size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    y, x = yy / h, xx / w
    img = np.full((h, w), 40.0, dtype=np.float32)  # air outside the body
    body = ((x - 0.5) / 0.46) ** 2 + ((y - 0.55) / 0.6) ** 2 < 1
    img[body] = 170
    shift = rng.uniform(-0.03, 0.03)
    for cx in (0.3 + shift, 0.7 + shift):  # lungs: dark ellipses
        lung = ((x - cx) / 0.16) ** 2 + ((y - 0.5) / 0.3) ** 2 < 1
        img[lung] = 70 + rng.uniform(-10, 10)
    ribs = (np.sin(y * np.pi * 18 + x * 2) > 0.85) & body
    img[ribs] += 35
    img[(np.abs(x - 0.5 - shift) < 0.05) & body] = 215  # spine / mediastinum
    img += rng.normal(0, 6, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_xray_like_png(size: int = 256, seed: int = 0) -> bytes:
    return encode_png(make_xray_like_pixels(size, seed))


def make_dicom_bytes(
    *,
    rows: int = 256,
    columns: int = 256,
    seed: int = 0,
    monochrome1: bool = False,
    with_patient_tags: bool = True,
    bits_stored: int = 12,
    rescale_slope: float | None = None,
    rescale_intercept: float | None = None,
    window: tuple[float, float] | None = None,  # (center, width) in modality units
    with_pixel_data: bool = True,
    stored_values: np.ndarray | None = None,  # raw uint16 values to store (overrides the picture)
) -> bytes:
    """A synthetic DX DICOM Part-10 file (Explicit VR Little Endian).

    By default the stored values are the X-ray-like picture scaled to ``bits_stored``
    bits; with ``monochrome1`` they are stored inverted (as a MONOCHROME1 modality
    would), so a correct reader displays the same picture either way.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop_class = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
    sop_instance = generate_uid(entropy_srcs=[f"deepmed-test-{seed}-sop"])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[f"deepmed-test-{seed}-study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[f"deepmed-test-{seed}-series"])
    ds.Modality = "DX"
    ds.ViewPosition = "PA"
    ds.BodyPartExamined = "CHEST"
    ds.PixelSpacing = [0.139, 0.139]
    if with_patient_tags:
        for keyword, value in FAKE_PATIENT_TAGS.items():
            setattr(ds, keyword, value)

    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    if rescale_slope is not None or rescale_intercept is not None:
        ds.RescaleSlope = rescale_slope if rescale_slope is not None else 1.0
        ds.RescaleIntercept = rescale_intercept if rescale_intercept is not None else 0.0
        ds.RescaleType = "US"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = float(window[0]), float(window[1])

    if with_pixel_data:
        if stored_values is None:
            picture = make_xray_like_pixels(columns, seed, height=rows).astype(np.float64) / 255.0
            if monochrome1:
                picture = 1.0 - picture
            stored_values = np.rint(picture * (2**bits_stored - 1))
        ds.PixelData = np.asarray(stored_values, dtype=np.uint16).tobytes()

    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def make_tiny_package(
    directory: Path,
    *,
    classes: tuple[str, ...] = ("COVID-19", "NORMAL", "PNEUMONIA"),
    name: str = "cxr-tiny",
    version: str = "1",
    seed: int = 0,
    temperature: float = 1.0,
    with_ood: bool = False,
) -> Path:
    """Build a RANDOM-WEIGHT test package (cxr_tiny, 64 px) in ``directory``; ~1 s on CPU.

    Predictions from it are meaningless by design: it exists to exercise the serving
    contract (probabilities, heat-maps, OOD plumbing) without real weights.
    """
    import torch

    from ml_core.export import export_onnx
    from ml_core.models import LogitsAndFeatures, ModelConfig, build_model, classifier_weights
    from ml_core.ood import fit_mahalanobis, pooled_features
    from ml_core.package import save_package
    from ml_core.preprocessing import PreprocessConfig, preprocess

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model_cfg = ModelConfig(architecture="cxr_tiny", num_classes=len(classes), drop_rate=0.0)
    model = build_model(model_cfg).eval()
    pre_cfg = PreprocessConfig(image_size=TINY_IMAGE_SIZE)
    onnx_path = export_onnx(model, pre_cfg, directory / "model.onnx")

    ood = None
    if with_ood:
        # Varied sizes: resizing changes texture statistics the random features react to.
        sizes = (96, 128, 192, 256, 384, 512)
        images = [make_xray_like_pixels(sizes[i % len(sizes)], seed=seed * 1000 + i) for i in range(180)]
        batch = np.concatenate([preprocess(img, pre_cfg) for img in images])
        with torch.no_grad():
            _, feats = LogitsAndFeatures(model)(torch.from_numpy(batch))
        pooled = pooled_features(feats.numpy())
        ood = fit_mahalanobis(pooled[:120], calibration=pooled[120:], percentile=99.0)

    return save_package(
        directory,
        onnx_path=onnx_path,
        name=name,
        version=version,
        classes=list(classes),
        architecture=model_cfg.architecture,
        preprocess=pre_cfg,
        cam_weights=classifier_weights(model),
        temperature=temperature,
        ood=ood,
        metrics={"note": "random-weight test fixture; predictions are meaningless"},
        extra={"test_fixture": True, "seed": seed},
    )


def make_tiny_imagefolder(
    root: Path,
    *,
    classes: tuple[str, ...] = ("COVID-19", "NORMAL", "PNEUMONIA"),
    per_split: dict[str, int] | None = None,
    size: int = 64,
    seed: int = 0,
) -> Path:
    """A SYNTHETIC ``<split>/<CLASS>/*.png`` tree whose classes are learnable: each class adds
    a bright blob at its own position to an X-ray-like picture (tests only, not anatomy)."""
    root = Path(root)
    per_split = per_split or {"train": 16, "val": 6, "test": 6}
    offsets = {"train": 0, "val": 100_000, "test": 200_000}
    for split, n in per_split.items():
        for k, label in enumerate(classes):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = make_xray_like_pixels(size, seed=seed + offsets.get(split, 300_000) + 1000 * k + i).astype(np.int16)
                cy, cx = size // 4 + (k * size) // (2 * max(1, len(classes) - 1)), size // 2
                r = max(2, size // 10)
                pixels[max(0, cy - r) : cy + r, cx - r : cx + r] += 80
                (folder / f"{split}_{k}_{i:03d}.png").write_bytes(encode_png(np.clip(pixels, 0, 255).astype(np.uint8)))
    return root


# PackageConfig settings that keep a test package build to a few seconds.
FAST_PACKAGE_SETTINGS = dict(latency_runs=3, ood_fit_images=48, calibration_images=12, ae_epochs=2, ood_outliers_per_kind=4)


def tiny_train_config(data: Path | str, out: Path | str, **overrides):
    """A TrainConfig for the 25 k-parameter cxr_tiny at 32 px: a few seconds on one CPU thread."""
    from ml_core.train import TrainConfig

    base = TrainConfig(
        data=str(data),
        out_dir=str(out),
        architecture="cxr_tiny",
        image_size=32,
        epochs=4,
        patience=10,
        augment="none",
        batch_size=8,
        lr=1e-2,
        weight_decay=0.0,
        warmup_epochs=0.5,
        drop_rate=0.0,
        num_threads=1,
        seed=3,
    )
    from dataclasses import replace

    return replace(base, **overrides)
