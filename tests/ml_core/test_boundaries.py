"""Architecture rules: serving stays torch-free, and ml_core never imports Django."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import ml_core

ML_CORE_DIR = Path(ml_core.__file__).resolve().parent
REPO_ROOT = ML_CORE_DIR.parent


def _imported_modules(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_django_import_under_ml_core():
    files = sorted(ML_CORE_DIR.rglob("*.py"))
    assert len(files) >= 8
    web_roots = ("django", "rest_framework", "celery", "apps", "deepmed_web", "workers")
    offenders = {
        str(f.relative_to(REPO_ROOT)): sorted(
            m for m in _imported_modules(f.read_text()) if m.split(".")[0] in web_roots
        )
        for f in files
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_scanner_detects_an_import():
    # Guard against a scanner that can never fail.
    assert "django.conf" in _imported_modules("def f():\n    from django.conf import settings\n")


def test_serving_imports_do_not_load_torch():
    code = (
        "import json, sys\n"
        "import ml_core, ml_core.serve, ml_core.imaging, ml_core.package, ml_core.testing, ml_core.ood\n"
        "print(json.dumps(sorted(m for m in ('torch', 'timm', 'torchvision', 'django', 'sklearn') if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
