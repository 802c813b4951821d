"""Generated clinical-looking frames for tests and smoke runs (no real data needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml_core.tabular.train import TrainConfig


def make_frame(n: int = 160, seed: int = 0, *, positive_share: float = 0.5) -> pd.DataFrame:
    """Learnable binary target from glucose, bmi and smoker; a noise column; messy text cells;
    zeros standing for missing in bmi/blood_pressure; an id column and a constant column."""
    if n < 20:
        raise ValueError("make_frame needs n >= 20 (the messy cells sit in the first 17 rows)")
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < positive_share).astype(int)
    glucose = rng.normal(100 + 35 * y, 15)
    bmi = rng.normal(26 + 5 * y, 3).round(1)
    bp = rng.normal(75, 8, n).round()
    smoker = np.where(rng.random(n) < 0.2 + 0.5 * y, "Yes", "no")
    site = rng.choice(["north", "south", "east"], n)
    frame = pd.DataFrame(
        {
            "patient_id": [f"P{i:05d}" for i in range(n)],
            "glucose": glucose.round(1),
            "bmi": bmi,
            "blood_pressure": bp,
            "noise": rng.normal(0, 1, n),
            "smoker": smoker.astype(object),
            "site": site.astype(object),
            "constant": 1.0,
            "target": y,
        }
    )
    frame.loc[frame.index[:6], "bmi"] = 0.0  # hidden missing values
    frame.loc[frame.index[6:9], "blood_pressure"] = 0.0
    frame.loc[frame.index[9:12], "smoker"] = [" yes", "YES ", "No"]  # spelling variants
    frame.loc[frame.index[12:14], "site"] = ["?", np.nan]
    frame.loc[frame.index[14:17], "glucose"] = np.nan
    return frame


def quick_config(**kw) -> TrainConfig:
    base = {"grid": "quick", "permutation_repeats": 1, "folds": 3}
    return TrainConfig(**{**base, **kw})
