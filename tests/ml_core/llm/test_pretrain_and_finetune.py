"""The default explainer's build (a few steps) and the LoRA fine-tune hook."""

import json

import pytest

from ml_core.llm.engine import load_engine
from ml_core.llm.finetune import InstructionExample, LoraConfig, finetune_lora, write_instruction_dataset
from ml_core.llm.pretrain import EXPLAINER_META, ExplainerModelConfig, PretrainConfig, build_explainer
from ml_core.llm.prompt import build_prompt
from ml_core.llm.testing import sample_facts
from ml_core.llm.writing import compose_explanation

SMALL = ExplainerModelConfig(vocab_size=600, n_layer=2, n_embd=64, n_head=2, intermediate_size=128)


def test_build_runs_a_few_steps_and_saves_a_loadable_litgpt_checkpoint(tmp_path):
    report = build_explainer(
        tmp_path / "explainer",
        ["COVID-19", "NORMAL", "PNEUMONIA"],
        spec=SMALL,
        cfg=PretrainConfig(steps=3, documents_per_class=4, batch_size=4, log_every=1, threads=1),
    )
    out = tmp_path / "explainer"
    assert {
        "lit_model.pth",
        "model_config.yaml",
        "tokenizer.json",
        "tokenizer_config.json",
        "prompt_style.yaml",
        EXPLAINER_META,
    } <= {p.name for p in out.iterdir()}
    meta = json.loads((out / EXPLAINER_META).read_text())
    assert meta["classes"] == ["COVID-19", "NORMAL", "PNEUMONIA"] and meta["documents"] == 12
    assert len(report.losses) == 3 and report.parameters > 0 and report.checkpoint_bytes > 0
    engine = load_engine(out, device="cpu")
    assert engine.model_name == "deepmed-explainer"


def test_cli_build_uses_the_given_classes(tmp_path, capsys):
    from ml_core.llm.__main__ import main

    assert (
        main(
            [
                "build",
                "--classes",
                "ATELECTASIS,NORMAL",
                "--out",
                str(tmp_path / "m"),
                "--steps",
                "1",
                "--documents-per-class",
                "2",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["classes"] == ["ATELECTASIS", "NORMAL"]


def test_instruction_dataset_layout(tmp_path):
    facts = sample_facts()
    path = write_instruction_dataset(
        [InstructionExample(build_prompt(facts), compose_explanation(facts))], tmp_path / "d.json"
    )
    rows = json.loads(path.read_text())
    assert rows == [{"instruction": build_prompt(facts), "output": compose_explanation(facts), "input": ""}]


@pytest.mark.slow
def test_lora_finetune_runs_two_steps_and_merges(tmp_path, tiny_llm_checkpoint):
    facts = sample_facts()
    data = write_instruction_dataset(
        [InstructionExample(build_prompt(facts), compose_explanation(facts))] * 3, tmp_path / "edits.json"
    )
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = finetune_lora(
        tiny_llm_checkpoint, data, tmp_path / "lora", LoraConfig(steps=2, global_batch_size=1), tracking_uri=tracking
    )
    assert result.examples == 3 and result.steps == 2
    import mlflow

    run = mlflow.MlflowClient(tracking_uri=tracking).get_run(result.mlflow_run_id)
    assert run.data.params["steps"] == "2" and run.data.params["examples"] == "3"
    assert run.data.tags["checkpoint_dir"] == result.checkpoint_dir
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())  # beside the store, not ./mlruns
    merged = load_engine(result.checkpoint_dir, device="cpu")  # a plain litgpt checkpoint again
    assert merged.model_version != load_engine(tiny_llm_checkpoint, device="cpu").model_version
