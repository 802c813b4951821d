"""manage.py build_explainer_model (a few steps here; the full build is documented in README)."""

import json

from django.core.management import call_command


def test_build_command_uses_the_deployed_models_classes(champion, tmp_path, capsys):
    out = tmp_path / "explainer"
    call_command("build_explainer_model", out=str(out), steps=2, documents_per_class=2, batch_size=2, threads=1)
    meta = json.loads((out / "explainer.json").read_text())
    assert meta["classes"] == list(champion.classes)
    assert meta["training"]["steps"] == 2
    assert (out / "lit_model.pth").is_file()
