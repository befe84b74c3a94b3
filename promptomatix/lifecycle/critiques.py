"""Machine critiques: run a registered version on examples, ask a model what to improve in its
prompt, and store each point as machine-made feedback (promptomatix.lifecycle.feedback).

    from promptomatix.lifecycle.critiques import critique
    critique("reviews@3")                          # the version's own validation examples
    critique("reviews@3", "test.jsonl", model="openai/gpt-4o-mini", max_examples=8)

In: a version reference; examples (a data file `load_examples` reads, a list of dicts with the
version's input and output fields, or None for the validation set its optimization run logged
as `data/valid.jsonl`); the critic model (default: the version's own task model).
Out: the stored `Feedback` items (machine=True, author "critique:<model>"). A critic's span that
is not found in the prompt becomes a comment on the whole prompt.

Each critique is a new MLflow run in the experiment of the version's run, tagged with the
version (`promptomatix.critiqued_model`), holding the examples (`critique/examples.jsonl`), the
predictions with their scores (`critique/predictions.json`), the question and the critic's raw
answer (`critique/question.txt`, `critique/answer.json`) and the stored feedback
(`critique/feedback.json`); the version gets the tag `critique_run_id`. The examples are run
through `lifecycle.version_evaluation` (the version's logged pyfunc model under `mlflow.genai.evaluate`,
scored with its task type's metric), so predictions are the served model's own.

Bad input (version, data, model name, max_examples) raises a UsageError before any run starts;
a failing or unparseable critic raises LLMError after marking the run FAILED, with no feedback
stored.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from promptomatix.errors import ConfigError, DataError, ParseError, RegistryError
from promptomatix.lifecycle import feedback, version_evaluation, versions
from promptomatix.lifecycle.feedback import Feedback, PRIORITIES, TYPES
from promptomatix.tracking import record
from promptomatix.tracking.failure import record_failure

RUN_TAG = "critique_run_id"  # on the model version: its latest critique run
MAX_CRITIQUES = 5
MAX_COMMENT = 4000  # characters kept of one critic comment
VALID_ARTIFACT = record.data_artifact(record.VALID)  # where optimize logs the validation examples


def schema(max_items: int = MAX_CRITIQUES) -> dict:
    """The critic's answer: 1..max_items critiques, each with a span, a comment and a type and
    priority from the fixed lists (enums and lengths make even a small model answer usefully)."""
    item = {"type": "object",
            "properties": {"span": {"type": "string", "minLength": 3, "maxLength": 400},
                           "comment": {"type": "string", "minLength": 15, "maxLength": MAX_COMMENT},
                           "type": {"type": "string", "enum": list(TYPES)},
                           "priority": {"type": "string", "enum": list(PRIORITIES)}},
            "required": ["span", "comment", "type", "priority"]}
    return {"type": "object",
            "properties": {"critiques": {"type": "array", "items": item, "minItems": 1, "maxItems": max_items}},
            "required": ["critiques"]}


def critique(ref: str, data: str | Sequence[dict] | None = None, *, model: str | None = None,
             max_examples: int = 5) -> list[Feedback]:
    """Critique the prompt of the version `ref` names on up to `max_examples` examples; store
    and return the critiques as machine-made feedback (see the module docstring)."""
    from promptomatix.models.lm import check_model, LM
    from promptomatix.models.usage import UsageMeter

    if max_examples < 1:
        raise ConfigError(f"max examples must be at least 1, got {max_examples}")
    version = versions.resolve(ref)
    prompt = feedback.prompt_text(version)
    uri = f"models:/{version.name}/{version.version}"
    settings = critic_settings(uri, model)
    check_model(settings)
    if data is None:
        data = validation_examples(version)
    prepared = version_evaluation.prepare(version, data)
    chosen = tuple(prepared.examples[:max_examples])
    prepared = dataclasses.replace(prepared, examples=chosen, digest=version_evaluation.digest(chosen))
    served = mlflow.pyfunc.load_model(uri)
    meter = UsageMeter()
    critic = LM(settings, meter)
    author = f"critique:{settings.model}"

    with mlflow.start_run(experiment_id=version_evaluation.experiment_of(version),
                          run_name=f"critique {version.name} v{version.version}",
                          nested=mlflow.active_run() is not None) as active:
        mlflow.set_tags({"promptomatix.critiqued_model": uri, "promptomatix.model_name": version.name,
                         "promptomatix.model_version": str(version.version),
                         "promptomatix.critic_model": settings.model, "promptomatix.data_digest": prepared.digest})
        mlflow.log_params({"promptomatix.critique.data": prepared.source[:500],
                           "promptomatix.critique.size": len(chosen),
                           "promptomatix.critique.critic_model": settings.model})
        mlflow.log_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in chosen), "critique/examples.jsonl")
        try:
            items = _ask_critic(version, prompt, prepared, served, critic, author)
        except BaseException as exc:
            record_failure(exc)
            raise
        # log_dict writes any JSON value (here a list); MLflow annotates its argument as a dict
        mlflow.log_dict([item.to_dict() for item in items], "critique/feedback.json")  # type: ignore[arg-type]
        mlflow.log_metrics({"critiques": len(items), **meter.snapshot().as_metrics("critic_")})
        run_id = active.info.run_id
    MlflowClient().set_model_version_tag(version.name, str(version.version), RUN_TAG, run_id)
    return items


def _ask_critic(version, prompt: str, prepared, served, critic, author: str) -> list[Feedback]:
    """The served prompt's answers on the examples, the critic's reading of them, and its
    critiques stored as feedback; each step's text logged on the critique run."""
    from promptomatix.scoring import Metric

    task = prepared.task_type
    rows, score = version_evaluation.score_rows(prepared, served, Metric(task.metric, task.score_key), False)
    mlflow.log_text(json.dumps(rows, ensure_ascii=False, indent=1), "critique/predictions.json")
    mlflow.log_metric("critique_example_score", score)
    question = build_question(prompt, rows, prepared.input_fields, prepared.output_fields)
    mlflow.log_text(question, "critique/question.txt")
    answer = critic.complete_json(question, schema(), max_tokens=max(critic.settings.max_tokens, 768))
    mlflow.log_dict(answer, "critique/answer.json")
    items = [feedback.new_feedback(version, prompt, start, end, comment, type=kind, priority=priority,
                                   author=author, machine=True)
             for start, end, comment, kind, priority in read_answer(answer, prompt)]
    for item in items:
        feedback.store(item)
    return items


def validation_examples(version) -> list[dict]:
    """The validation examples the version's optimization run logged (`data/valid.jsonl`)."""
    if not version.run_id:
        raise DataError(f"version {version.version} of {version.name!r} has no run to take examples from; "
                        f"pass --data FILE")
    try:
        text = mlflow.artifacts.load_text(f"runs:/{version.run_id}/{VALID_ARTIFACT}")
    except (MlflowException, OSError):
        raise DataError(f"the run of version {version.version} of {version.name!r} has no {VALID_ARTIFACT}; "
                        f"pass --data FILE") from None
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError:
        raise DataError(f"{VALID_ARTIFACT} of run {version.run_id} is not JSON Lines; pass --data FILE") from None


def critic_settings(uri: str, model: str | None):
    """The critic's ModelSettings: `model` if given, else the task model of the logged model at
    `uri` (read from its MLmodel file, without loading the model)."""
    from mlflow.models import get_model_info

    from promptomatix.config import ModelSettings

    if model is not None:
        if not model.strip():
            raise ConfigError("the critic model name is empty")
        return ModelSettings(model=model.strip(), max_tokens=768)
    try:
        flavor = get_model_info(uri).flavors.get("python_function") or {}
    except (MlflowException, OSError) as exc:
        raise RegistryError(f"{uri}: cannot read the logged model: {str(exc).splitlines()[0]}") from None
    config = record.config_model(flavor.get("config") or {})
    if not config.get("model"):
        raise ConfigError("the version's logged model names no task model; pass --model")
    settings = {k: v for k, v in config.items() if k in {"model", "temperature", "max_tokens", "api_base"}}
    # The task model answers in a few tokens; as the critic it needs room for its comments.
    return ModelSettings(**(settings | {"max_tokens": max(int(settings.get("max_tokens") or 0), 768)}))


def build_question(prompt: str, rows: Sequence[dict], inputs: Sequence[str], outputs: Sequence[str]) -> str:
    """The critic's question (the `critique` meta-prompt, replaceable with `register_meta_prompt`
    like any other): the prompt and, per example,
    its inputs, the expected and the predicted outputs, and whether it was right."""
    from promptomatix.templates import load_template

    lines = []
    for row in rows:
        shown = "; ".join(f"{f}: {row[f]}" for f in inputs)
        expected = "; ".join(str(row[f"expected_{f}"]) for f in outputs)
        got = "; ".join(str(row[f"predicted_{f}"]) for f in outputs)
        verdict = "right" if row["score"] >= 1.0 else ("wrong" if row["score"] <= 0.0 else f"score {row['score']:.2f}")
        lines.append(f"- {shown} | expected: {expected} | got: {got} ({verdict})")
    template = load_template("critique", allowed={"prompt", "count", "examples", "min", "max"})
    return template.substitute(prompt=prompt, count=len(rows), examples="\n".join(lines), min=1, max=MAX_CRITIQUES)


def read_answer(answer: dict, prompt: str) -> list[tuple[int, int, str, str, str]]:
    """(start, end, comment, type, priority) per usable critique: a span found in the prompt
    (exactly, or once stripped of quotes and spaces) gives its offsets, any other the whole
    prompt; an unknown type becomes general, an unknown priority medium. No usable critique
    at all is a ParseError."""
    found = []
    critiques = answer.get("critiques")
    for entry in critiques if isinstance(critiques, list) else []:
        if not isinstance(entry, dict):
            continue
        comment = str(entry.get("comment") or "").strip()[:MAX_COMMENT]
        if not comment:
            continue
        start, end = locate(str(entry.get("span") or ""), prompt)
        kind = str(entry.get("type") or "").strip().lower()
        priority = str(entry.get("priority") or "").strip().lower()
        found.append((start, end, comment, kind if kind in TYPES else "general",
                      priority if priority in PRIORITIES else "medium"))
    if not found:
        raise ParseError(f"the critic's answer holds no critique with a comment: {json.dumps(answer)[:200]}")
    return found


def locate(text: str, prompt: str) -> tuple[int, int]:
    """Offsets of `text` in `prompt`, or of the whole prompt when it is not there."""
    for candidate in (text, text.strip().strip("\"'`").strip()):
        if candidate:
            at = prompt.find(candidate)
            if at >= 0:
                return at, at + len(candidate)
    return 0, len(prompt)
