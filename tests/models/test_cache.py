"""The shared answer cache: an identical, repeatable request is answered once, by the model."""

from __future__ import annotations

import re

import pytest
from conftest import FAKE_MODEL
from mlflow import MlflowClient

from promptomatix.config import ModelSettings
from promptomatix.models.cache import default_cache, ResponseCache
from promptomatix.models.lm import LM
from promptomatix.models.usage import UsageMeter
from optimize_fixtures import synthetic
from test_api import run_optimize


@pytest.fixture
def cache(tmp_path):
    return ResponseCache(tmp_path / "cache" / "answers.sqlite")


def make_lm(cache, **settings):
    return LM(ModelSettings(model=FAKE_MODEL, **settings), UsageMeter(), backoff=0, cache=cache)


def test_a_repeated_greedy_request_is_answered_from_the_cache(fake_llm, cache):
    fake_llm.rules = [("", lambda prompt, params: f"answer {len(fake_llm.calls)}")]
    first, second = make_lm(cache), make_lm(cache)  # e.g. two runs, or two processes

    assert first.complete("Review: fine\nSentiment:") == "answer 1"
    assert second.complete("Review: fine\nSentiment:") == "answer 1"
    assert len(fake_llm.calls) == 1
    usage = second.meter.snapshot()
    assert (usage.calls, usage.cache_hits, usage.tokens, usage.cost) == (0, 1, 0, 0.0)
    # another prompt, max tokens or model setting is another request
    second.complete("Review: bad\nSentiment:")
    second.complete("Review: fine\nSentiment:", max_tokens=3)
    make_lm(cache, temperature=0.5).complete("Review: fine\nSentiment:")
    assert len(fake_llm.calls) == 4


def test_sampled_requests_are_kept_only_with_a_seed(fake_llm, cache):
    fake_llm.rules = [("", lambda prompt, params: f"sample {len(fake_llm.calls)}")]
    unseeded = make_lm(cache, temperature=0.7)
    assert unseeded.complete("Rewrite this") != unseeded.complete("Rewrite this")

    seeded = LM(ModelSettings(model=FAKE_MODEL, temperature=0.7), UsageMeter(), seed=3, cache=cache)
    again = LM(ModelSettings(model=FAKE_MODEL, temperature=0.7), UsageMeter(), seed=3, cache=cache)
    assert seeded.complete("Rewrite this", salt="1") == again.complete("Rewrite this", salt="1")
    assert seeded.complete("Rewrite this", salt="2") != again.complete("Rewrite this", salt="1")


def test_empty_answers_are_not_kept(fake_llm, cache):
    answers = iter(["", "real"])
    fake_llm.rules = [("", lambda prompt, params: next(answers))]
    lm = make_lm(cache)
    assert lm.complete("Question?") == ""
    assert lm.complete("Question?") == "real"
    assert lm.complete("Question?") == "real" and len(fake_llm.calls) == 2


def test_an_unusable_cache_file_means_calling_the_model(fake_llm, tmp_path, caplog):
    path = tmp_path / "answers.sqlite"
    path.write_text("not a database")
    fake_llm.rules = [("", "fine")]
    lm = make_lm(ResponseCache(path))
    assert lm.complete("Question?") == "fine" and lm.complete("Question?") == "fine"
    assert len(fake_llm.calls) == 2 and "unusable" in caplog.text


def test_the_environment_chooses_the_folder_or_turns_it_off(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMPTOMATIX_CACHE", str(tmp_path / "mine"))
    assert default_cache().path == tmp_path / "mine" / "answers.sqlite"
    monkeypatch.setenv("PROMPTOMATIX_CACHE", "off")
    assert default_cache() is None
    monkeypatch.delenv("PROMPTOMATIX_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache().path == tmp_path / "xdg" / "promptomatix" / "answers.sqlite"


def test_an_identical_rerun_makes_no_model_calls_and_finds_the_same_prompt(tracking, scripted, monkeypatch, tmp_path):
    monkeypatch.setenv("PROMPTOMATIX_CACHE", str(tmp_path / "cache"))
    first = run_optimize(seed=5, register=False)
    calls = len(scripted.calls)
    synthetic.counter = 0
    second = run_optimize(seed=5, register=False)

    assert len(scripted.calls) == calls  # every answer came from the cache
    assert (second.prompt, second.initial_score, second.optimized_score) == \
        (first.prompt, first.initial_score, first.optimized_score)
    metrics = MlflowClient().get_run(second.run_id).data.metrics
    assert metrics["total_calls"] == 0 and metrics["total_cache_hits"] == first.usage.calls
    # --no-cache: the model is asked again
    synthetic.counter = 0
    run_optimize(seed=5, register=False, cache=False)
    assert len(scripted.calls) == 2 * calls


def test_the_cli_says_how_many_answers_were_cached(tracking, scripted, monkeypatch, tmp_path):
    from click.testing import CliRunner

    from promptomatix.cli import cli

    monkeypatch.setenv("PROMPTOMATIX_CACHE", str(tmp_path / "cache"))
    args = ["optimize", "--raw-input", "Classify the sentiment of a movie review", "--model", FAKE_MODEL,
            "--synthetic-data-size", "6", "--iterations", "1", "--candidates", "1", "--no-register", "--quiet"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    synthetic.counter = 0
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "in 0 LLM calls" in again.output
    assert int(re.search(r"(\d+) cached,", again.output).group(1)) > 0  # every answer came from the cache
