"""Out-of-distribution gates (numpy / onnxruntime only at serving time).

Two methods, compared by measurement when a package is built (see
``ml_core.pipeline``), the better one is served:

- ``mahalanobis`` (below): distance of the classifier's pooled features to the class means.
- ``autoencoder``: reconstruction error of a small convolutional autoencoder trained on
  chest X-rays (``ml_core.ood_ae`` fits it; here it is just an ONNX session).

Method: class-conditional Mahalanobis distance with a shared, shrunk covariance
(Lee et al., 2018) on pooled last-layer features: the global average (``mean``) or the average
and the spatial standard deviation side by side (``mean+std``). The deviation tells textures
apart that average alike (a photo of foliage and a lung field), so fine-tuned, ImageNet-initialised
features reject natural photos better with it; the build measures both and serves the better. The score is the
distance to the nearest class mean; the threshold is a percentile of the scores of
in-distribution images (ideally a held-out validation set), so by construction about
(100 - percentile)% of in-distribution images are flagged.

Stored in a model package as ``ood.npz`` (means, precision) plus a small JSON stub
in package.json: {"method", "file", "threshold", "percentile", "feature_dim", "n_fit"}.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

OOD_FILE = "ood.npz"
AE_FILE = "ood_ae.onnx"
METHOD_MAHALANOBIS = "mahalanobis"
METHOD_AUTOENCODER = "autoencoder"
POOLINGS = ("mean", "mean+std")
SINGLE_THREAD_ROWS = 8  # OODModel.score: up to this many rows, the product runs on one BLAS thread


@dataclass
class OODModel:
    means: np.ndarray  # K x D (one row per class, or a single row)
    precision: np.ndarray  # D x D inverse of the shared covariance
    threshold: float  # scores above it are out of distribution
    percentile: float
    n_fit: int
    method: str = METHOD_MAHALANOBIS
    pooling: str = "mean"  # how feature maps become the vectors scored (see pooled_features)

    def score_maps(self, features: np.ndarray) -> np.ndarray:
        """Scores of N x C x h x w feature maps, pooled the way this gate was fitted."""
        return self.score(pooled_features(features, self.pooling))

    def __post_init__(self) -> None:
        # (x - m)' P (x - m) = x'Px - 2 (Px)'m + m'Pm: one matrix-vector product per image
        # instead of one per class and image (2,560 features: 28 ms -> 1.2 ms per image).
        self._means_quad = np.einsum("kd,de,ke->k", self.means, self.precision, self.means)
        # The product with P in float32: half the memory to stream per image (the packaged P is
        # float16 anyway; scores move by ~2e-6 relative on real features), the rest in float64.
        self._precision32 = np.asarray(self.precision, dtype=np.float32)

    def score(self, pooled: np.ndarray) -> np.ndarray:
        """Distance to the nearest class mean for each row of an N x D array."""
        pooled = np.atleast_2d(np.asarray(pooled, dtype=np.float64))
        # A few rows (serving) are a memory-bound product: one BLAS thread; many rows (fitting,
        # evaluation) are a matrix product that BLAS threads do speed up.
        with _single_blas_thread() if len(pooled) <= SINGLE_THREAD_ROWS else contextlib.nullcontext():
            projected = (pooled.astype(np.float32) @ self._precision32).astype(np.float64)  # N x D (P symmetric)
        d2 = (pooled * projected).sum(axis=1)[:, None] - 2.0 * projected @ self.means.T + self._means_quad[None, :]
        return np.sqrt(np.maximum(d2.min(axis=1), 0.0))

    def is_out_of_distribution(self, pooled: np.ndarray) -> np.ndarray:
        return self.score(pooled) > self.threshold


_blas_lock = threading.Lock()
_blas_controller: Any = None


class _single_blas_thread:
    """BLAS limited to one thread around the OOD product: a 2,560-feature matrix-vector product
    is memory-bound, and OpenBLAS's threads (one per core) made it 3-5 times slower on busy
    shared cores (7.7 ms -> 1.3 ms per image with float32). The limit is process-wide, so it is
    held under a lock (nested or concurrent scores would otherwise restore each other's limit).
    Without threadpoolctl (a scikit-learn dependency) the product runs as it is."""

    def __enter__(self):
        global _blas_controller
        _blas_lock.acquire()
        self._limit = None
        try:
            if _blas_controller is None:
                _blas_controller = False  # stays False when threadpoolctl is missing or fails
                from threadpoolctl import ThreadpoolController

                _blas_controller = ThreadpoolController()
            if _blas_controller:
                self._limit = _blas_controller.limit(limits=1, user_api="blas")
        except Exception:
            self._limit = None
        return self

    def __exit__(self, *exc):
        try:
            if self._limit is not None:
                self._limit.restore_original_limits()
        finally:
            _blas_lock.release()


def pooled_features(features: np.ndarray, pooling: str = "mean") -> np.ndarray:
    """N x C x h x w feature maps -> N x C (global average pool, as the classifier sees them),
    or N x 2C for ``mean+std`` (average, then spatial standard deviation, per channel)."""
    maps = np.asarray(features, dtype=np.float64)
    if pooling == "mean":
        return maps.mean(axis=(2, 3))
    if pooling == "mean+std":
        return np.hstack([maps.mean(axis=(2, 3)), maps.std(axis=(2, 3))])
    raise ValueError(f"unknown pooling {pooling!r} (expected one of {', '.join(POOLINGS)})")


def fit_mahalanobis(
    pooled: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    percentile: float = 99.0,
    calibration: np.ndarray | None = None,
    pooling: str = "mean",
) -> OODModel:
    """Fit means + shrunk shared covariance on training features (pooled with ``pooling``);
    threshold on ``calibration`` (held-out in-distribution features, pooled alike) when given,
    else on the training features."""
    from sklearn.covariance import ledoit_wolf  # fitting only; serving never imports sklearn

    x = np.asarray(pooled, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"need an N x D array with N >= 2, got shape {x.shape}")
    if labels is None:
        labels = np.zeros(len(x), dtype=int)
    labels = np.asarray(labels)
    classes = np.unique(labels)
    means = np.stack([x[labels == c].mean(axis=0) for c in classes])
    centred = x - means[np.searchsorted(classes, labels)]
    # Ledoit-Wolf shrinkage keeps the covariance invertible when N is not >> D.
    cov, _ = ledoit_wolf(centred, assume_centered=True)
    precision = np.linalg.pinv(cov)
    model = OODModel(
        means=means, precision=precision, threshold=np.inf, percentile=percentile, n_fit=len(x), pooling=pooling
    )
    ref = x if calibration is None else np.asarray(calibration, dtype=np.float64)
    model.threshold = float(np.percentile(model.score(ref), percentile))
    return model


def ae_input(images, size: int) -> np.ndarray:
    """uint8 greyscale images -> N x 1 x size x size float32 in [0, 1] (the autoencoder's view).

    NEAREST on purpose: an anti-aliased downscale averages noise into flat grey, which any
    autoencoder reconstructs perfectly; point sampling keeps it unrecognisable."""
    from PIL import Image

    return np.stack(
        [
            np.asarray(Image.fromarray(p).resize((size, size), Image.Resampling.NEAREST), dtype=np.float32) / 255.0
            for p in images
        ]
    )[:, None]


@dataclass
class AutoencoderOOD:
    """Reconstruction-error gate: scores above ``threshold`` are out of distribution."""

    onnx_path: Path
    threshold: float
    percentile: float
    image_size: int
    n_fit: int
    method: str = METHOD_AUTOENCODER
    _session: Any = None

    @property
    def session(self):
        if self._session is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            self._session = ort.InferenceSession(str(self.onnx_path), opts, providers=["CPUExecutionProvider"])
        return self._session

    def score_images(self, images) -> np.ndarray:
        """Mean squared reconstruction error per image."""
        x = ae_input(images, self.image_size)
        recon = self.session.run(None, {self.session.get_inputs()[0].name: x})[0]
        return ((recon - x) ** 2).mean(axis=(1, 2, 3)).astype(np.float64)


def save_ood(model: OODModel | AutoencoderOOD, directory: str | Path) -> dict[str, Any]:
    """Write the gate's files next to package.json; return the JSON stub that references them."""
    directory = Path(directory)
    if isinstance(model, AutoencoderOOD):
        import shutil

        if Path(model.onnx_path).resolve() != (directory / AE_FILE).resolve():
            shutil.copyfile(model.onnx_path, directory / AE_FILE)
        return {
            "method": METHOD_AUTOENCODER,
            "file": AE_FILE,
            "threshold": float(model.threshold),
            "percentile": float(model.percentile),
            "image_size": int(model.image_size),
            "n_fit": int(model.n_fit),
        }
    np.savez(directory / OOD_FILE, means=model.means.astype(np.float32), **_packed_precision(model.precision))
    return {
        "method": model.method,
        "file": OOD_FILE,
        "threshold": float(model.threshold),
        "percentile": float(model.percentile),
        "feature_dim": int(model.means.shape[1]),
        "pooling": model.pooling,
        "n_fit": int(model.n_fit),
    }


def _packed_precision(precision: np.ndarray) -> dict[str, np.ndarray]:
    """The symmetric precision matrix as its upper triangle in float16 (a quarter of the float32
    square: 6.6 MB instead of 26 MB for 2,560 mean+std features; scores move by ~1e-5 relative),
    scaled so that no entry overflows float16."""
    upper = precision[np.triu_indices(precision.shape[0])]
    scale = max(1.0, float(np.abs(upper).max()) / 6e4)
    return {"precision_upper": (upper / scale).astype(np.float16), "precision_scale": np.array(scale)}


def _unpacked_precision(arrays) -> np.ndarray:
    if "precision" in arrays:  # packages written before the packed form
        return arrays["precision"].astype(np.float64)
    upper = arrays["precision_upper"].astype(np.float64) * float(arrays["precision_scale"])
    d = int(round((np.sqrt(8 * len(upper) + 1) - 1) / 2))
    square = np.zeros((d, d))
    square[np.triu_indices(d)] = upper
    return square + np.triu(square, 1).T


def load_ood(directory: str | Path, stub: dict[str, Any] | None) -> OODModel | AutoencoderOOD | None:
    """Inverse of save_ood; None when the package has no OOD gate."""
    if not stub:
        return None
    if stub.get("method") == METHOD_AUTOENCODER:
        return AutoencoderOOD(
            onnx_path=Path(directory) / stub["file"],
            threshold=float(stub["threshold"]),
            percentile=float(stub["percentile"]),
            image_size=int(stub["image_size"]),
            n_fit=int(stub.get("n_fit", 0)),
        )
    if stub.get("method") != METHOD_MAHALANOBIS:
        raise ValueError(f"unsupported OOD method: {stub.get('method')!r}")
    with np.load(Path(directory) / stub["file"]) as arrays:
        means = arrays["means"].astype(np.float64)
        precision = _unpacked_precision(arrays)
    return OODModel(
        means=means,
        precision=precision.astype(np.float32),  # scored in float32 (see OODModel.__post_init__)
        threshold=float(stub["threshold"]),
        percentile=float(stub["percentile"]),
        n_fit=int(stub.get("n_fit", 0)),
        method=stub["method"],
        pooling=stub.get("pooling", "mean"),  # packages before the option pooled by the mean
    )


def synthetic_outliers(n_per_kind: int = 20, seed: int = 0, size: int = 256) -> dict[str, list[np.ndarray]]:
    """Generated NON-X-ray greyscale images for evaluating a gate: natural photo crops
    (scikit-learn's two bundled sample photos), noise, text documents, smooth gradients/shapes."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {"natural": [], "noise": [], "document": [], "synthetic_shapes": []}
    try:
        from sklearn.datasets import load_sample_images

        photos = [np.asarray(Image.fromarray(im).convert("L")) for im in load_sample_images().images]
    except Exception:
        photos = []
    for i in range(n_per_kind):
        if photos:
            ph = photos[i % len(photos)]
            side = int(rng.integers(160, min(ph.shape)))
            y, x = rng.integers(0, ph.shape[0] - side + 1), rng.integers(0, ph.shape[1] - side + 1)
            crop = Image.fromarray(np.ascontiguousarray(ph[y : y + side, x : x + side])).resize((size, size))
            out["natural"].append(np.asarray(crop))
        if i % 2:
            out["noise"].append(rng.integers(0, 256, size=(size, size), dtype=np.uint8))
        else:
            out["noise"].append(
                np.clip(rng.normal(128, rng.uniform(20, 70), size=(size, size)), 0, 255).astype(np.uint8)
            )
        page = Image.new("L", (size, size), int(rng.integers(215, 256)))
        draw = ImageDraw.Draw(page)
        for line in range(int(rng.integers(6, 16))):
            words = " ".join(
                "".join(chr(int(c)) for c in rng.integers(97, 123, size=int(rng.integers(2, 9)))) for _ in range(6)
            )
            draw.text((int(rng.integers(4, 20)), 8 + line * 16), words, fill=int(rng.integers(0, 60)))
        out["document"].append(np.asarray(page))
        yy, xx = np.mgrid[0:size, 0:size] / size
        img = (rng.uniform(0, 255) * xx + rng.uniform(0, 255) * yy) / 2
        shapes = Image.fromarray(img.astype(np.uint8))
        d = ImageDraw.Draw(shapes)
        for _ in range(int(rng.integers(2, 6))):
            x0, y0 = rng.integers(0, size - 40, size=2)
            d.ellipse(
                [int(x0), int(y0), int(x0 + rng.integers(20, 120)), int(y0 + rng.integers(20, 120))],
                fill=int(rng.integers(0, 256)),
            )
        out["synthetic_shapes"].append(np.asarray(shapes))
    return {k: v for k, v in out.items() if v}
