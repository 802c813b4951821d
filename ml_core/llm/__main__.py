"""Command line: `python -m ml_core.llm {build,sample,finetune}`.

build     write the corpus, train the tokenizer and the small GPT, save a litgpt checkpoint
sample    print explanations (and validator outcomes) from a checkpoint for each class
finetune  LoRA fine-tune a checkpoint on an exported instruction dataset (JSON)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from ml_core.llm.engine import STARTER_CHECKPOINT, GenerationSettings


def classes_from_package(package_dir: str | Path) -> list[str]:
    from ml_core.package import load_package_meta

    return list(load_package_meta(package_dir).classes)


def _classes(args) -> list[str]:
    if args.classes:
        return [c.strip() for c in args.classes.split(",") if c.strip()]
    return classes_from_package(args.package)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml_core.llm")
    sub = parser.add_subparsers(dest="command", required=True)

    build = sub.add_parser("build", help="train the default explainer from scratch")
    build.add_argument("--out", default=str(STARTER_CHECKPOINT))
    source = build.add_mutually_exclusive_group()
    source.add_argument(
        "--package",
        default=str(Path(__file__).resolve().parents[1] / "starter" / "cxr-starter"),
        help="image model package whose classes the explainer covers",
    )
    source.add_argument("--classes", default="", help="comma-separated class names instead of --package")
    build.add_argument("--steps", type=int, default=None)
    build.add_argument("--documents-per-class", type=int, default=None)
    build.add_argument("--threads", type=int, default=2)

    sample = sub.add_parser("sample", help="print a few explanations from a checkpoint")
    sample.add_argument("--checkpoint", default=str(STARTER_CHECKPOINT))
    sample.add_argument("--classes", default="")
    sample.add_argument("--package", default=str(Path(__file__).resolve().parents[1] / "starter" / "cxr-starter"))
    sample.add_argument("--per-class", type=int, default=2)

    finetune = sub.add_parser("finetune", help="LoRA fine-tune on an instruction dataset")
    finetune.add_argument("--checkpoint", default=str(STARTER_CHECKPOINT))
    finetune.add_argument("--data", required=True, help="JSON list of {instruction, input, output}")
    finetune.add_argument("--out", required=True)
    finetune.add_argument("--steps", type=int, default=20)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.command == "build":
        from ml_core.llm.pretrain import PretrainConfig, build_explainer

        cfg = PretrainConfig(threads=args.threads)
        if args.steps is not None:
            cfg.steps = args.steps
        if args.documents_per_class is not None:
            cfg.documents_per_class = args.documents_per_class
        report = build_explainer(Path(args.out).resolve(), _classes(args), cfg=cfg)
        print(json.dumps(asdict(report), indent=2))
    elif args.command == "sample":
        from ml_core.llm.sampling import sample_explanations

        for line in sample_explanations(
            Path(args.checkpoint).resolve(), _classes(args), per_class=args.per_class, settings=GenerationSettings()
        ):
            print(line)
    elif args.command == "finetune":
        from ml_core.llm.finetune import LoraConfig, finetune_lora

        result = finetune_lora(
            Path(args.checkpoint).resolve(),
            Path(args.data).resolve(),
            Path(args.out).resolve(),
            LoraConfig(steps=args.steps),
        )
        print(json.dumps(asdict(result), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
