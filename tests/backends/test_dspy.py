"""The DSPy backend with the scripted fake LLM (through LiteLLM and DSPy's ChatAdapter).

The fake reads what DSPy asks for from the prompt itself: the output fields named in
ChatAdapter's closing line (or JSONAdapter's), and the review in the last `[[ ## text ## ]]`.
As the task model it labels every review "positive" unless the prompt carries demos or the
MAGIC word, and then answers right; as the optimizer model it proposes instructions with MAGIC.
So the starting program scores 0.5 and any optimizer that learns demos or instructions 1.0.
"""

from __future__ import annotations

import json
import math
import re

import dspy
import mlflow
import pandas as pd
import pytest
from conftest import FAKE_MODEL, Recorder
from mlflow import MlflowClient

import promptomatix
from promptomatix.backends import get_backend
from promptomatix.backends.base import OptimizationTask
from promptomatix.backends.dspy import DSPyBackend
from promptomatix.backends.dspy.adapter import adapter_spec, make_adapter, TextAdapter
from promptomatix.backends.dspy.lm import MeteredLM
from promptomatix.backends.dspy.metric import FeedbackMetric, ProgramMetric, ProgramTagger
from promptomatix.backends.dspy.optimizers import OPTIMIZERS
from promptomatix.backends.dspy.program import (
    SignatureSpec,
    build_program,
    main_predictor,
    program_from_dict,
    program_prompt,
    program_text,
)
from promptomatix.config import ModelSettings, OptimizationConfig
from promptomatix.errors import ConfigError
from promptomatix.models.lm import LM
from promptomatix.models.usage import UsageMeter
from promptomatix.run.callbacks import Callback, CallbackList, StopOptimization
from promptomatix.scoring import Metric, Objective
from promptomatix.scoring.evaluator import Evaluator
from promptomatix.task.prompt import Prompt
from promptomatix.task.spec import TaskSpec
from sentiment_data import MAGIC, TRAIN, TRUTH, VALID

PROPOSAL = f"Read the review {MAGIC} and answer positive or negative."
INSTRUCTION = "Classify the sentiment of a movie review as positive or negative."
INTAKE = {"description": INSTRUCTION, "task_type": "classification", "input_fields": ["text"],
          "output_fields": ["label"], "labels": ["positive", "negative"]}
SPEC = TaskSpec(INSTRUCTION, ("text",), ("label",), "classification", labels=("negative", "positive"),
                instructions=INSTRUCTION)


def requested_fields(prompt: str) -> tuple[list[str], bool]:
    """The output fields the last request asks for, and whether it wants JSON."""
    chat = re.findall(r"Respond with the corresponding output fields, starting with the field (.*?), and then "
                      r"ending with the marker", prompt)
    if chat:
        return re.findall(r"`\[\[ ## (\w+) ## \]\]`", chat[-1]), False
    as_json = re.findall(r"Respond with a JSON object in the following order of fields: (.*)", prompt)
    return re.findall(r"`(\w+)`", as_json[-1]) if as_json else [], True


def label_for(prompt: str) -> str:
    review = re.findall(r"\[\[ ## text ## \]\]\n(.*)", prompt)[-1].strip()
    # A demo is an earlier answer in the conversation: a label field with a label in it.
    learned = MAGIC in prompt or re.search(r"\[\[ ## label ## \]\]\n(positive|negative)\n", prompt) is not None
    return TRUTH[review] if learned else "positive"


def field_value(name: str, prompt: str):
    values = {
        "label": lambda: label_for(prompt),
        "reasoning": lambda: "Weighing the words of the review.",
        "notes": lambda: "The writer has an opinion.",
        "next_thought": lambda: "I can answer now.",
        "next_tool_name": lambda: "finish",
        "next_tool_args": lambda: {},
        "generated_code": lambda: "```python\nverdict = 'computed'\nverdict\n```",
        "module_advice": lambda: {},
    }
    return values.get(name, lambda: PROPOSAL)()


def dspy_answer(prompt: str, params: dict) -> str:
    """Answers any DSPy request in the format its adapter asked for."""
    names, as_json = requested_fields(prompt)
    if not names:
        return "ok"
    values = {name: field_value(name, prompt) for name in names}
    if as_json:
        return json.dumps(values)
    text = lambda v: json.dumps(v) if isinstance(v, (dict, list)) else v  # noqa: E731
    return "\n\n".join(f"[[ ## {name} ## ]]\n{text(v)}" for name, v in values.items()) + "\n\n[[ ## completed ## ]]"


@pytest.fixture(autouse=True, scope="module")
def no_dspy_disk_cache():
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)


@pytest.fixture
def scripted(fake_llm):
    fake_llm.rules = [("Request:", INTAKE), ("", dspy_answer)]
    return fake_llm


@pytest.fixture(scope="module")
def accuracy():
    return Metric("classification", "accuracy")


def make_task(accuracy, *, meter=None, **options) -> OptimizationTask:
    meter = meter or UsageMeter()
    lm = lambda: LM(ModelSettings(model=FAKE_MODEL), meter, backoff=0)  # noqa: E731
    config = OptimizationConfig(**({"raw_input": INSTRUCTION, "backend": "dspy", "optimizer": "BootstrapFewShot",
                                    "iterations": 1, "candidates": 2, "num_demos": 2, "num_threads": 2} | options))
    start = Prompt(INSTRUCTION, SPEC.input_fields, SPEC.output_fields, single_line=True)
    evaluator = Evaluator(lm(), accuracy, num_threads=2, show_progress=False)
    return OptimizationTask(SPEC, start, TRAIN, VALID, evaluator, Objective(config.lambda_penalty), lm(), config)


def write_data(tmp_path):
    paths = {}
    for name, rows in (("train", TRAIN), ("valid", VALID)):
        paths[name] = tmp_path / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(paths["train"]), str(paths["valid"])


def run_optimize(tmp_path, **options):
    train, valid = write_data(tmp_path)
    defaults = dict(raw_input=INSTRUCTION, backend="dspy", model=FAKE_MODEL, train_data=train, valid_data=valid,
                    task_type="classification", input_fields="text", output_fields="label",
                    iterations=1, candidates=2, num_demos=2, num_threads=2, show_progress=False)
    return promptomatix.optimize(**(defaults | options))


# --- registration, names and checks -------------------------------------------------------------

def test_dspy_is_a_registered_backend():
    assert get_backend("dspy") is DSPyBackend


@pytest.mark.parametrize("options, message", [
    ({"optimizer": "SGD"}, "unknown DSPy optimizer 'SGD'; choose one of: BootstrapFewShot, "
                           "BootstrapFewShotWithRandomSearch, COPRO, GEPA, MIPROv2, SIMBA"),
    ({"dspy_module": "Reflect"}, "unknown DSPy module 'Reflect'; choose one of: ChainOfThought, Predict, "
                                 "ProgramOfThought, ReAct"),
    ({"dspy_module": "no_such_package.mod:Thing"}, "cannot import the DSPy module 'no_such_package.mod:Thing'"),
    ({"dspy_module": "json:JSONDecoder"}, "'json:JSONDecoder' is not a dspy.Module subclass"),
    ({"optimizer": "BootstrapFewShotWithRandomSearch", "num_demos": 0}, "num_demos must be at least 1"),
])
def test_check_refuses_what_cannot_run_and_lists_the_choices(options, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        DSPyBackend().check(OptimizationConfig(raw_input="x", backend="dspy", **options))


@pytest.mark.parametrize("options", [{"optimizer": "SGD"}, {"dspy_module": "Reflect"}])
def test_unknown_optimizer_or_module_fails_before_any_run_exists(tracking, scripted, tmp_path, options):
    with pytest.raises(ConfigError, match="unknown DSPy"):
        run_optimize(tmp_path, **options)
    assert mlflow.search_runs(output_format="list", search_all_experiments=True) == []
    assert scripted.calls == []


@pytest.mark.parametrize("name", ["ChainOfThought", "dspy.ChainOfThought"])
def test_module_names_accept_the_dspy_spelling(name):
    DSPyBackend().check(OptimizationConfig(raw_input="x", backend="dspy", dspy_module=name))


def test_every_optimizer_of_the_issue_is_registered():
    assert set(OPTIMIZERS) == {"MIPROv2", "GEPA", "BootstrapFewShot", "BootstrapFewShotWithRandomSearch",
                               "COPRO", "SIMBA"}


# --- every optimizer end to end: learned, registered, served ------------------------------------

@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_each_optimizer_learns_registers_and_serves_the_compiled_program(tracking, scripted, tmp_path, optimizer):
    result = run_optimize(tmp_path, optimizer=optimizer)
    client = MlflowClient()

    assert (result.initial_score, result.optimized_score) == (0.5, 1.0)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.params["promptomatix.optimizer"] == optimizer
    # every step reported: the start as step 0, then the optimizer's candidates
    best = client.get_metric_history(result.run_id, "best_score")
    assert [m.step for m in best] == list(range(len(best))) and len(best) >= 2
    assert best[0].value == 0.5 and best[-1].value == 1.0
    table = json.loads(mlflow.artifacts.load_text(f"runs:/{result.run_id}/candidates.json"))
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    assert rows[0]["step"] == 0 and rows[0]["score"] == 0.5 and {"instruction", "demos"} <= rows[0].keys()
    assert any(r["score"] == 1.0 for r in rows)

    # what DSPy learned is in the registered prompt: the instruction and the demos
    program = json.loads(mlflow.artifacts.load_text(f"runs:/{result.run_id}/program.json"))
    assert program["kind"] == "dspy" and program["module"] == "Predict"
    learned = program_from_dict(program)
    template = mlflow.genai.load_prompt(result.prompt_uri).template
    assert template == result.prompt and learned.signature.instructions in template
    for demo in learned.demos:
        assert f"Text: {demo['text']}\nLabel: {demo['label']}" in template
    assert learned.demos or MAGIC in learned.signature.instructions

    # the served model reproduces the compiled program's validation outputs
    valid = [json.loads(line) for line in mlflow.artifacts.load_text(
        f"runs:/{result.run_id}/data/valid.jsonl").splitlines()]
    expected = [p["prediction"]["label"] for p in json.loads(mlflow.artifacts.load_text(
        f"runs:/{result.run_id}/valid_predictions.json"))]
    model = mlflow.pyfunc.load_model(result.model_uri)
    served = model.predict(pd.DataFrame({"text": [row["text"] for row in valid]}))
    assert list(served["label"]) == expected == [row["label"] for row in valid]


def test_served_program_matches_calling_the_program_directly(tracking, scripted, tmp_path):
    result = run_optimize(tmp_path, optimizer="BootstrapFewShot", dspy_module="ChainOfThought")
    program = json.loads(mlflow.artifacts.load_text(f"runs:/{result.run_id}/program.json"))
    compiled = program_from_dict(program)
    assert isinstance(compiled, dspy.ChainOfThought) and compiled.predict.demos

    reviews = ["a gripping, funny film", "the worst script this year", "dull and far too long"]
    lm = MeteredLM(ModelSettings(model=FAKE_MODEL), UsageMeter())
    with dspy.context(lm=lm, adapter=make_adapter(program["adapter"])):
        direct = [compiled(text=review).label for review in reviews]
    served = mlflow.pyfunc.load_model(result.model_uri).predict(pd.DataFrame({"text": reviews}))
    assert list(served["label"]) == direct == [TRUTH[r] for r in reviews]


# --- modules ------------------------------------------------------------------------------------

class TwoStep(dspy.Module):
    """A user's own module: drafts a reasoning, then labels with it."""

    def __init__(self, signature):
        super().__init__()
        self.draft = dspy.Predict(dspy.Signature({"text": dspy.InputField(), "notes": dspy.OutputField()},
                                                 "Note what the review says."))
        self.decide = dspy.Predict(signature.prepend("notes", dspy.InputField(), str))

    def forward(self, text):
        notes = self.draft(text=text).notes
        return self.decide(text=text, notes=notes)


@pytest.mark.parametrize("module, kind, marker", [
    ("Predict", dspy.Predict, None),
    ("ChainOfThought", dspy.ChainOfThought, "[[ ## reasoning ## ]]"),
    ("dspy.ProgramOfThought", dspy.ProgramOfThought, "[[ ## generated_code ## ]]"),
    ("ReAct", dspy.ReAct, "[[ ## next_tool_name ## ]]"),
    ("test_dspy:TwoStep", TwoStep, "[[ ## notes ## ]]"),
])
def test_the_chosen_module_is_the_one_compiled_and_run(scripted, accuracy, module, kind, marker):
    recorder = Recorder()
    with dspy.context(interpreter_factory=dspy.LocalInterpreter):  # ProgramOfThought runs its code here
        best = DSPyBackend().optimize(make_task(accuracy, dspy_module=module), recorder).best

    canonical = module.removeprefix("dspy.")
    assert best.program["module"] == canonical and best.score == 1.0
    assert all(c.program["module"] == canonical for _, c in recorder.candidates)
    compiled = program_from_dict(best.program)
    assert type(compiled) is kind
    prompts = [call["prompt"] for call in scripted.calls]
    if marker:
        assert any(marker in p for p in prompts)
    # the registered prompt is the predictor writing the label: its instruction and learned demos
    predictor = main_predictor(compiled, ["label"])
    assert best.prompt.output_fields == ("label",) and best.prompt.demos
    assert best.prompt.instruction == predictor.signature.instructions
    assert len(best.prompt.demos) == len(predictor.demos)


def test_program_of_thought_without_an_interpreter_is_refused_up_front(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="ProgramOfThought runs the code it writes in DSPy's Deno sandbox"):
        DSPyBackend().check(OptimizationConfig(raw_input="x", backend="dspy", dspy_module="ProgramOfThought"))


# --- progress, usage, parse failures -----------------------------------------------------------

def test_steps_start_with_the_uncompiled_program_and_report_each_candidate(scripted, accuracy):
    recorder = Recorder()
    task = make_task(accuracy, optimizer="BootstrapFewShotWithRandomSearch", candidates=2)

    best = DSPyBackend().optimize(task, recorder).best

    (step0, start), *_ = recorder.candidates
    assert step0 == 0 and start.score == 0.5 and start.prompt == task.start and not start.prompt.demos
    assert recorder.iterations[0] == (0, start, [])
    # zero-shot, labels only, unshuffled bootstrap, then 2 random draws: one step each
    assert [step for step, _, _ in recorder.iterations] == list(range(6))
    for step, best_so_far, scored in recorder.iterations[1:]:
        assert scored == [c for s, c in recorder.candidates if s == step]
        assert best_so_far.objective >= start.objective
    assert best.score == 1.0 and best.objective == max(c.objective for _, c in recorder.candidates)
    # scores are the plain quality; the objective carries the length penalty of the program
    learned = program_from_dict(best.program)
    assert best.objective == pytest.approx(best.score * math.exp(-task.objective.lambda_penalty
                                                                 * len(program_text(learned).split())))


def test_a_hook_stopping_after_the_start_skips_the_optimizer(scripted, accuracy):
    class StopAtOnce(Callback):
        def on_iteration_end(self, step, best, candidates):
            raise StopOptimization

    recorder = Recorder()
    best = DSPyBackend().optimize(make_task(accuracy), CallbackList([recorder], [StopAtOnce()])).best

    assert [step for step, _ in recorder.candidates] == [0] and best.score == 0.5
    assert len(scripted.calls) == len(VALID)  # the start was scored, nothing was compiled


def test_every_call_is_counted_in_the_meter(scripted, accuracy):
    meter = UsageMeter()
    DSPyBackend().optimize(make_task(accuracy, meter=meter, optimizer="COPRO"), Callback())

    usage = meter.snapshot()
    assert usage.calls == len(scripted.calls) > 0
    assert usage.prompt_tokens == sum(len(c["prompt"].split()) for c in scripted.calls)
    assert usage.completion_tokens > 0
    assert usage.cost == pytest.approx(0.001 * usage.calls)
    assert usage.parse_failures == 0


def test_unparseable_answers_score_zero_and_are_counted(scripted, accuracy):
    garbled = {"a boring mess of a movie", "I walked out halfway"}

    def sometimes_garbled(prompt, params):
        reviews = re.findall(r"\[\[ ## text ## \]\]\n(.*)", prompt)
        return "no idea" if reviews and reviews[-1].strip() in garbled else dspy_answer(prompt, params)

    scripted.rules = [("", sometimes_garbled)]
    meter = UsageMeter()
    recorder = Recorder()
    DSPyBackend().optimize(make_task(accuracy, meter=meter), recorder)

    start = recorder.candidates[0][1]
    assert start.evaluation.per_example[1] == 0.0 and start.evaluation.predictions[1] == {"label": ""}
    # each unparseable answer (ChatAdapter, then its JSON fallback) counts once
    assert meter.snapshot().parse_failures >= 1


def test_model_errors_are_raised_as_llm_errors(scripted, accuracy):
    import litellm

    scripted.rules = [("", litellm.AuthenticationError(message="bad key", llm_provider="scripted", model="fake"))]
    with pytest.raises(promptomatix.LLMError, match="bad key"):
        DSPyBackend().optimize(make_task(accuracy), Callback())


def test_an_unreadable_proposal_fails_the_optimization_as_an_llm_error(scripted, accuracy):
    def garbled_proposals(prompt, params):
        names, _ = requested_fields(prompt)
        return "no idea" if "proposed_instruction" in names else dspy_answer(prompt, params)

    scripted.rules = [("", garbled_proposals)]
    meter = UsageMeter()
    with pytest.raises(promptomatix.LLMError, match="could not read a model answer"):
        DSPyBackend().optimize(make_task(accuracy, meter=meter, optimizer="COPRO"), Callback())
    assert meter.snapshot().parse_failures == 1


def test_usage_and_parse_failures_reach_the_result(tracking, scripted, tmp_path):
    result = run_optimize(tmp_path, optimizer="BootstrapFewShot")
    assert result.usage.calls == len(scripted.calls)
    assert result.usage.cost == pytest.approx(0.001 * result.usage.calls)
    run = MlflowClient().get_run(result.run_id)
    assert run.data.metrics["total_parse_failures"] == 0.0


def test_dspy_calls_are_spans_of_the_run_grouped_by_step_and_program(tracking, scripted, tmp_path):
    # COPRO: its proposals (optimizer model) and its evaluations in DSPy's worker threads
    result = run_optimize(tmp_path, optimizer="COPRO")
    experiment = MlflowClient().get_run(result.run_id).info.experiment_id
    traces = mlflow.search_traces(locations=[experiment], run_id=result.run_id, return_type="list")
    roots = {t.data.spans[0].name: t.data.spans[0] for t in traces}
    assert {"intake", "step 0 · starting program", "compile · COPRO", "step 1 · program 1"} <= roots.keys()
    llm = [s for t in traces for s in t.data.spans if s.span_type == "LLM"]
    assert all(s.parent_id for s in llm)  # every call inside its step's trace, none on its own
    assert sum(not s.attributes["cached"] for s in llm) == result.usage.calls == len(scripted.calls)
    # what the model was asked and answered, with tokens and latency
    span = next(s for s in llm if s.parent_id == roots["step 0 · starting program"].span_id)
    assert span.inputs["messages"][-1]["content"] and span.outputs["answer"]
    assert span.attributes["mlflow.chat.tokenUsage"]["input_tokens"] > 0 and span.end_time_ns > span.start_time_ns
    assert len([s for s in llm if s.parent_id == roots["step 0 · starting program"].span_id]) == len(VALID)
    # a scored program's trace names its prompt as the candidate table does
    table = json.loads(mlflow.artifacts.load_text(f"runs:/{result.run_id}/candidates.json"))
    prompt_ids = {dict(zip(table["columns"], row))["prompt_id"] for row in table["data"]}
    assert roots["step 0 · starting program"].attributes["prompt_id"] in prompt_ids
    assert len([s for s in llm if s.parent_id == roots["compile · COPRO"].span_id]) > 0
    # every trace list shows what each step was given and what came of it
    for name, root in roots.items():
        assert root.inputs and root.outputs, name
    assert roots["compile · COPRO"].inputs["train rows"] > 0 and roots["compile · COPRO"].outputs["compiled"]
    assert roots["step 1 · program 1"].outputs["score"] == roots["step 1 · program 1"].attributes["score"]


# --- the metric ----------------------------------------------------------------------------------

@pytest.fixture
def metric_parts(accuracy):
    return accuracy, ("label",), Objective(0.01)


def tagged_prediction(program, **outputs):
    """A prediction as a module call leaves it: marked with its program by ProgramTagger."""
    tagger = ProgramTagger()
    tagger.on_module_start("call", program, {})
    prediction = dspy.Prediction(**outputs)
    tagger.on_module_end("call", prediction, None)
    return prediction


def test_metric_without_trace_penalizes_the_predicting_program(metric_parts):
    metric = ProgramMetric(*metric_parts)
    program = build_program("Predict", SignatureSpec("Say the label.", ("text",), ("label",)),
                            demos=[{"text": "fine film", "label": "positive"}])
    words = len("Say the label. fine film positive".split())
    gold = dspy.Example(text="good", label="positive").with_inputs("text")

    assert metric(gold, tagged_prediction(program, label="positive")) == pytest.approx(math.exp(-0.01 * words))
    assert metric(gold, tagged_prediction(program, label="negative")) == 0.0
    assert metric(gold, dspy.Prediction(label="positive")) == 1.0  # no program known: no penalty
    assert metric(gold, None) == 0.0


def test_metric_with_trace_penalizes_the_traced_predictors(metric_parts):
    metric = ProgramMetric(*metric_parts)
    program = build_program("Predict", SignatureSpec("Say the label now.", ("text",), ("label",)))
    gold = dspy.Example(text="good", label="positive").with_inputs("text")
    prediction = dspy.Prediction(label="positive")
    trace = [(program, {"text": "good"}, prediction)]

    assert metric(gold, prediction, trace) == pytest.approx(math.exp(-0.01 * 4))
    # the prediction's own program, when tagged, wins over the trace (GEPA expects one score)
    other = build_program("Predict", SignatureSpec("Label.", ("text",), ("label",)))
    assert metric(gold, tagged_prediction(other, label="positive"), trace) == pytest.approx(math.exp(-0.01))


def test_gepa_feedback_metric_returns_the_same_score_with_feedback(metric_parts):
    plain = ProgramMetric(*metric_parts)
    feedback = FeedbackMetric(plain)
    program = build_program("Predict", SignatureSpec("Say the label.", ("text",), ("label",)))
    gold = dspy.Example(text="bad", label="negative").with_inputs("text")
    wrong = tagged_prediction(program, label="positive")
    right = tagged_prediction(program, label="negative")

    out = feedback(gold, wrong, None, "self", [(program, {"text": "bad"}, wrong)])
    assert isinstance(out, dspy.Prediction) and out.score == 0.0
    assert "expected 'negative', got 'positive'" in out.feedback
    out = feedback(gold, right)
    assert out.score == pytest.approx(plain(gold, right)) == pytest.approx(math.exp(-0.01 * 3))
    assert "words cost" in out.feedback


# --- the text adapter for base models -------------------------------------------------------------

def test_base_models_get_the_text_adapter_and_chat_models_the_chat_adapter():
    assert adapter_spec("embedded/gemma-3-270m", single_line=["label"]) == {"name": "text", "single_line": ["label"]}
    assert adapter_spec("openai/gpt-4o-mini", single_line=["label"]) == {"name": "chat"}
    assert isinstance(make_adapter({"name": "chat"}), dspy.ChatAdapter)


def test_text_adapter_writes_the_prompt_format_and_reads_the_continuation():
    spec = SignatureSpec("Classify the sentiment.", ("text",), ("label",))
    program = build_program("Predict", spec, demos=TRAIN[:2])
    adapter = TextAdapter(single_line=["label"])

    (message,) = adapter.format(program.signature, program.demos, {"text": "a fine film"})
    prompt = program_prompt(program, spec, single_line=True)
    assert message["content"] == prompt.render({"text": "a fine film"})
    assert adapter.stop(program.signature) == prompt.stop == ["\n"]
    assert adapter.parse(program.signature, " positive\nText: more") == {"label": "positive"}

    cot = build_program("ChainOfThought", spec).predict.signature
    assert adapter.stop(cot) == ["\n\n", "\nText:"]  # one line is for the label alone
    assert adapter.parse(cot, "It is praised.\nLabel: positive") == {"reasoning": "It is praised.",
                                                                       "label": "positive"}


def test_text_adapter_asks_again_for_the_fields_a_base_model_did_not_write(fake_llm):
    # A base model writes the reasoning and stops; asked again after "Label:", it labels.
    fake_llm.rules = [("Reasoning: It is praised.\nLabel:", " positive"), ("", "It is praised.")]
    meter = UsageMeter()
    program = build_program("ChainOfThought", SignatureSpec("Classify.", ("text",), ("label",)))
    with dspy.context(lm=MeteredLM(ModelSettings(model=FAKE_MODEL), meter), adapter=TextAdapter(meter)):
        prediction = program(text="a fine film")

    assert (prediction.reasoning, prediction.label) == ("It is praised.", "positive")
    first, second = (call["prompt"] for call in fake_llm.calls)
    assert first.endswith("Text: a fine film\nReasoning:")
    assert second.endswith("Text: a fine film\nReasoning: It is praised.\nLabel:")
    assert meter.snapshot().parse_failures == 0 and meter.snapshot().calls == 2
    assert fake_llm.calls[0]["params"]["stop"] == ["\n\n", "\nText:"]


def test_text_adapter_counts_what_it_cannot_parse(fake_llm):
    fake_llm.rules = [("", "  ")]  # nothing but blanks
    meter = UsageMeter()
    program = build_program("Predict", SignatureSpec("Classify.", ("text",), ("label",)))
    with dspy.context(lm=MeteredLM(ModelSettings(model=FAKE_MODEL), meter), adapter=TextAdapter(meter)):
        with pytest.raises(dspy.utils.exceptions.AdapterParseError):
            program(text="a fine film")
    assert meter.snapshot().parse_failures == 1 and meter.snapshot().calls == 1


def test_a_meta_prompt_with_the_dspy_backend_is_refused_not_ignored(tmp_path):
    template = tmp_path / "mine.txt"
    template.write_text("Rewrite $instruction")
    with pytest.raises(ConfigError, match="^meta_prompt applies to --backend meta_prompt"):
        DSPyBackend().check(OptimizationConfig(raw_input="x", backend="dspy", meta_prompt=str(template)))


def test_a_dspy_run_stopped_before_compiling_is_resumed_with_its_data(tracking, scripted, tmp_path):
    class Interrupt(Callback):  # as if the process were stopped once the data was logged
        def on_optimization_start(self, task):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_optimize(tmp_path, optimizer="BootstrapFewShot", name="resumable", callbacks=[Interrupt()])
    (stopped,) = mlflow.search_runs(output_format="list", search_all_experiments=True)
    assert stopped.info.status == "KILLED"
    scripted.calls.clear()

    result = promptomatix.optimize(resume=stopped.info.run_id, show_progress=False)

    # DSPy compiles in one step: no checkpoint, so it compiles again, on the saved data
    assert not any("Request:" in c["prompt"] for c in scripted.calls)
    assert (result.initial_score, result.optimized_score) == (0.5, 1.0)
    for part in ("train", "valid"):
        assert mlflow.artifacts.load_text(f"runs:/{result.run_id}/data/{part}.jsonl") == \
            mlflow.artifacts.load_text(f"runs:/{stopped.info.run_id}/data/{part}.jsonl")
    (version,) = MlflowClient().search_model_versions("name = 'resumable'")
    assert version.run_id == result.run_id


@pytest.mark.parametrize("sized, trials", [({"iterations": 1, "candidates": 2}, 2), ({}, None)])
def test_mipro_takes_iterations_and_candidates_when_the_user_sizes_the_search(tracking, scripted, tmp_path,
                                                                                monkeypatch, sized, trials):
    seen = {}
    compile_ = dspy.MIPROv2.compile

    def recording(self, student, **kwargs):
        seen.update(auto=self.auto, num_candidates=self.num_candidates, num_trials=kwargs.get("num_trials"))
        return compile_(self, student, **kwargs)

    monkeypatch.setattr(dspy.MIPROv2, "compile", recording)
    options = {"iterations": None, "candidates": None} | sized  # None: the quick preset's
    run_optimize(tmp_path, optimizer="MIPROv2", **options)
    if sized:
        assert seen == {"auto": None, "num_candidates": 2, "num_trials": trials}
    else:
        assert seen == {"auto": "light", "num_candidates": None, "num_trials": None}
