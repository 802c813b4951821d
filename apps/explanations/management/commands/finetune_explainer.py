"""Run the LoRA fine-tune of the explainer on physician-edited explanations (a training job)."""

import json
from dataclasses import asdict

from django.core.management.base import BaseCommand, CommandError

from apps.explanations import services


class Command(BaseCommand):
    help = "Export physician edits and LoRA fine-tune the explainer with litgpt (tracked in MLflow)."

    def add_arguments(self, parser):
        parser.add_argument("--steps", type=int, default=20)
        parser.add_argument("--out", default=None, help="output folder (default: DATA_DIR/llm/lora-<time>)")
        parser.add_argument("--base", default=None, help="base checkpoint (default: the configured explainer)")

    def handle(self, *args, **opts):
        try:
            result = services.run_explainer_finetune(
                steps=opts["steps"], out_dir=opts["out"], base_checkpoint=opts["base"]
            )
        except services.ExplanationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(json.dumps(asdict(result), indent=2))
        self.stdout.write(
            self.style.SUCCESS(
                f"fine-tuned checkpoint: {result.checkpoint_dir} — set DEEPMED_LLM_CHECKPOINT to deploy it"
            )
        )
