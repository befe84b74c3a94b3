"""What a person sees in the MLflow UI after optimizations, read back through MLflow's client:
experiment and run names, the run's description, params that apply, the candidate table, the
versions' descriptions and commit messages, and no empty records."""

from __future__ import annotations

import os
import re

import mlflow
from mlflow import MlflowClient
from test_api import BETTER, run_optimize

from promptomatix.cli import summary
from promptomatix.config import MODEL_KEYS
from promptomatix.run import checkpoints
from promptomatix.run.summary import description
from promptomatix.tracking.mlflow_tracker import logged_setting, PARAM_PREFIX, ran_params, setting_key

NAME = "sentiment"


def test_a_run_is_filed_and_named_after_what_it_registered_and_described_by_its_summary(tracking, scripted):
    result = run_optimize(name=NAME)
    run = MlflowClient().get_run(result.run_id)

    assert mlflow.get_experiment(run.info.experiment_id).name == NAME  # not Default
    assert run.info.run_name == f"{NAME} v1 · meta_prompt"
    note = run.data.tags["mlflow.note.content"]
    assert note == description(result)
    # short Markdown that renders as written (issue 42): the score first, facts as a list, the
    # prompt in a fenced text block; nothing a renderer turns into a heading, no terminal lines
    assert note.startswith("**Score 0.000 → 1.000** (+1.000) on validation, classification: ")
    assert "* **What changed:** instruction rewritten" in note
    assert "* **Budget:** " in note and "LLM calls of 250 allowed" in note
    assert "* **Stopped by:** the search ran its course" in note and "* **Interval:** optimized " in note
    assert note.endswith(f"**Optimized prompt:**\n\n```text\n{result.prompt.rstrip()}\n```")
    outside = note.split("```text")[0].splitlines()
    assert not [line for line in outside if line.lstrip().startswith(("#", "---", "===", ">"))]
    assert "mlflow ui" not in note.lower() and "----" not in note and "====" not in note
    # the terminal keeps its own summary
    printed = summary(result)
    assert "=== Promptomatix: optimization finished ===" in printed and "open the MLflow UI" in printed
    assert "0.000 (initial) -> 1.000 (optimized)" in printed and "what changed:    instruction rewritten" in printed

    second = run_optimize(name=NAME, iterations=1)
    assert second.experiment_id == result.experiment_id
    assert MlflowClient().get_run(second.run_id).info.run_name == f"{NAME} v2 · meta_prompt"


def test_an_experiment_another_process_creates_at_the_same_moment_is_used(tracking, scripted, monkeypatch):
    # Processes starting together on a new server all find no experiment of the name, and all
    # but the first then fail to create it: they must file their runs in the one that won.
    existing = MlflowClient().create_experiment(NAME)
    monkeypatch.setattr(MlflowClient, "get_experiment_by_name",
                        _none_first(MlflowClient.get_experiment_by_name))

    result = run_optimize(name=NAME)

    assert result.experiment_id == existing


def _none_first(lookup):
    """`lookup` that finds nothing the first time (as a process that looked just before
    another created the experiment)."""
    calls = []

    def wrapped(self, name):
        calls.append(name)
        return None if len(calls) == 1 else lookup(self, name)
    return wrapped


def param_problems(params: dict[str, str], quoted: tuple[str, ...] = ()) -> list[str]:
    """What a person reading a run's params would find wrong (issue 42): a param that is empty
    (or `''`, `None`), one wrapped in quotes (but those named in `quoted`: `mlflow run`'s own
    shell quoting of `raw_input`), and a setting recorded twice (`seed` and `promptomatix.seed`,
    `max_tokens` and `model/max_tokens`)."""
    problems = [f"{k} is empty ({v!r})" for k, v in params.items() if not v.strip() or v in ("''", '""', "None")]
    problems += [f"{k} is quoted: {v}" for k, v in params.items()
                 if k not in quoted and len(v) > 1 and v[0] == v[-1] and v[0] in "'\""]
    settings: dict[str, list[str]] = {}
    for key in params:
        settings.setdefault(_setting(key), []).append(key)
    return problems + [f"{' and '.join(sorted(keys))} record one setting" for keys in settings.values() if len(keys) > 1]


def _setting(key: str) -> str:
    if key.startswith(PARAM_PREFIX):
        return setting_key(key[len(PARAM_PREFIX):])
    if key.startswith("model/") and key[len("model/"):] in MODEL_KEYS:  # the task model's settings
        return key[len("model/"):]
    return setting_key(key) if "/" not in key else key


def test_params_are_the_settings_that_apply_each_once_and_never_none(tracking, scripted):
    run = MlflowClient().get_run(run_optimize(name=NAME).run_id)
    params = run.data.params

    assert param_problems(params) == []
    assert params["promptomatix.backend"] == "meta_prompt" and params["promptomatix.meta_prompt"] == "rewrite"
    assert "promptomatix.optimizer" not in params and "promptomatix.dspy_module" not in params
    assert not [k for k, v in params.items() if v in ("None", "") or not v.strip()]
    # the task model once, under the keys MLflow uses for the registered model's config
    assert params["model/model"] == "scripted/fake" and params["model/temperature"] == "0.0"
    assert not [k for k in params if k.startswith("promptomatix.task_model")]
    assert "promptomatix.train_data" not in params and "promptomatix.experiment" not in params
    # the process that ran it, as a person reads it (and `--resume` parses it)
    process = run.data.tags["promptomatix.process"]
    assert re.fullmatch(rf"pid {os.getpid()} on host \S+, started \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC "
                        rf"\(tick \d+ after boot\)", process), process
    assert checkpoints.parse_process(process)[1] == os.getpid()


def test_settings_a_run_lowered_are_params_as_they_ran_with_what_was_asked_beside_and_a_line_in_the_note(
        tracking, scripted):
    # issue 42: the budget (70 calls) cuts the data and the search short
    result = run_optimize(name=NAME, iterations=3, candidates=4, synthetic_data_size=12, max_calls=70)
    run = MlflowClient().get_run(result.run_id)
    params = run.data.params
    table = MlflowClient().load_table(run.info.experiment_id, "candidates.json", run_ids=[result.run_id])
    iterations = int(table.step.max())
    assert iterations < 3 and params["promptomatix.iterations"] == str(iterations)
    assert params["promptomatix.iterations_asked"] == "3"
    written = int(run.data.metrics["synthetic_accepted"])
    assert written < 12 and params["promptomatix.synthetic_data_size"] == str(written)
    assert params["promptomatix.synthetic_data_size_asked"] == "12"
    tried = int(table[table.step > 0].groupby("step").size().max())
    assert params["promptomatix.candidates"] == str(tried)
    assert ("promptomatix.candidates_asked" in params) == (tried < 4)
    note = run.data.tags["mlflow.note.content"]
    assert f"* **Ran less than asked:** {written} of 12 synthetic examples written, {iterations} of 3 iterations" in note
    assert "* **Stopped by:** the budget of model calls (--max-calls) was spent" in note

    # as asked: no `_asked` param, no line
    plain = MlflowClient().get_run(run_optimize(name=NAME, iterations=1, candidates=1).run_id)
    assert not [k for k in plain.data.params if k.endswith("_asked")]
    assert "Ran less than asked" not in plain.data.tags["mlflow.note.content"]
    assert (plain.data.params["promptomatix.iterations"], plain.data.params["promptomatix.candidates"]) == ("1", "1")


def test_a_setting_given_to_mlflow_run_is_its_param_alone_unless_the_run_lowered_it():
    # `mlflow run -P iterations=3 -P candidates=2` logged `iterations` and `candidates` (as asked)
    given = {"iterations": "3", "candidates": "2"}
    ran = {"iterations": (1, 3), "candidates": (2, 2), "synthetic_data_size": (6, 8)}
    assert ran_params(ran, given) == {"promptomatix.iterations": "1", "promptomatix.synthetic_data_size": "6",
                                      "promptomatix.synthetic_data_size_asked": "8"}
    params = {"iterations": "3", "candidates": "2", "promptomatix.iterations": "1", "train_data": "'my rows.jsonl'",
              "optimizer_temperature": "0.2"}
    assert [logged_setting(params, key) for key in ("iterations", "candidates", "train_data", "seed")] == [
        "1", "2", "my rows.jsonl", None]
    assert logged_setting(params, "optimizer_model.temperature") == "0.2"
    # the process tag of runs recorded before it was written for people still reads
    assert checkpoints.parse_process("vm 11442 80224") == ("vm", 11442, "80224")
    assert checkpoints.parse_process("pid 7 on host vm") == ("vm", 7, "-") and checkpoints.parse_process("x") is None


def test_the_candidate_table_tells_what_each_candidate_changed_and_scored(tracking, scripted):
    result = run_optimize(name=NAME)
    run = MlflowClient().get_run(result.run_id)

    table = MlflowClient().load_table(run.info.experiment_id, "candidates.json", run_ids=[result.run_id])
    assert list(table.columns[:8]) == ["step", "candidate", "change", "instruction_rewritten", "demos", "score",
                                       "objective", "calls"]
    start = table[table.step == 0].iloc[0]
    assert (start.change, bool(start.instruction_rewritten), start.score, start.calls) == ("start", False, 0.0, 4)
    rewritten = table[table.instruction == BETTER]
    assert len(rewritten) >= 1 and rewritten.instruction_rewritten.all() and (rewritten.score == 1.0).all()
    assert (table.calls > 0).all() and table.change.map(bool).all()
    assert '"type": "table"' in run.data.tags["mlflow.loggedArtifacts"]  # the UI's table view shows it
    # the registered winner's row, and it only, is `chosen` (here two candidates tie at 1.0)
    assert table.chosen.dtype == bool and table.chosen.sum() == 1
    chosen = table[table.chosen].iloc[0]
    assert chosen.score == 1.0 and chosen.objective == table.objective.max()
    assert mlflow.artifacts.load_text(f"runs:/{result.run_id}/{chosen.artifact}") == result.prompt
    assert table.columns.tolist().count("chosen") == 1 and len(table) == len(set(table.artifact))


def test_nothing_is_chosen_when_nothing_is_registered(tracking, scripted):
    result = run_optimize(name=NAME, register=False)
    experiment = MlflowClient().get_run(result.run_id).info.experiment_id
    table = MlflowClient().load_table(experiment, "candidates.json", run_ids=[result.run_id])
    assert not table.chosen.any()


def test_each_version_says_what_changed_and_by_how_much_and_keeps_its_own_facts(tracking, scripted):
    client = MlflowClient()
    first = run_optimize(name=NAME)
    second = run_optimize(name=NAME, iterations=1)
    change = "instruction rewritten, no demos (unchanged); validation 0.00 -> 1.00 [0.51, 1.00] (+1.00) on 4 examples"

    for result, version in ((first, "1"), (second, "2")):
        model_version = client.get_model_version(NAME, version)
        # then, as 4 rows cannot tell two prompts apart, a warning saying so (issue 40)
        said = (f"{change}, against the starting prompt. Beware: 4 validation rows are too few to tell prompts apart: "
                f"two prompts' scores on them may differ by up to 0.69 by chance; about 86 rows would tell a "
                f"difference of 0.15")
        # and how to promote it: with promptomatix, not MLflow's button (issue 42)
        assert model_version.description == (
            f"{said}\n\nTo give this version an alias (champion, ...), run `promptomatix promote {NAME} --version "
            f"{version} --alias champion`: it scores the version against the alias's holder first and records why. "
            f"MLflow's \"Promote model\" button copies the version to another model without that check.")
        prompt_version = client.get_prompt_version(f"{NAME}-prompt", version)
        assert prompt_version.commit_message == said
        assert prompt_version.tags["run_id"] == result.run_id  # version 1 keeps its own run id
        assert prompt_version.tags["validation_score"] == "1.0000"
        # with its interval, rows and data (issue 40), on both versions
        for tags in (prompt_version.tags, model_version.tags):
            assert (tags["validation_score_low"], tags["validation_score_high"]) == ("0.5101", "1.0000")
            assert (tags["validation_rows"], tags["validation_data"]) == ("4", "synthetic")
        assert all(v.strip() for v in model_version.tags.values())
        assert all(v.strip() for v in prompt_version.tags.values())
    shared = client.get_prompt(f"{NAME}-prompt")
    assert not {"run_id", "validation_score", "tokens", "cost", "model_version"} & set(shared.tags)
    task = "Classify the sentiment of a movie review."  # what every version shares: the task
    assert shared.description == client.get_registered_model(NAME).description == task


def test_a_version_made_from_another_names_its_parent_in_its_description(tracking, scripted):
    run_optimize(name=NAME, iterations=1)
    child = run_optimize(from_=f"{NAME}@1", iterations=1)
    description = MlflowClient().get_model_version(NAME, child.model_version).description
    assert "against version 1. Beware: " in description and "validation 1.00 -> 1.00 [0.51, 1.00] (+0.00)" in description


def test_the_final_scoring_records_each_validation_example_as_a_table(tracking, scripted):
    result = run_optimize(name=NAME)
    run = MlflowClient().get_run(result.run_id)
    table = MlflowClient().load_table(run.info.experiment_id, "evaluation/valid_results.json", run_ids=[result.run_id])
    assert list(table.columns[:5]) == ["row", "review", "expected_sentiment", "predicted_sentiment", "score"]
    assert len(table) == result.valid_size and (table.expected_sentiment == table.predicted_sentiment).all()
    assert table.score.mean() == result.optimized_score


def test_every_llm_call_is_a_span_of_the_run_grouped_by_step_and_prompt(tracking, scripted):
    result = run_optimize(name=NAME)
    run = MlflowClient().get_run(result.run_id)
    traces = mlflow.search_traces(locations=[run.info.experiment_id], run_id=result.run_id, return_type="list")
    llm_spans = [span for trace in traces for span in trace.data.spans if span.span_type == "LLM"]

    assert len(llm_spans) == result.usage.calls + result.usage.cache_hits  # every call, nothing more
    names = {trace.data.spans[0].name for trace in traces}
    # the starting prompt's answers were given while labelling the synthetic data (one call each)
    assert {"intake", "synthetic data"} <= names and any(name.startswith("iteration 1") for name in names)
    span = next(s for s in llm_spans if "Review:" in s.inputs["prompt"])
    assert span.outputs["answer"] and span.attributes["mlflow.chat.tokenUsage"]["input_tokens"] > 0
    assert span.end_time_ns > span.start_time_ns  # latency
    # a trace per step, a span per prompt scored in it named by the prompt's id in the candidate table
    candidates = MlflowClient().load_table(run.info.experiment_id, "candidates.json", run_ids=[result.run_id])
    steps = [t for t in traces if t.data.spans[0].name.startswith("iteration 1")]
    scored = [s for t in steps for s in t.data.spans if s.span_type == "CHAIN" and "prompt_id" in s.attributes]
    assert len(scored) > len(steps) and {s.attributes["prompt_id"] for s in scored} <= set(candidates.prompt_id)
    assert all(s.attributes["step"].startswith("iteration 1") for s in scored)
    assert all(child.parent_id for t in traces if t.data.spans[0].name.startswith("iteration")
               for child in t.data.spans[1:])


def test_no_traces_switches_them_off(tracking, scripted):
    result = run_optimize(name=NAME, traces=False)
    experiment = MlflowClient().get_run(result.run_id).info.experiment_id
    assert mlflow.search_traces(locations=[experiment], run_id=result.run_id, return_type="list") == []


def test_quiet_commands_print_only_their_result(tracking, tmp_path):
    """In a process of its own, as a user runs it: `--quiet` leaves stdout's result and nothing on
    stderr (no progress lines, no MLflow registration messages or download and evaluation bars)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    cli = Path(__file__).parent / "reliability" / "cli_with_fakes.py"
    env = os.environ | {"MLFLOW_TRACKING_URI": tracking, "MLFLOW_REGISTRY_URI": tracking}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(cli), *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)

    optimized = run("optimize", "--raw-input", "Classify the sentiment of a movie review as positive or negative",
                    "--model", "reliable/fake", "--synthetic-data-size", "6", "--iterations", "1", "--candidates",
                    "1", "--name", NAME, "--quiet")
    assert optimized.returncode == 0, optimized.stderr
    assert optimized.stderr == ""
    assert optimized.stdout.startswith("\n=== Promptomatix: optimization finished ===")
    data = tmp_path / "test.jsonl"
    data.write_text("".join(json.dumps({"review": f"a {w} film", "sentiment": s}) + "\n"
                            for w, s in (("good", "positive"), ("bad", "negative"))))
    evaluated = run("evaluate", f"{NAME}@1", "--data", str(data), "--quiet")
    assert evaluated.returncode == 0, evaluated.stderr
    assert evaluated.stderr == ""
    assert evaluated.stdout.startswith(f"models:/{NAME}/1: accuracy")


def _linked_experiments(prompt_name: str) -> set[str]:
    import threading

    for thread in threading.enumerate():  # MLflow's own link is written by a thread of its own
        if thread.name.startswith("link_prompt_to_experiment_thread"):
            thread.join(timeout=30)
    tag = MlflowClient().get_prompt(prompt_name).tags["_mlflow_experiment_ids"]
    return {i for i in tag.strip(",").split(",") if i}


def test_the_prompt_is_linked_to_the_runs_experiment_and_listed_on_its_prompts_page(tracking, scripted):
    # `promptomatix optimize` files the run in an experiment named after it without making that
    # experiment MLflow's active one: MLflow linked the prompt to Default ("0") (issue 42)
    result = run_optimize(name=NAME)
    assert result.experiment_id != "0"
    assert _linked_experiments(f"{NAME}-prompt") == {result.experiment_id}
    listed = mlflow.genai.search_prompts(filter_string=f"experiment_id = '{result.experiment_id}'")
    assert [p.name for p in listed] == [f"{NAME}-prompt"]
    assert not mlflow.genai.search_prompts(filter_string="experiment_id = '0'")

    # a second run in another experiment adds it; the first link stays
    other = run_optimize(name=NAME, iterations=1, experiment="elsewhere")
    assert other.experiment_id not in ("0", result.experiment_id)
    assert _linked_experiments(f"{NAME}-prompt") == {result.experiment_id, other.experiment_id}


def test_a_prompt_registered_in_a_callers_run_is_linked_to_that_runs_experiment(tracking, scripted,
                                                                                monkeypatch):
    # MLflow's active experiment (here from MLFLOW_EXPERIMENT_ID) and the caller's run's differ
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", MlflowClient().create_experiment("chosen"))
    own = MlflowClient().create_experiment("own")
    with mlflow.start_run(experiment_id=own):
        result = run_optimize(name=NAME)
    assert result.experiment_id == own
    assert _linked_experiments(f"{NAME}-prompt") == {own}
