"""The six algorithms and their parameter grids.

``ALGORITHMS[name].make(seed, class_weight)`` builds an unfitted classifier that has
``predict_proba``; ``grid(name, size)`` is its ``GridSearchCV`` grid (keys prefixed ``model__``).
"full" grids are sized so all six together take well under 2 minutes on 920 rows and 2 cores;
"quick" grids (one or two points) are for tests and smoke runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

GridSize = Literal["full", "quick"]


@dataclass(frozen=True)
class Algorithm:
    name: str
    make: Callable[[int, str | None], Any]  # (seed, class_weight) -> classifier
    full: dict[str, list]
    quick: dict[str, list]
    class_weight: bool  # takes class_weight="balanced"


def _svm(seed: int, class_weight: str | None):
    # Probabilities by Platt scaling on inner folds (SVC(probability=True) is deprecated since 1.9).
    svc = SVC(kernel="rbf", class_weight=class_weight, random_state=seed)
    return CalibratedClassifierCV(svc, method="sigmoid", cv=3, ensemble=False)


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm(
            "logistic_regression",
            lambda seed, cw: LogisticRegression(max_iter=5000, class_weight=cw, random_state=seed),
            full={"C": [0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]},
            quick={"C": [1.0]},
            class_weight=True,
        ),
        Algorithm(
            "decision_tree",
            lambda seed, cw: DecisionTreeClassifier(class_weight=cw, random_state=seed),
            full={"max_depth": [2, 3, 4, 5, 7, None], "min_samples_leaf": [1, 5, 10, 20]},
            quick={"max_depth": [3]},
            class_weight=True,
        ),
        Algorithm(
            "random_forest",
            lambda seed, cw: RandomForestClassifier(n_estimators=150, class_weight=cw, random_state=seed, n_jobs=1),
            full={"max_depth": [None, 6], "min_samples_leaf": [1, 4]},  # max_features "sqrt"
            quick={"n_estimators": [30]},
            class_weight=True,
        ),
        Algorithm(
            "svm",
            _svm,
            full={
                "estimator__kernel": ["rbf"],
                "estimator__C": [0.1, 0.3, 1.0, 3.0, 10.0],
                "estimator__gamma": ["scale", 0.01, 0.03],
            },
            quick={"estimator__C": [1.0]},
            class_weight=True,
        ),
        Algorithm(
            "knn",
            lambda seed, cw: KNeighborsClassifier(),
            full={"n_neighbors": [5, 9, 15, 21, 31], "weights": ["uniform", "distance"]},
            quick={"n_neighbors": [5]},
            class_weight=False,
        ),
        Algorithm(
            "naive_bayes",
            lambda seed, cw: GaussianNB(),
            full={"var_smoothing": [1e-9, 1e-6, 1e-3, 1e-2, 1e-1]},
            quick={"var_smoothing": [1e-9]},
            class_weight=False,
        ),
    )
}
ALGORITHM_NAMES = tuple(ALGORITHMS)


def grid(name: str, size: GridSize = "full", overrides: dict[str, list] | None = None) -> dict[str, list]:
    """``{"model__param": [values]}`` for GridSearchCV; ``overrides`` replaces the named params."""
    algo = ALGORITHMS[name]
    params = dict(algo.full if size == "full" else algo.quick)
    params.update(overrides or {})
    return {f"model__{k}": list(v) for k, v in params.items()}


def grid_points(params: dict[str, list]) -> int:
    n = 1
    for values in params.values():
        n *= len(values)
    return n
