"""Build the project's own explainer (corpus → tokenizer → small GPT from scratch → litgpt checkpoint)."""

import json
from dataclasses import asdict
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ml_core.llm.engine import STARTER_CHECKPOINT
from ml_core.llm.pretrain import PretrainConfig, build_explainer

STARTER_PACKAGE = settings.BASE_DIR / "ml_core" / "starter" / "cxr-starter"


def default_classes() -> list[str]:
    """The deployed image model's classes, else the shipped starter package's."""
    from apps.modelops.selectors import get_champion
    from ml_core.llm.__main__ import classes_from_package

    champion = get_champion()
    if champion is not None and champion.classes:
        return list(champion.classes)
    if (STARTER_PACKAGE / "package.json").is_file():
        return classes_from_package(STARTER_PACKAGE)
    raise CommandError("no deployed model and no starter package: pass --classes")


class Command(BaseCommand):
    help = "Train the default explanation model from scratch and save it as a litgpt checkpoint."

    def add_arguments(self, parser):
        parser.add_argument("--out", default=str(STARTER_CHECKPOINT))
        parser.add_argument("--classes", default="", help="comma-separated; default: the deployed model's classes")
        parser.add_argument("--steps", type=int, default=PretrainConfig.steps)
        parser.add_argument("--documents-per-class", type=int, default=PretrainConfig.documents_per_class)
        parser.add_argument("--batch-size", type=int, default=PretrainConfig.batch_size)
        parser.add_argument("--threads", type=int, default=2)

    def handle(self, *args, **opts):
        classes = [c.strip() for c in opts["classes"].split(",") if c.strip()] or default_classes()
        cfg = PretrainConfig(
            steps=opts["steps"],
            documents_per_class=opts["documents_per_class"],
            batch_size=opts["batch_size"],
            threads=opts["threads"],
        )
        report = build_explainer(Path(opts["out"]).resolve(), classes, cfg=cfg)
        self.stdout.write(json.dumps(asdict(report), indent=2))
        self.stdout.write(
            self.style.SUCCESS(
                f"explainer saved to {report.checkpoint_dir} ({report.parameters:,} parameters, "
                f"{report.checkpoint_bytes / 1e6:.1f} MB, {report.train_seconds:.0f} s)"
            )
        )
