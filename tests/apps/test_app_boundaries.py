"""Architecture rules between the Django apps (read from the source, AST only):

- one owner per table: a module outside app X never writes X's models (manager/queryset writes,
  `X(...).save()`, and save()/delete() on an instance read through X's manager); it calls X's
  services instead. Workers write no model at all.
- apps reach the workers only through the enqueue helper (apps/core/tasks.py): no app module
  imports `workers`, and only that module publishes a task.
- no new pair of apps importing each other: callbacks go through signals (apps.studies.signals,
  apps.accounts.signals); the pairs left are listed with their reason.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import apps

APPS_DIR = Path(apps.__file__).resolve().parent
REPO_ROOT = APPS_DIR.parent
WORKERS_DIR = REPO_ROOT / "workers"

# Queryset/manager methods that write rows.
WRITE_METHODS = frozenset(
    {"create", "update", "delete", "bulk_create", "bulk_update", "get_or_create", "update_or_create"}
)
INSTANCE_WRITES = frozenset({"save", "delete"})
# Reads that hand back one instance (its save()/delete() is then a write of that model).
INSTANCE_READS = frozenset({"get", "first", "last", "latest", "earliest"})
ENQUEUE_MODULE = "apps/core/tasks.py"  # the one door from apps to the workers
PUBLISH_CALLS = frozenset({"send_task", "apply_async", "delay"})


@dataclass(frozen=True)
class Violation:
    line: int
    model: str
    owner: str
    call: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.call} writes {self.owner}.{self.model}"


def _imported_models(tree: ast.AST) -> tuple[dict[str, str], dict[str, str]]:
    """({local name: owning app} for model classes imported from apps.<app>.models,
    {module alias: owning app} for `from apps.<app> import models as alias`)."""
    names: dict[str, str] = {}
    modules: dict[str, str] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.level != 0 or not node.module:
            continue
        parts = node.module.split(".")
        if parts[0] != "apps" or len(parts) < 2:
            continue
        if parts[2:] == ["models"]:
            for alias in node.names:
                if alias.name[:1].isupper():
                    names[alias.asname or alias.name] = parts[1]
        elif len(parts) == 2:
            for alias in node.names:
                if alias.name == "models":
                    modules[alias.asname or alias.name] = parts[1]
    return names, modules


def _model_of(node: ast.AST, names: dict[str, str], modules: dict[str, str]) -> tuple[str, str] | None:
    """(model, app) when `node` names an imported model class (`Study` or `models.Study`)."""
    if isinstance(node, ast.Name) and node.id in names:
        return node.id, names[node.id]
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
        return node.attr, modules[node.value.id]
    return None


def _manager_root(node: ast.AST, names, modules) -> tuple[str, str] | None:
    """The model a call chain like `Model.objects.filter(...).select_for_update()` starts from."""
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            if node.attr == "objects":
                return _model_of(node.value, names, modules)
            node = node.value
        else:
            return None


def _last_method(node: ast.AST) -> str:
    return node.func.attr if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) else ""


def _scopes(tree: ast.Module):
    """The module body and every top-level function/method, each walked as one scope."""
    yield tree
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def foreign_writes(source: str, *, owner: str) -> list[Violation]:
    """Writes in `source` (a module of app `owner`; "" for a module of no app) on models
    imported from another app."""
    tree = ast.parse(source)
    names, modules = _imported_models(tree)
    found: set[Violation] = set()

    def foreign(model: tuple[str, str] | None) -> bool:
        return model is not None and model[1] != owner

    for scope in _scopes(tree):
        instances: dict[str, tuple[str, str]] = {}
        for node in ast.walk(scope):
            # x = Model(...) | x = Model.objects....get()/first() | for x in Model.objects...
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                value = node.value
                model = None
                if isinstance(value, ast.Call):
                    model = _model_of(value.func, names, modules)
                    if model is None and _last_method(value) in INSTANCE_READS:
                        model = _manager_root(value, names, modules)
                if foreign(model):
                    instances[node.targets[0].id] = model
            elif isinstance(node, ast.For) and isinstance(node.target, ast.Name):
                model = _manager_root(node.iter, names, modules)
                if foreign(model):
                    instances[node.target.id] = model
        for node in ast.walk(scope):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            method, receiver = node.func.attr, node.func.value
            model = None
            if method in WRITE_METHODS:
                model = _manager_root(receiver, names, modules)
            if model is None and method in INSTANCE_WRITES:
                if isinstance(receiver, ast.Call):
                    model = _model_of(receiver.func, names, modules)  # Model(...).save()
                elif isinstance(receiver, ast.Name):
                    model = instances.get(receiver.id)
            if foreign(model):
                found.add(Violation(node.lineno, model[0], model[1], f".{method}()"))
    return sorted(found, key=lambda v: v.line)


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0:
        return [node.module or ""]
    return []


def imports_workers(source: str) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if any(name.split(".")[0] == "workers" for name in _imported(node))
    ]


def publishes_tasks(source: str) -> list[int]:
    """Lines calling Celery's publishing API (apps call apps.core.tasks.enqueue instead)."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in PUBLISH_CALLS
    ]


def _app_modules():
    for path in sorted(APPS_DIR.rglob("*.py")):
        rel = path.relative_to(APPS_DIR)
        if "migrations" in rel.parts or len(rel.parts) < 2:
            continue
        yield path, rel.parts[0]


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


# Pairs of apps that still import each other, and why (reads both ways, not callbacks).
ALLOWED_MUTUAL = {
    ("accounts", "audit"): "accounts records audit events like every app; audit's log pages use accounts' roles",
    (
        "explanations",
        "modelops",
    ): "the explainer build command reads the deployed classes; the console lists fine-tunes",
    ("modelops", "review"): "modelops trains on review's samples; review's feedback page names the model versions",
}


def app_imports(source: str, *, importer: str) -> set[str]:
    """The other apps a module of `importer` imports (any scope)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        for name in _imported(node):
            parts = name.split(".")
            if parts[0] == "apps" and len(parts) > 1 and parts[1] != importer:
                found.add(parts[1])
    return found


def mutual_pairs(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return {tuple(sorted(edge)) for edge in edges if (edge[1], edge[0]) in edges}


# --- the rules ----------------------------------------------------------------------------------


def test_no_app_writes_another_apps_models():
    offenders = {
        _rel(path): [str(v) for v in foreign_writes(path.read_text(), owner=app)] for path, app in _app_modules()
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_workers_write_no_model():
    files = sorted(WORKERS_DIR.glob("*.py"))
    assert len(files) >= 5
    offenders = {_rel(p): [str(v) for v in foreign_writes(p.read_text(), owner="")] for p in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_apps_reach_workers_only_through_the_enqueue_module():
    modules = list(_app_modules())
    assert len(modules) >= 40
    imports = {_rel(p): imports_workers(p.read_text()) for p, _ in modules}
    assert {k: v for k, v in imports.items() if v} == {}
    publishing = {_rel(p): publishes_tasks(p.read_text()) for p, _ in modules if _rel(p) != ENQUEUE_MODULE}
    assert {k: v for k, v in publishing.items() if v} == {}


def test_no_new_pair_of_apps_imports_each_other():
    edges = {(app, other) for path, app in _app_modules() for other in app_imports(path.read_text(), importer=app)}
    assert ("review", "studies") in edges  # the scan sees imports
    assert mutual_pairs(edges) <= set(ALLOWED_MUTUAL)


def test_the_enqueue_modules_task_names_are_registered_tasks():
    from apps.core import tasks
    from deepmed_web.celery import app

    app.loader.import_default_modules()
    named = {v for k, v in vars(tasks).items() if k.isupper() and isinstance(v, str) and v.startswith("workers.")}
    assert named and named <= set(app.tasks)


# --- the checkers can fail ------------------------------------------------------------------------

BAD_SNIPPET = """
from apps.review.models import LabeledSample
from apps.studies import models as study_models
from apps.studies.models import Prediction, Study


def withdraw(study):
    LabeledSample.objects.filter(study=study).update(excluded=True)
    LabeledSample.objects.create(label="x")
    study_models.Prediction.objects.get_or_create(study=study)


def add(study):
    Prediction(study=study, label="x").save()
    p = Prediction(study=study)
    p.save()
    s = Study.objects.select_for_update().get(pk=1)
    s.delete()
    for sample in LabeledSample.objects.filter(study=study):
        sample.delete()
"""


def test_the_write_checker_flags_each_pattern():
    found = foreign_writes(BAD_SNIPPET, owner="modelops")
    assert [(v.model, v.call) for v in found] == [
        ("LabeledSample", ".update()"),
        ("LabeledSample", ".create()"),
        ("Prediction", ".get_or_create()"),
        ("Prediction", ".save()"),
        ("Prediction", ".save()"),
        ("Study", ".delete()"),
        ("LabeledSample", ".delete()"),
    ]


def test_the_write_checker_lets_the_owner_write_and_others_read():
    assert foreign_writes(BAD_SNIPPET.replace("apps.review", "apps.studies"), owner="studies") == []
    reads = (
        "from apps.studies.models import Study\n"
        "def f():\n"
        "    s = Study.objects.get(pk=1)\n"
        "    Study.objects.filter(owner=s.owner).exists()\n"
        "    return s.predictions.count()\n"
    )
    assert foreign_writes(reads, owner="review") == []


def test_the_import_scan_finds_a_mutual_pair():
    source = "from apps.review.models import Review\ndef f():\n    from apps.studies import services\n"
    assert app_imports(source, importer="modelops") == {"review", "studies"}
    assert mutual_pairs({("studies", "review"), ("review", "studies"), ("review", "audit")}) == {("review", "studies")}


def test_the_workers_checkers_flag_imports_and_publishing():
    source = "def f(pk):\n    from workers.inference import run_inference\n    run_inference.apply_async(args=[pk])\n"
    assert imports_workers(source) == [2]
    assert publishes_tasks(source) == [3]
    assert imports_workers("import workers.llm\n") == [1]
    assert publishes_tasks("def f(app, task):\n    app.send_task('workers.llm.x')\n    task.delay(1)\n") == [2, 3]
    assert publishes_tasks("from apps.core import tasks\ntasks.enqueue(tasks.INFERENCE, '1')\n") == []
