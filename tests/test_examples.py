"""The examples under `examples/` (see docs/customizing.md), each registered and run through a
real optimization with the scripted fake LLM on a temporary MLflow store."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import mlflow
import pytest
from conftest import FAKE_MODEL, input_request, sample_text, written_inputs
from mlflow import MlflowClient

import promptomatix

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
INTAKE = {"description": "Classify the sentiment of a movie review.", "task_type": "classification",
          "input_fields": ["review"], "output_fields": ["sentiment"], "labels": ["positive", "negative"]}
BETTER = "Read the review CAREFULLY and answer positive or negative."


@pytest.fixture(autouse=True)
def restore_registries(monkeypatch):
    """The examples register into process-wide registries: undo that after each test, so other
    test modules see only the built-ins (and their own plugins)."""
    import litellm

    from promptomatix.backends import BACKENDS
    from promptomatix.backends.dspy.optimizers import OPTIMIZERS
    from promptomatix.backends.dspy.program import MODULES
    from promptomatix.cli import COMMANDS
    from promptomatix.config.plugin_options import OPTIONS
    from promptomatix.data.sources import DATA_SOURCES
    from promptomatix.data.steps import DATA_STEPS
    from promptomatix.models.providers import PROVIDERS
    from promptomatix.run.callbacks import HOOKS
    from promptomatix.scoring import METRICS
    from promptomatix.task.types import TASK_TYPES
    from promptomatix.templates import META_PROMPTS

    for registry in (BACKENDS, OPTIMIZERS, MODULES, HOOKS, COMMANDS, DATA_SOURCES, DATA_STEPS, META_PROMPTS,
                     PROVIDERS, METRICS, TASK_TYPES, OPTIONS):
        registry.names()  # load the built-ins and entry points first
        monkeypatch.setattr(registry, "_items", dict(registry._items))
    monkeypatch.setattr(litellm, "custom_provider_map", list(litellm.custom_provider_map))


@pytest.fixture
def examples(monkeypatch):
    """Imports an example module from `examples/` by name."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return importlib.import_module


def synthetic(prompt: str, params: dict) -> str:
    """Synthetic reviews for whatever fields the request's schema asks for."""
    schema = params["response_format"]["json_schema"]["schema"]["properties"]["examples"]
    rows = []
    for _ in range(schema["minItems"]):
        synthetic.counter += 1
        label = "positive" if synthetic.counter % 2 else "negative"
        word = "good" if label == "positive" else "bad"
        rows.append({"review": f"a {word} film number {synthetic.counter}", "sentiment": label})
    return json.dumps({"examples": rows})


def written(label: str, number: int) -> str:
    return sample_text("good" if label == "positive" else "bad", number)


def answer_task(prompt: str, params: dict) -> str:
    """Right only when the prompt says CAREFULLY or shows demos; else a useless answer."""
    query = prompt.rsplit("Review:", 1)[-1]
    if "CAREFULLY" not in prompt and prompt.count("Sentiment:") < 2:
        return "maybe"
    return "positive" if "good" in query else "negative"


@pytest.fixture
def scripted(fake_llm):
    synthetic.counter = 0
    fake_llm.rules = [
        ("Request:", INTAKE),
        ("new, varied and realistic examples", synthetic),
        written_inputs(written, "Sentiment"),
        ("Improved instruction", {"instruction": BETTER}),
        ("Terse instruction", {"instruction": BETTER}),
        ("Sentiment:", answer_task),
    ]
    return fake_llm


def run_optimize(**options):
    defaults = dict(raw_input="Classify the sentiment of a movie review as positive or negative",
                    model=FAKE_MODEL, synthetic_data_size=6, iterations=1, candidates=1,
                    num_threads=2, show_progress=False, register=False)
    return promptomatix.optimize(**(defaults | options))


def params_of(result) -> dict:
    return mlflow.get_run(result.run_id).data.params


def predictions_of(result) -> list:
    return [row["prediction"] for row in
            json.loads(mlflow.artifacts.load_text(f"runs:/{result.run_id}/valid_predictions.json"))]


def test_custom_backend_runs_and_is_recorded(tracking, scripted, examples):
    example = examples("custom_backend")
    example.register(replace=True)
    result = run_optimize(backend="demos_only", num_demos=2, candidates=2)

    assert params_of(result)["promptomatix.backend"] == "demos_only"
    assert mlflow.get_run(result.run_id).data.tags["promptomatix.backend"] == "demos_only"
    # only demos change: the instruction is never rewritten, and demos lift the score
    assert not any("Improved instruction" in c["prompt"] for c in scripted.calls)
    assert result.initial_score == 0.0 and result.optimized_score == 1.0
    assert "CAREFULLY" not in result.prompt and result.prompt.count("Sentiment:") > 1
    steps = [m.step for m in MlflowClient().get_metric_history(result.run_id, "best_score")]
    assert steps == [0, 1]


def test_custom_backend_refuses_a_config_it_cannot_honour(tracking, scripted, examples):
    examples("custom_backend").register(replace=True)
    with pytest.raises(promptomatix.ConfigError, match="needs num_demos"):
        run_optimize(backend="demos_only", num_demos=0)
    assert scripted.calls == []


def test_custom_metric_module_scores_the_run(tracking, scripted, examples):
    examples("custom_metric.custom_metric").register(replace=True)
    # answers carry a trailing remark: exact classification fails them, starts_with_label does not
    scripted.rules[-1] = ("Sentiment:", lambda p, q: answer_task(p, q) + " (sure)")
    result = run_optimize(metric_weights={"starts_with_label": 1.0})

    assert params_of(result)["promptomatix.metric_weights"] == "starts_with_label=1.0"
    assert result.initial_score == 0.0 and result.optimized_score == 1.0
    # a label prompt's answer is read as its label: the remark is not part of it
    assert {p["sentiment"] for p in predictions_of(result)} == {"positive", "negative"}


def test_custom_task_type_supplies_default_fields_and_metric(tracking, scripted, examples):
    examples("custom_task_type").register(replace=True)
    scripted.rules[0] = ("Request:", {"description": "Say if a review is positive or negative.",
                                      "task_type": "review_sentiment", "input_fields": [],
                                      "output_fields": [], "labels": []})
    result = run_optimize(task_type="review_sentiment")

    assert result.spec.task_type == "review_sentiment"
    assert (result.spec.input_fields, result.spec.output_fields) == (("review",), ("sentiment",))
    assert "{{review}}" in result.prompt
    assert mlflow.get_run(result.run_id).data.tags["promptomatix.task_type"] == "review_sentiment"
    # the intake model was offered the new type and told what it means
    intake = next(c for c in scripted.calls if "Request:" in c["prompt"])
    assert "review_sentiment" in json.dumps(intake["params"]["response_format"])
    assert result.optimized_score == 1.0  # exact_match, the type's metric


def test_custom_meta_prompt_is_what_the_optimizer_model_reads(tracking, scripted, examples):
    example = examples("custom_meta_prompt")
    example.register(replace=True)
    result = run_optimize(meta_prompt="terse_rewrite", num_demos=0)

    rewrites = [c["prompt"] for c in scripted.calls if "Terse instruction:" in c["prompt"]]
    assert rewrites and not any("Improved instruction" in c["prompt"] for c in scripted.calls)
    assert "Write a terser instruction" in rewrites[0] and "$description" not in rewrites[0]
    assert "Classify the sentiment of a movie review." in rewrites[0]  # $description filled in
    assert params_of(result)["promptomatix.meta_prompt"] == "terse_rewrite"
    assert "CAREFULLY" in result.prompt and result.optimized_score == 1.0


@pytest.mark.parametrize("given", ["function", "import path"])
def test_a_meta_prompt_written_as_a_function(tracking, scripted, examples, given):
    example = examples("custom_meta_prompt")
    source = example.terse_meta_prompt if given == "function" else "custom_meta_prompt:terse_meta_prompt"
    result = run_optimize(meta_prompt=source, num_demos=0)

    rewrites = [c["prompt"] for c in scripted.calls if "Terse instruction:" in c["prompt"]]
    assert rewrites and rewrites[0].startswith("Task: Classify the sentiment of a movie review.")
    assert "Write a terser instruction that fixes them." in rewrites[0]
    assert params_of(result)["promptomatix.meta_prompt"] == "custom_meta_prompt:terse_meta_prompt"
    assert "CAREFULLY" in result.prompt and result.optimized_score == 1.0


def test_intake_and_synthetic_templates_are_chosen_per_run(tracking, scripted, tmp_path):
    intake = tmp_path / "intake.txt"
    intake.write_text("MY INTAKE. Types: $task_types\nRequest: $request\nSpec:")

    def inputs(description, label, input_label):  # the classification's synthetic inputs
        return f"MY INPUTS for {description}\nSentiment: {label}\n{input_label}:"

    result = run_optimize(intake_prompt=str(intake), inputs_prompt=inputs)
    assert any(c["prompt"].startswith("MY INTAKE. Types: classification") for c in scripted.calls)
    assert any(c["prompt"].startswith("MY INPUTS for Classify the sentiment") for c in scripted.calls)
    params = params_of(result)
    assert params["promptomatix.intake_prompt"] == str(intake)
    assert params["promptomatix.inputs_prompt"].endswith("inputs")
    bad = tmp_path / "bad.txt"
    bad.write_text("Request: $request for $audience")
    with pytest.raises(promptomatix.ConfigError, match=re.escape("unknown placeholders $audience")):
        run_optimize(intake_prompt=str(bad))


def test_custom_meta_prompt_with_an_unknown_placeholder_is_refused(tracking, scripted, tmp_path, examples):
    from promptomatix.backends.metaprompt import REWRITE_FIELDS
    from promptomatix.templates import load_template

    shipped = load_template(str(examples("custom_meta_prompt").TEMPLATE), allowed=REWRITE_FIELDS)
    assert set(shipped.get_identifiers()) <= REWRITE_FIELDS
    bad = tmp_path / "bad.txt"
    bad.write_text("Rewrite $instruction for $audience")
    with pytest.raises(promptomatix.ConfigError, match=re.escape("unknown placeholders $audience")):
        run_optimize(meta_prompt=str(bad))


def test_custom_provider_answers_as_the_task_model(tracking, scripted, examples):
    examples("custom_provider").register(replace=True)
    result = run_optimize(model="echo/positive", optimizer_model=FAKE_MODEL)

    assert params_of(result)["model/model"] == "echo/positive"
    assert {p["sentiment"] for p in predictions_of(result)} == {"positive"}
    assert 0.0 < result.optimized_score < 1.0  # right on the positive reviews only
    # the scripted model only did the optimizer's work: intake, data and rewrites, no labelling
    assert all(any(k in c["prompt"] for k in ("Request:", "Improved instruction")) or input_request(c["prompt"], "Sentiment")
               for c in scripted.calls)


def test_custom_hook_stops_the_search_at_the_target(tracking, scripted, examples):
    examples("custom_hook").register(replace=True)
    result = run_optimize(hooks=["stop_at_target"], iterations=3)

    assert result.extra["stopped_early"] is True and result.optimized_score == 1.0
    steps = [m.step for m in MlflowClient().get_metric_history(result.run_id, "best_score")]
    assert steps == [0, 1]  # iterations 2 and 3 never ran
    assert sum("Improved instruction" in c["prompt"] for c in scripted.calls) == 1


def test_a_plugin_option_sets_the_hooks_target_per_run(tracking, scripted, examples):
    examples("custom_hook").register(replace=True)
    # A target no run reaches: the hook never stops the search, all three iterations run.
    result = run_optimize(hooks=["stop_at_target"], iterations=3, stop_target=1.5)
    assert result.extra["stopped_early"] is False
    assert [m.step for m in MlflowClient().get_metric_history(result.run_id, "best_score")] == [0, 1, 2, 3]
    assert params_of(result)["promptomatix.stop_target"] == "1.5"
    # re-runnable: the effective options name it
    assert "stop_target: 1.5" in mlflow.artifacts.load_text(f"runs:/{result.run_id}/config.yaml")


def test_a_plugin_option_is_a_flag_and_a_config_key_checked_like_a_builtin(tracking, scripted, examples, tmp_path):
    from click.testing import CliRunner

    from promptomatix.cli import cli

    examples("custom_hook").register(replace=True)
    runner = CliRunner()
    assert "--stop-target" in runner.invoke(cli, ["optimize", "--help"]).output
    bad = runner.invoke(cli, ["optimize", "--raw-input", "Classify reviews", "--hook", "stop_at_target",
                              "--stop-target", "high"])
    assert bad.exit_code == 2 and "high" in bad.output and "Traceback" not in bad.output
    with pytest.raises(promptomatix.ConfigError, match="stop target must be a number, got 'high'"):
        run_optimize(hooks=["stop_at_target"], stop_target="high")
    assert scripted.calls == []
    config = tmp_path / "run.yaml"
    config.write_text("raw_input: Classify the sentiment of a movie review as positive or negative\n"
                      "hooks: [stop_at_target]\nstop_target: 1.5\nsynthetic_data_size: 6\niterations: 2\n"
                      "candidates: 1\nregister: false\n")
    out = runner.invoke(cli, ["optimize", "--config", str(config), "--model", FAKE_MODEL, "--num-threads", "2",
                              "--quiet"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    (run,) = mlflow.search_runs(output_format="list", search_all_experiments=True)
    assert run.data.params["promptomatix.stop_target"] == "1.5"
    assert [m.step for m in MlflowClient().get_metric_history(run.info.run_id, "best_score")] == [0, 1, 2]


# --- the DSPy module: the dspy backend with answers in DSPy's chat format ----------------------

def dspy_answer(prompt: str, params: dict) -> str:
    """Answers DSPy's ChatAdapter: the fields its closing line asks for, with the review's label
    (right once the prompt carries demos, else always "positive", with a trailing period)."""
    asked = re.findall(r"Respond with the corresponding output fields, starting with the field (.*?), and then "
                       r"ending with the marker", prompt)
    if not asked:
        return "ok"
    names = re.findall(r"`\[\[ ## (\w+) ## \]\]`", asked[-1])
    review = re.findall(r"\[\[ ## review ## \]\]\n(.*)", prompt)[-1]
    learned = re.search(r"\[\[ ## sentiment ## \]\]\n(positive|negative)\n", prompt) is not None
    label = ("positive" if "good" in review else "negative") if learned else "positive"
    values = {name: label + "." if name == "sentiment" else "Read the review CAREFULLY." for name in names}
    return "\n\n".join(f"[[ ## {n} ## ]]\n{v}" for n, v in values.items()) + "\n\n[[ ## completed ## ]]"


@pytest.fixture
def dspy_scripted(fake_llm):
    import dspy

    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    fake_llm.rules = [("Request:", INTAKE), ("", dspy_answer)]
    return fake_llm


def write_data(tmp_path):
    rows = [{"review": f"a {'good' if i % 2 else 'bad'} film number {i}",
             "sentiment": "positive" if i % 2 else "negative"} for i in range(8)]
    paths = []
    for name, part in (("train", rows[:4]), ("valid", rows[4:])):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in part))
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("module", ["Labeler", "custom_dspy_module:Labeler"])
def test_custom_dspy_module_is_compiled_and_its_answers_tidied(tracking, dspy_scripted, tmp_path, examples, module):
    examples("custom_dspy_module").register(replace=True)
    train, valid = write_data(tmp_path)
    result = run_optimize(backend="dspy", optimizer="BootstrapFewShot", dspy_module=module,
                          train_data=train, valid_data=valid, task_type="classification",
                          input_fields="review", output_fields="sentiment", num_demos=2)

    program = mlflow.artifacts.load_dict(f"runs:/{result.run_id}/program.json")
    assert program["module"] == module
    assert params_of(result)["promptomatix.dspy_module"] == module
    # the model answers "positive." and the module drops the period, so the labels score
    predictions = [p["sentiment"] for p in predictions_of(result)]
    assert predictions and not any(p.endswith(".") for p in predictions)
    assert result.initial_score == 0.5 and result.optimized_score == 1.0


def test_custom_dspy_optimizer_compiles_the_program(tracking, dspy_scripted, tmp_path, examples):
    examples("custom_dspy_optimizer").register(replace=True)
    train, valid = write_data(tmp_path)
    result = run_optimize(backend="dspy", optimizer="LabeledFewShot", dspy_module="Predict",
                          train_data=train, valid_data=valid, task_type="classification",
                          input_fields="review", output_fields="sentiment", num_demos=2)

    assert params_of(result)["promptomatix.optimizer"] == "LabeledFewShot"
    program = mlflow.artifacts.load_dict(f"runs:/{result.run_id}/program.json")
    # LabeledFewShot with sample=False: the first num_demos training examples, as they are
    assert [d["review"] for d in program["state"]["demos"]] == ["a bad film number 0", "a good film number 1"]
    assert result.initial_score == 0.5 and result.optimized_score == 1.0


# --- data: a custom source and a custom preprocessing step ---------------------------------------

def sqlite_reviews(path, rows):
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE reviews (body TEXT, verdict TEXT)")
        db.executemany("INSERT INTO reviews VALUES (?, ?)", rows)
    db.close()
    return path


def test_custom_data_source_feeds_the_run(tracking, scripted, tmp_path, examples):
    examples("custom_data_source").register(replace=True)
    rows = [(f"a {'good' if i % 2 else 'bad'} film number {i}", "positive" if i % 2 else "negative")
            for i in range(8)]
    db = sqlite_reviews(tmp_path / "reviews.db", rows)
    result = run_optimize(train_data=f"sqlite:{db}?table=reviews", field_map={"body": "review", "verdict": "sentiment"},
                          task_type="classification", input_fields="review", output_fields="sentiment")

    logged = [json.loads(line) for part in ("train", "valid") for line in
              mlflow.artifacts.load_text(f"runs:/{result.run_id}/data/{part}.jsonl").splitlines()]
    assert sorted((r["review"], r["sentiment"]) for r in logged) == sorted(rows)
    assert not any("new, varied" in c["prompt"] for c in scripted.calls)  # no synthetic data asked for
    with pytest.raises(promptomatix.DataError, match=r"sqlite:.*no such table: nothing"):
        run_optimize(train_data=f"sqlite:{db}?table=nothing")


def test_custom_data_step_rejects_user_examples_and_says_why(tracking, scripted, tmp_path, examples):
    examples("custom_data_step").register(replace=True)
    rows = [{"review": f"a {'good' if i % 2 else 'bad'} film number {i}",
             "sentiment": "positive" if i % 2 else "negative"} for i in range(8)]
    rows += [{"review": "  good ", "sentiment": "positive"}, {"review": "bad  film", "sentiment": "negative"}]
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run_optimize(train_data=str(path), data_steps=["strip", "min_words"], task_type="classification",
                          input_fields="review", output_fields="sentiment")

    assert result.train_size + result.valid_size == 8
    metrics = mlflow.get_run(result.run_id).data.metrics
    assert metrics["data_rejected"] == 2 and metrics["data_rejected.min_words"] == 2
    rejected = mlflow.artifacts.load_dict(f"runs:/{result.run_id}/data_rejections.json")
    assert sorted(r["example"]["review"] for r in rejected) == ["bad film", "good"]  # stripped first
    assert {r["step"] for r in rejected} == {"min_words"}
    assert all("at least 3 are needed" in r["reason"] for r in rejected)
    assert params_of(result)["promptomatix.data_steps"] == "strip,min_words"


def test_custom_data_step_on_synthetic_data_asks_for_more(tracking, scripted, examples):
    examples("custom_data_step").register(replace=True)

    def short_every_other(label, number):  # even requests: reviews of two words, which the step turns down
        word = "good" if label == "positive" else "bad"
        return f"{word} {number}" if number % 2 == 0 else sample_text(word, number)

    scripted.rules[2] = written_inputs(short_every_other, "Sentiment")
    result = run_optimize(data_steps=["min_words"], synthetic_data_size=6)

    assert result.train_size + result.valid_size == 6
    metrics = mlflow.get_run(result.run_id).data.metrics
    assert metrics["data_rejected.min_words"] > 0
    assert metrics["synthetic_rejected"] == metrics["data_rejected.min_words"]
    logged = mlflow.artifacts.load_text(f"runs:/{result.run_id}/data/train.jsonl")
    assert all(len(json.loads(line)["review"].split()) >= 3 for line in logged.splitlines())


def test_plugins_lists_the_new_extension_points(examples):
    from click.testing import CliRunner

    from promptomatix.cli import cli

    for name in ("custom_data_source", "custom_data_step", "custom_dspy_optimizer", "custom_hook"):
        examples(name).register(replace=True)
    out = CliRunner().invoke(cli, ["plugins"]).output
    lines = {line.split(" ", 1)[0]: line for line in out.splitlines() if not line.startswith(" ")}
    assert "sqlite" in lines["data_sources"] and "jsonl" in lines["data_sources"]
    assert "min_words" in lines["data_steps"] and "known_label" in lines["data_steps"]
    assert "LabeledFewShot" in lines["dspy_optimizers"] and "MIPROv2" in lines["dspy_optimizers"]
    assert "stop_target" in lines["options"]


# --- the CLI: a plugin command and a config file naming the examples' plugins --------------------

def test_config_file_and_custom_command_from_the_cli(tracking, scripted, examples):
    from click.testing import CliRunner

    from promptomatix.cli import cli

    for name in ("custom_backend", "custom_hook", "custom_command"):
        examples(name).register(replace=True)
    runner = CliRunner()
    out = runner.invoke(cli, ["optimize", "--config", str(EXAMPLES / "config.yaml"), "--model", FAKE_MODEL,
                              "--num-threads", "2", "--quiet"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    (run,) = mlflow.search_runs(output_format="list", search_all_experiments=True)
    assert run.data.params["promptomatix.backend"] == "demos_only"
    assert run.data.params["promptomatix.hooks"] == "stop_at_target"
    # demos reach 1.0 in the first iteration, so the hook ends the search there
    assert [m.step for m in MlflowClient().get_metric_history(run.info.run_id, "best_score")] == [0, 1]

    assert "run-scores" in runner.invoke(cli, ["--help"]).output
    scored = runner.invoke(cli, ["run-scores", run.info.run_id], catch_exceptions=False)
    assert scored.exit_code == 0 and scored.output.strip() == f"{run.info.run_id}: 0.000 -> 1.000"


# --- metrics in each shape, a metric reading the prompt, the final-evaluation metric ------------

@pytest.mark.parametrize("metric", ["starts_with_label", "label_in_answer", "exact_label"])
def test_each_metric_shape_scores_the_run(tracking, scripted, examples, metric):
    examples("custom_metric.custom_metric").register(replace=True)
    examples("custom_metric_shapes").register(replace=True)
    if metric != "exact_label":  # a trailing remark: only these two metrics forgive it
        scripted.rules[-1] = ("Sentiment:", lambda p, q: answer_task(p, q) + " (sure)")
    result = run_optimize(metric_weights={metric: 1.0})

    assert params_of(result)["promptomatix.metric_weights"] == f"{metric}=1.0"
    assert result.initial_score == 0.0 and result.optimized_score == 1.0


def test_a_metric_of_no_known_shape_is_refused_when_registered():
    from promptomatix.scoring import register_metric

    def guide_metric(example, pred, instructions, trace):  # the original guide's signature
        return 1.0

    with pytest.raises(promptomatix.ConfigError) as refused:
        register_metric("guide_metric", guide_metric)
    assert "requires instructions" in str(refused.value) and "prompt=None" in str(refused.value)
    assert "\n" not in str(refused.value)
    with pytest.raises(promptomatix.ConfigError, match="a metric is an evaluate module"):
        register_metric("one_argument", lambda text: 1.0)
    with pytest.raises(promptomatix.ConfigError, match="is a float"):
        register_metric("a_number", 0.5)


def test_a_metric_that_reads_the_prompt_penalizes_length(tracking, scripted, examples):
    examples("custom_metric_shapes").register(replace=True)
    seen = []

    def words_of_prompt(example, pred, trace=None, prompt=""):
        seen.append(prompt)
        return 1.0 - min(1.0, len(prompt.split()) / 1000)

    promptomatix.scoring.register_metric("words_of_prompt", words_of_prompt, replace=True)
    result = run_optimize(metric_weights={"words_of_prompt": 1.0})
    assert seen and all("Classify the sentiment" in p or "CAREFULLY" in p for p in seen)
    assert 0.9 < result.initial_score < 1.0  # the score came from the prompt, not the answers


def test_a_final_evaluation_metric_is_reported_and_used_by_evaluate(tracking, scripted, examples, tmp_path):
    from click.testing import CliRunner

    from promptomatix.cli import cli

    examples("custom_metric_shapes").register(replace=True)
    result = run_optimize(eval_metrics=["short_and_right", "label_in_answer"], register=True, name="final-eval")

    metrics = mlflow.get_run(result.run_id).data.metrics
    assert metrics["final.short_and_right"] == 1.0 and metrics["final.label_in_answer"] == 1.0
    assert result.extra["final_scores"] == {"short_and_right": 1.0, "label_in_answer": 1.0}
    test = tmp_path / "test.jsonl"
    test.write_text("".join(json.dumps({"review": f"a {w} film", "sentiment": s}) + "\n"
                            for w, s in (("good", "positive"), ("bad", "negative"))))
    out = CliRunner().invoke(cli, ["evaluate", "final-eval@1", "--data", str(test), "--quiet"],
                             catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "short_and_right" in out.output
    version = MlflowClient().get_model_version("final-eval", "1")
    assert version.tags["test_metric"] == "short_and_right"
    run = mlflow.get_run(version.tags["test_run_id"])
    assert run.data.metrics["test_score.label_in_answer"] == 1.0


def test_a_dspy_shaped_metric_scores_the_dspy_backend(tracking, dspy_scripted, tmp_path, examples):
    examples("custom_dspy_module").register(replace=True)
    examples("custom_metric_shapes").register(replace=True)
    train, valid = write_data(tmp_path)
    result = run_optimize(backend="dspy", optimizer="BootstrapFewShot", dspy_module="Labeler",
                          train_data=train, valid_data=valid, task_type="classification",
                          input_fields="review", output_fields="sentiment", num_demos=2,
                          metric_weights={"exact_label": 1.0})

    assert params_of(result)["promptomatix.metric_weights"] == "exact_label=1.0"
    assert result.initial_score == 0.5 and result.optimized_score == 1.0


# --- docs/customizing.md: its examples exist, are run above, and say what they show ------------

DOC = Path(__file__).resolve().parents[1] / "docs" / "customizing.md"


def test_every_example_the_guide_table_names_exists_and_is_run_here():
    text = DOC.read_text()
    linked = set(re.findall(r"\(\.\./examples/([\w./]+?)/?\)", text))
    assert {"custom_metric_shapes.py", "custom_hook.py", "custom_meta_prompt.py", "custom_metric"} <= linked
    tests = Path(__file__).read_text()
    for name in linked:
        assert (EXAMPLES / name).exists(), name
        module = name.removesuffix(".py").replace("/", ".")
        if name.endswith((".py", "custom_metric")):
            assert f'"{module}' in tests, f"{name} is linked from the docs but no test runs it"


def test_the_guide_table_says_what_replaces_paths_parsing_and_settings():
    rows = {line.split("|")[1].strip(): line for line in DOC.read_text().splitlines()
            if line.startswith("| ") and line.count("|") >= 4}
    assert "MLFLOW_TRACKING_URI" in rows["Custom Path and Directory Management (`utils/paths.py`)"]
    assert "data step" in rows["Custom Parsing and Text Processing (`utils/parsing.py`)"]
    assert "plugin options" in rows["Custom configuration settings (`custom_settings`, `optimization_strategy`)"]
    assert "`examples/`" in rows["Getting Help: `examples/scripts/`, `docs/api/`"] or "examples/" in \
        rows["Getting Help: `examples/scripts/`, `docs/api/`"]


def test_the_functions_the_docs_show_are_the_examples_own():
    """A `def` or assignment shown in a docs snippet is a line of the example it comes from."""
    text = DOC.read_text()
    sources = "\n".join(p.read_text() for p in EXAMPLES.rglob("*.py"))
    shown = re.findall(r"^(def \w+\(.*\):|[A-Z_]+ = PluginOption\(.*\))(?:\s+#.*)?$", text, re.MULTILINE)
    assert len(shown) >= 6
    for line in shown:
        assert line in sources, line
