"""Shared rate limits: optimizations that call one provider through LiteLLM's Router in-process
(models `shared/<name>`, promptomatix/models/ratelimits.py) share its limits. The provider is the stub
endpoint with a rate limit of its own (429 with Retry-After past it). Calls over a limit wait
and are asked again instead of failing the optimization, and every wait is counted as a retry."""

from __future__ import annotations

import json
import threading
import time

import mlflow
import pytest
import yaml
from click.testing import CliRunner
from conftest import one_error_line

import promptomatix
from benchmarks.stub import StubServer
from promptomatix.cli import cli
from promptomatix.config import ModelSettings
from promptomatix.errors import LLMError
from promptomatix.models.lm import LM
from promptomatix.models.providers import import_litellm, PROVIDERS, register_provider
from promptomatix.models.ratelimits import CONFIG_ENV, SharedRouter
from promptomatix.models.usage import UsageMeter


@pytest.fixture
def router_config(tmp_path, monkeypatch):
    """`write(stub, **deployment)` writes a LiteLLM config with the model `team-model` on the
    stub and installs a fresh `shared` provider reading it; the entry point's comes back after."""

    def write(stub: StubServer, router_settings: dict | None = None, **deployment) -> str:
        config = {"model_list": [{"model_name": "team-model", "litellm_params": {
            "model": "openai/stub-model", "api_base": stub.url, "api_key": "stub-key", **deployment}}]}
        if router_settings:
            config["router_settings"] = router_settings
        path = tmp_path / "litellm.yaml"
        path.write_text(yaml.safe_dump(config))
        monkeypatch.setenv(CONFIG_ENV, str(path))
        register_provider("shared", SharedRouter, replace=True)  # a new Router for this config
        import_litellm()
        return str(path)

    yield write
    register_provider("shared", SharedRouter, replace=True)


def test_shared_is_a_provider_from_the_package_entry_point():
    assert "shared" in PROVIDERS.names() and "shared" not in PROVIDERS.errors


def reviews(start: int, count: int) -> list[dict]:
    words = ("good", "dull", "good and bright", "slow")
    return [{"text": f"review {i}: the film was {words[i % 4]}", "label": "positive" if "good" in words[i % 4]
             else "negative"} for i in range(start, start + count)]


def test_optimizations_sharing_a_rate_limited_provider_wait_and_count_every_retry(tracking, router_config,
                                                                                  tmp_path):
    train, valid = tmp_path / "train.jsonl", tmp_path / "valid.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in reviews(0, 6)))
    valid.write_text("".join(json.dumps(r) + "\n" for r in reviews(6, 8)))
    results, errors = {}, []

    def optimize(index: int) -> None:
        try:
            results[index] = promptomatix.optimize(
                raw_input="Classify the sentiment of the review as positive or negative.", train_data=str(train),
                valid_data=str(valid), task_type="classification", input_fields=("text",), output_fields=("label",),
                model="shared/team-model", num_threads=4, iterations=1, candidates=2, max_retries=8,
                register=False, name=f"limited-{index}", show_progress=False)
        except Exception as exc:  # reported below, with the others'
            errors.append(exc)

    # Three optimizations at once, 12 calls in flight against a provider that answers 8 a second.
    with StubServer(latency=0.02, limit=(8, 1.0)) as stub:
        router_config(stub)
        threads = [threading.Thread(target=optimize, args=(i,)) for i in range(3)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        seconds = time.monotonic() - started

    assert not errors, errors
    assert len(results) == 3
    calls = sum(r.usage.calls for r in results.values())
    retries = sum(r.usage.retries for r in results.values())
    assert calls == stub.requests  # every answered call counted once
    assert stub.refused > 0  # they did run into the limit together...
    assert retries == stub.refused  # ...and each refusal was waited out, asked again and counted
    assert seconds >= (calls - 8) / 8  # no more than 8 a second got through
    for result in results.values():
        run = mlflow.get_run(result.run_id)
        assert run.info.status == "FINISHED"
        assert run.data.metrics["total_retries"] == result.usage.retries


def test_one_router_counts_one_limit_for_every_optimization_in_the_process(router_config):
    # LiteLLM counts requests per minute of the clock: stay clear of a minute's end.
    if time.gmtime().tm_sec > 45:
        time.sleep(61 - time.gmtime().tm_sec)
    with StubServer(latency=0.0) as stub:
        router_config(stub, router_settings={"routing_strategy": "usage-based-routing-v2"}, rpm=3)
        settings = ModelSettings(model="shared/team-model", max_tokens=8)
        first, second = LM(settings, UsageMeter(), max_retries=0), LM(settings, UsageMeter(), max_retries=1, backoff=0.01)
        assert first.complete("Text: good 1\nLabel:") == "positive"
        assert first.complete("Text: bad 2\nLabel:") == "negative"
        # The other optimization's calls count against the same 3 a minute: refused before they
        # are sent (LiteLLM refuses the last one of the minute already), waited for and asked
        # again (counted), then reported.
        with pytest.raises(LLMError, match="RateLimitError after 2 attempts"):
            for index in range(3):
                assert second.complete(f"Text: good {index}\nLabel:") == "positive"
    assert stub.requests in (2, 3)
    assert second.meter.snapshot().retries == 1 and first.meter.snapshot().retries == 0


@pytest.mark.parametrize("case, needle", [
    ("no_config", f"need a LiteLLM router config: set {CONFIG_ENV}"),
    ("unknown_model", "model 'other' is not in the router config"),
])
def test_a_missing_config_or_model_is_one_line(tracking, router_config, monkeypatch, case, needle):
    with StubServer(latency=0.0) as stub:
        router_config(stub)
        if case == "no_config":
            monkeypatch.delenv(CONFIG_ENV)
        model = "shared/other" if case == "unknown_model" else "shared/team-model"
        result = CliRunner().invoke(cli, ["optimize", "--raw-input", "Classify reviews", "--model", model],
                                    catch_exceptions=False)
        one_error_line(result, needle)
        assert stub.requests == 0
