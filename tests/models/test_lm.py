"""The model layer: LiteLLM calls with retries, usage counting, per-call seeds and early model checks."""

from __future__ import annotations

import json
import threading
import types

import litellm
import pytest

import promptomatix.models.lm as lm_module
from conftest import FAKE_MODEL, SCORING_MODEL
from promptomatix.config import ModelSettings
from promptomatix.errors import ConfigError, LLMError
from promptomatix.models.lm import check_model, LM
from promptomatix.models.usage import UsageMeter


def make_lm(meter=None, **kwargs):
    kwargs.setdefault("backoff", 0)
    return LM(ModelSettings(model=FAKE_MODEL), meter or UsageMeter(), **kwargs)


def rate_limited():
    return litellm.RateLimitError(message="slow down", llm_provider="scripted", model="fake")


def failing_first(n, error=rate_limited, then="done"):
    """An answer that raises `error()` on its first `n` calls, then answers `then`."""
    count = {"calls": 0}
    lock = threading.Lock()

    def answer(prompt, params):
        with lock:
            count["calls"] += 1
            calls = count["calls"]
        return error() if calls <= n else then

    return answer


@pytest.mark.parametrize("failures", [1, 3])
def test_transient_errors_are_retried_then_the_answer_returned(fake_llm, failures):
    fake_llm.rules = [("hello", failing_first(failures))]
    meter = UsageMeter()

    assert make_lm(meter, max_retries=3).complete("hello") == "done"

    assert len(fake_llm.calls) == failures + 1
    usage = meter.snapshot()
    assert usage.retries == failures
    assert usage.calls == 1


@pytest.mark.parametrize("error", [
    lambda: litellm.RateLimitError(message="e", llm_provider="scripted", model="fake"),
    lambda: litellm.ServiceUnavailableError(message="e", llm_provider="scripted", model="fake"),
    lambda: litellm.InternalServerError(message="e", llm_provider="scripted", model="fake"),
    lambda: litellm.Timeout(message="e", llm_provider="scripted", model="fake"),
    lambda: litellm.APIConnectionError(message="e", llm_provider="scripted", model="fake"),
], ids=["rate-limit", "unavailable", "server-error", "timeout", "connection"])
def test_each_transient_kind_is_retried(fake_llm, error):
    fake_llm.rules = [("hello", failing_first(1, error))]

    assert make_lm(max_retries=1).complete("hello") == "done"
    assert len(fake_llm.calls) == 2


def test_retries_back_off_exponentially(fake_llm, monkeypatch):
    delays = []
    monkeypatch.setattr(lm_module, "time", types.SimpleNamespace(sleep=delays.append))
    fake_llm.rules = [("hello", failing_first(3))]

    make_lm(max_retries=3, backoff=2.0).complete("hello")

    # backoff x 2^attempt, jittered by a factor in [0.5, 1.5)
    assert len(delays) == 3
    for attempt, delay in enumerate(delays):
        assert 2.0 * 2**attempt * 0.5 <= delay < 2.0 * 2**attempt * 1.5


def test_giving_up_after_max_retries_raises_a_one_line_llm_error(fake_llm):
    fake_llm.rules = [("hello", lambda prompt, params: litellm.RateLimitError(
        message="quota exceeded\nplease retry later\n\nsee the docs", llm_provider="scripted", model="fake"))]
    meter = UsageMeter()

    with pytest.raises(LLMError) as info:
        make_lm(meter, max_retries=2).complete("hello")

    message = str(info.value)
    assert "\n" not in message
    assert FAKE_MODEL in message and "RateLimitError" in message and "3 attempts" in message
    assert "quota exceeded" in message
    assert len(fake_llm.calls) == 3
    assert meter.snapshot().retries == 2
    assert meter.snapshot().calls == 0


def test_max_retries_zero_means_one_attempt(fake_llm):
    fake_llm.rules = [("hello", failing_first(1))]

    with pytest.raises(LLMError):
        make_lm(max_retries=0).complete("hello")
    assert len(fake_llm.calls) == 1


@pytest.mark.parametrize("error, match", [
    (lambda: litellm.AuthenticationError(message="invalid api key", llm_provider="scripted", model="fake"),
     "authentication failed"),
    (lambda: litellm.APIError(status_code=500, message="bad gateway", llm_provider="scripted", model="fake"),
     "APIError"),
], ids=["authentication", "api-error"])
def test_non_transient_errors_are_not_retried(fake_llm, error, match):
    fake_llm.rules = [("hello", lambda prompt, params: error())]
    meter = UsageMeter()

    with pytest.raises(LLMError, match=match):
        make_lm(meter, max_retries=3).complete("hello")
    assert len(fake_llm.calls) == 1
    assert meter.snapshot().retries == 0


@pytest.mark.parametrize("error", [
    lambda: litellm.NotFoundError(message="model gpt-4o-mni does not exist", llm_provider="scripted", model="fake"),
    lambda: litellm.BadRequestError(message="prompt too long", llm_provider="scripted", model="fake"),
], ids=["not-found", "bad-request"])
def test_a_rejected_request_is_an_llm_error(fake_llm, error):
    fake_llm.rules = [("hello", lambda prompt, params: error())]

    with pytest.raises(LLMError):
        make_lm().complete("hello")


def test_usage_accumulates_calls_tokens_and_cost(fake_llm):
    fake_llm.rules = [("", "three word answer")]
    meter = UsageMeter()
    lm = make_lm(meter)

    lm.complete("one two")
    lm.complete("one two three four")
    # a second LM on the same meter adds to the same totals
    make_lm(meter).complete("five")

    usage = meter.snapshot()
    assert usage.calls == 3
    assert usage.prompt_tokens == 2 + 4 + 1
    assert usage.completion_tokens == 3 * 3
    assert usage.tokens == 7 + 9
    assert usage.cost == pytest.approx(0.003)  # the response's own cost, 0.001 a call


def test_settings_reach_the_provider(fake_llm):
    lm = LM(ModelSettings(model=FAKE_MODEL, temperature=0.3, max_tokens=17), UsageMeter(), backoff=0)

    lm.complete("hello")
    lm.complete("hello", max_tokens=5, temperature=0.9)

    assert fake_llm.calls[0]["params"]["max_tokens"] == 17
    assert fake_llm.calls[0]["params"]["temperature"] == 0.3
    assert fake_llm.calls[1]["params"]["max_tokens"] == 5
    assert fake_llm.calls[1]["params"]["temperature"] == 0.9


def test_the_seed_follows_the_request_and_salt_not_the_order_of_calls(fake_llm):
    first = make_lm(seed=7)
    first.complete("prompt a")
    first.complete("prompt b")
    first.complete("prompt a", salt="candidate 2")
    first.complete("prompt a")
    other_run = make_lm(seed=7)
    other_run.complete("prompt a", salt="candidate 2")  # asked first this time
    other_run.complete("prompt b")
    make_lm(seed=8).complete("prompt a")

    a, b, a2, a_again, other_a2, other_b, a_seed8 = [call["params"]["seed"] for call in fake_llm.calls]
    assert a == a_again and a2 == other_a2 and b == other_b  # repeatable, whatever the order
    assert len({a, b, a2, a_seed8}) == 4  # another prompt, salt or configured seed: another seed


def test_no_seed_is_sent_without_one(fake_llm):
    make_lm().complete("hello")
    assert "seed" not in fake_llm.calls[0]["params"]


def test_complete_json_returns_the_parsed_answer(fake_llm):
    fake_llm.rules = [("json please", '```json\n{"instruction": "be brief", "extra": 1}\n```')]
    schema = {"type": "object", "properties": {"instruction": {"type": "string"}}, "required": ["instruction"]}

    assert make_lm().complete_json("json please", schema) == {"instruction": "be brief", "extra": 1}
    assert fake_llm.calls[0]["params"]["response_format"]["json_schema"]["schema"] == schema


def test_complete_json_retries_unparseable_answers_and_counts_them(fake_llm):
    answers = iter(["not json at all", json.dumps({"other": "key"}), json.dumps({"instruction": "ok now"})])
    fake_llm.rules = [("json please", lambda prompt, params: next(answers))]
    meter = UsageMeter()
    schema = {"type": "object", "properties": {"instruction": {"type": "string"}}, "required": ["instruction"]}

    assert make_lm(meter).complete_json("json please", schema) == {"instruction": "ok now"}
    assert meter.snapshot().parse_failures == 2
    # the retries sample warmer
    assert [c["params"]["temperature"] for c in fake_llm.calls] == [0.0, 0.7, 0.7]


def test_complete_json_gives_up_with_an_llm_error(fake_llm):
    fake_llm.rules = [("json please", "sorry, I cannot do that")]
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}

    with pytest.raises(LLMError, match="no valid JSON after 3 attempts.*sorry"):
        make_lm().complete_json("json please", schema)


def test_check_model_rejects_an_unknown_provider():
    with pytest.raises(ConfigError, match="unknown model provider in 'nosuchprovider/x'"):
        check_model(ModelSettings(model="nosuchprovider/x"))


def test_check_model_rejects_a_hosted_model_without_its_api_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    with pytest.raises(ConfigError, match="OPENAI_API_KEY") as info:
        check_model(ModelSettings(model="openai/gpt-4o-mini"))
    assert "\n" not in str(info.value)


def test_check_model_passes_a_hosted_model_with_its_api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    check_model(ModelSettings(model="openai/gpt-4o-mini"))


@pytest.mark.parametrize("model", [FAKE_MODEL, "embedded/gemma-3-270m"])
def test_check_model_passes_registered_custom_providers(fake_llm, model):
    check_model(ModelSettings(model=model))


# --- answers that are labels, and the budget ------------------------------------------------------

def test_a_provider_that_scores_labels_answers_with_the_best_and_every_score(scoring):
    scoring.score = lambda prompt, option: {"positive": -0.2, "negative": -1.9}[option]
    meter = UsageMeter()
    choice = LM(ModelSettings(model=SCORING_MODEL), meter).choose("Review: fine\nSentiment:", ["positive", "negative"])

    assert (choice.label, choice.scores) == ("positive", (-0.2, -1.9))
    request = scoring.calls[-1]["params"]
    assert request["response_format"]["json_schema"]["schema"] == {"type": "string", "enum": ["positive", "negative"]}
    assert meter.snapshot().calls == 1 and meter.snapshot().unmapped_answers == 0


def test_free_text_answers_map_to_the_label_they_name_and_others_are_counted(fake_llm):
    fake_llm.rules = [("one", "Negative, I would say"), ("two", "I don't know")]
    meter = UsageMeter()
    lm = make_lm(meter)

    assert lm.choose("one", ["positive", "negative"]).label == "negative"
    unmapped = lm.choose("two", ["positive", "negative"])

    assert unmapped.label is None and unmapped.text == "I don't know"
    assert meter.snapshot().unmapped_answers == 1
    # a label answer is asked for in a few tokens, not the general answer cap
    assert all(call["params"]["max_tokens"] <= 10 for call in fake_llm.calls)


def test_a_model_with_structured_output_answers_under_a_schema_of_the_labels(fake_llm, monkeypatch):
    monkeypatch.setattr(lm_module, "choice_mode", lambda model: "schema")
    fake_llm.rules = [("Review", '{"label": "negative"}')]

    assert make_lm().choose("Review: dull\nSentiment:", ["positive", "negative"]).label == "negative"
    schema = fake_llm.calls[-1]["params"]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["label"]["enum"] == ["positive", "negative"]


def test_the_call_budget_refuses_the_call_past_it_and_names_the_limit(fake_llm):
    from promptomatix.errors import BudgetExhausted
    from promptomatix.models.usage import Limits

    fake_llm.rules = [("", "fine")]
    meter = UsageMeter(Limits(calls=2))
    lm = make_lm(meter)
    lm.complete("a")
    lm.complete("b")
    with pytest.raises(BudgetExhausted, match="2 model calls") as caught:
        lm.complete("c")
    assert caught.value.limit == meter.stopped_by == "max_calls"
    assert len(fake_llm.calls) == 2


def test_the_cost_and_time_budgets_stop_calls_too(fake_llm):
    from promptomatix.errors import BudgetExhausted
    from promptomatix.models.usage import Limits

    fake_llm.rules = [("", "fine")]  # each scripted call costs $0.001
    meter = UsageMeter(Limits(cost=0.0015))
    lm = make_lm(meter)
    lm.complete("a")
    lm.complete("b")  # the total was below the limit when it started
    with pytest.raises(BudgetExhausted):
        lm.complete("c")
    assert meter.stopped_by == "max_cost"

    now = {"t": 0.0}
    timed = UsageMeter(Limits(seconds=10), clock=lambda: now["t"])
    make_lm(timed).complete("d")
    now["t"] = 10.0
    with pytest.raises(BudgetExhausted):
        make_lm(timed).complete("e")
    assert timed.stopped_by == "max_seconds"
