"""Forms of the tabular lab's pages. They only shape input: the services validate it
(validate_experiment_config, the model's input schema) and their refusals are shown on the form."""

from __future__ import annotations

import re
from typing import Any

from django import forms

from ml_core.tabular.clean import CleanConfig
from ml_core.tabular.evaluate import SCORINGS
from ml_core.tabular.models import ALGORITHM_NAMES
from ml_core.tabular.schema import column_unit
from ml_core.tabular.select import SelectConfig

ALGORITHM_LABELS = {
    "logistic_regression": "Logistic regression",
    "decision_tree": "Decision tree",
    "random_forest": "Random forest",
    "svm": "Support vector machine",
    "knn": "k nearest neighbours",
    "naive_bayes": "Naive Bayes",
}
SCORING_LABELS = {
    "roc_auc": "ROC-AUC",
    "f1_macro": "macro-F1",
    "accuracy": "accuracy",
    "balanced_accuracy": "balanced accuracy",
    "average_precision": "average precision (PR-AUC)",
}


def _choices(values, labels: dict[str, str] | None = None) -> list[tuple[str, str]]:
    return [(v, (labels or {}).get(v, v.replace("_", " "))) for v in values]


class UploadForm(forms.Form):
    name = forms.CharField(max_length=120, help_text="How the lab lists this table (not a patient's name).")
    target = forms.CharField(
        max_length=200, required=False, help_text="Optional: the column to predict (profiled as the class balance)."
    )
    file = forms.FileField(label="CSV file", help_text="Comma, semicolon or tab separated; UTF-8 or Latin-1.")

    def __init__(self, *args, max_mb: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["file"].widget.attrs["accept"] = ".csv,.tsv,.txt,text/csv"
        if max_mb:
            self.fields["file"].help_text += f" Up to {max_mb:g} MB."


class ExperimentForm(forms.Form):
    """TrainConfig's choices an admin makes; `config()` is the dict start_experiment validates."""

    target = forms.ChoiceField(help_text="The column to predict (two classes, or numeric with a threshold).")
    positive = forms.CharField(required=False, max_length=100, label="Positive class",
                               help_text="The target value that means 'at risk' (default: 1, or the second value).")  # fmt: skip
    binarise_threshold = forms.FloatField(required=False, label="Binarise above",
                                          help_text="Numeric target: positive when above this value (heart: 0).")  # fmt: skip
    exclude = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple,
                                        label="Columns to leave out", help_text="A site label, a leaky column…")  # fmt: skip
    # cleaning rules
    strip_whitespace = forms.BooleanField(required=False, initial=True, label="Strip whitespace")
    normalise_categories = forms.BooleanField(required=False, initial=True, label="Normalise category spellings")
    zero_as_missing = forms.ChoiceField(
        choices=[("auto", "where 0 is impossible (blood pressure, BMI…)"), ("none", "never")],
        initial="auto",
        label="Zeros read as missing",
    )
    drop_identifiers = forms.BooleanField(required=False, initial=True, label="Drop identifier columns")
    drop_constant = forms.BooleanField(required=False, initial=True, label="Drop constant columns")
    empty_columns = forms.ChoiceField(
        choices=[("error", "refuse the run"), ("drop", "drop them")], initial="error", label="All-missing columns"
    )
    numeric_imputer = forms.ChoiceField(choices=_choices(("median", "mean", "knn")), initial="median")
    categorical_imputer = forms.ChoiceField(
        choices=[("most_frequent", "most frequent"), ("constant", "a 'missing' category")], initial="most_frequent"
    )
    clip_outliers = forms.BooleanField(required=False, label="Clip outliers (3 × IQR)")
    scaler = forms.ChoiceField(choices=_choices(("standard", "robust", "minmax", "none")), initial="standard")
    # feature selection
    select_method = forms.ChoiceField(
        choices=[("filter", "filter"), ("wrapper", "wrapper"), ("none", "none")], initial="filter",
        label="Feature selection",
    )  # fmt: skip
    select_score = forms.ChoiceField(
        choices=[("anova_f", "ANOVA F"), ("mutual_info", "mutual information"), ("chi2", "chi²")],
        initial="anova_f",
        label="Filter score",
    )
    select_fraction = forms.FloatField(min_value=0.05, max_value=1.0, initial=0.8, label="Share of features kept",
                                       widget=forms.NumberInput(attrs={"step": "0.05"}))  # fmt: skip
    select_wrapper = forms.ChoiceField(
        choices=[("rfecv", "RFECV"), ("sequential", "sequential forward")], initial="rfecv", label="Wrapper"
    )
    # algorithms and search
    algorithms = forms.MultipleChoiceField(
        choices=_choices(ALGORITHM_NAMES, ALGORITHM_LABELS), initial=list(ALGORITHM_NAMES),
        widget=forms.CheckboxSelectMultiple,
    )  # fmt: skip
    scoring = forms.ChoiceField(choices=_choices(SCORINGS, SCORING_LABELS), initial="roc_auc",
                                help_text="Chooses each algorithm's grid point and the best algorithm (CV mean).")  # fmt: skip
    grid = forms.ChoiceField(choices=[("quick", "quick (one or two points)"), ("full", "full")], initial="full")
    folds = forms.TypedChoiceField(coerce=int, choices=[(0, "auto (5, or 3 for small classes)"), (3, "3"), (5, "5")],
                                   initial=0, label="CV folds")  # fmt: skip
    imbalance = forms.ChoiceField(
        choices=[("auto", "auto (SMOTE for small sets, class weights for large)"), ("smote", "SMOTE"),
                 ("class_weight", "class weights"), ("none", "none")],
        initial="auto",
    )  # fmt: skip
    test_size = forms.FloatField(min_value=0.05, max_value=0.5, initial=0.2, label="Held-out test share",
                                 widget=forms.NumberInput(attrs={"step": "0.05"}))  # fmt: skip
    decision_threshold = forms.FloatField(min_value=0.01, max_value=0.99, initial=0.5,
                                          widget=forms.NumberInput(attrs={"step": "0.01"}))  # fmt: skip

    CLEAN_FIELDS = ("strip_whitespace", "normalise_categories", "zero_as_missing", "drop_identifiers", "drop_constant",
                    "empty_columns", "numeric_imputer", "categorical_imputer", "clip_outliers", "scaler")  # fmt: skip
    SELECT_FIELDS = ("select_method", "select_score", "select_fraction", "select_wrapper")
    RUN_FIELDS = ("algorithms", "scoring", "grid", "folds", "imbalance", "test_size", "decision_threshold")

    def __init__(self, *args, columns: list[str], target: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target"].choices = [(c, c) for c in columns]
        self.fields["target"].initial = target if target in columns else ("target" if "target" in columns else None)
        self.fields["exclude"].choices = [(c, c) for c in columns]

    def clean(self):
        data = super().clean()
        if data.get("target") and data.get("target") in (data.get("exclude") or ()):
            self.add_error("exclude", "The target cannot be left out.")
        return data

    def fieldsets(self) -> list[tuple[str, list]]:
        group = lambda names: [self[n] for n in names]  # noqa: E731
        return [
            ("Target", group(("target", "positive", "binarise_threshold", "exclude"))),
            ("Cleaning rules", group(self.CLEAN_FIELDS)),
            ("Feature selection", group(self.SELECT_FIELDS)),
            ("Algorithms and search", group(self.RUN_FIELDS)),
        ]

    def config(self) -> dict[str, Any]:
        d = self.cleaned_data
        clean = {name: d[name] for name in self.CLEAN_FIELDS}
        clean = CleanConfig.from_dict(clean).to_dict()
        select = SelectConfig(
            method=d["select_method"], score=d["select_score"], fraction=d["select_fraction"],
            wrapper=d["select_wrapper"],
        ).to_dict()  # fmt: skip
        return {
            "target": d["target"],
            "positive": d["positive"].strip() or None,
            "binarise_threshold": d["binarise_threshold"],
            "exclude": list(d["exclude"]),
            "clean": clean,
            "select": select,
            **{name: d[name] for name in self.RUN_FIELDS},
            "algorithms": list(d["algorithms"]),
        }


def schema_help(column: dict[str, Any]) -> str:
    """What a risk form field accepts, in words: unit, allowed range, what an empty field means."""
    if column["kind"] == "numeric":
        unit = column_unit(column["name"])
        u = f" {unit}" if unit else ""
        text = (
            f"Allowed {column['allowed_min']:g} to {column['allowed_max']:g}{u}"
            f" (training data {column['min']:g} to {column['max']:g})."
        )
        typical = f"the training median, {column['median']:g}{u}"
    else:
        text = f"One of: {', '.join(column['categories'])}."
        typical = f"the most frequent value, {column.get('most_frequent')}"
    if column.get("nullable", True):
        text += f" Leave empty if unknown: the model uses {typical}."
    return text


class RiskForm(forms.Form):
    """One field per input column of the model's schema: numbers with min/max, categories as selects.
    Ranges are checked by the schema (services.predict), whose errors are put on these fields."""

    def __init__(self, *args, schema: dict[str, Any], **kwargs):
        super().__init__(*args, **kwargs)
        self.columns: dict[str, str] = {}  # field name -> column name (a column may hold spaces, dots...)
        for col in schema["columns"]:
            name = col["name"]
            key = field_key(name, self.columns)
            self.columns[key] = name
            required = not col.get("nullable", True)
            unit = column_unit(name)
            label = f"{name} ({unit})" if unit else name
            if col["kind"] == "numeric":
                field = forms.FloatField(
                    required=required,
                    label=label,
                    help_text=schema_help(col),
                    widget=forms.NumberInput(
                        attrs={"min": f"{col['allowed_min']:g}", "max": f"{col['allowed_max']:g}", "step": "any"}
                    ),  # fmt: skip
                )
            else:
                empty = [] if required else [("", "unknown")]
                field = forms.ChoiceField(
                    required=required, label=label, help_text=schema_help(col),
                    choices=empty + [(c, c) for c in col["categories"]],
                )  # fmt: skip
            self.fields[key] = field

    def row(self) -> dict[str, Any]:
        """The cleaned form as one JSON row for services.predict (empty = missing)."""
        return {self.columns[k]: (None if v in ("", None) else v) for k, v in self.cleaned_data.items()}

    def add_schema_errors(self, errors: list[dict[str, Any]]) -> None:
        """The schema's errors (services.predict's invalid_request) on the fields they name."""
        keys = {name: key for key, name in self.columns.items()}
        for error in errors:
            key = keys.get(error.get("field"))
            self.add_error(
                key, error.get("message", "invalid") if key else f"{error.get('field')}: {error.get('message')}"
            )


def field_key(name: str, taken: dict[str, str]) -> str:
    """A form field name (and so an HTML id) made of letters, digits and underscores."""
    key = re.sub(r"\W", "_", str(name)).strip("_") or "column"
    key, base, n = (f"c_{key}" if key[0].isdigit() else key), key, 2
    while key in taken:
        key, n = f"{base}_{n}", n + 1
    return key


class BatchForm(forms.Form):
    file = forms.FileField(
        label="CSV of patients",
        help_text="One row per patient, a header with the model's input columns; empty cells are unknown values.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["file"].widget.attrs["accept"] = ".csv,.tsv,.txt,text/csv"
