"""Plain-language explanations of a prediction, grounded in structured facts (no Django, torch lazily).

facts      ExplanationFacts, build_facts: what the prompt may contain
knowledge  per-finding facts table, disclaimer, symptom words
prompt     build_prompt, prompt_hash
validate   validate_explanation: agreement, certainty, grounding, medication, form
writing    template_explanation (deterministic fallback), technical_summary, corpus phrasing
engine     litgpt engine loaded once per process (GenerationSettings, get_engine)
explain    explain: generate → validate → regenerate once → template
corpus / pretrain / finetune / testing   building the default model, the LoRA hook, test checkpoints
CLI: python -m ml_core.llm {build,sample,finetune}
"""
