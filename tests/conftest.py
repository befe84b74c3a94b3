"""Shared fixtures: a temporary MLflow store, and a scripted fake LLM behind LiteLLM.

The fake is a LiteLLM custom provider (`scripted/<anything>`), so every call still goes through
LiteLLM and our model layer; only the answers are scripted. A test sets `fake_llm.rules`:
a list of `(needle, answer)` pairs, where `needle` is a substring of the prompt or a predicate
`prompt -> bool`, and `answer` is a string, an exception to raise, or a callable
`(prompt, params) -> str`. The first rule whose needle matches answers; without a match,
structured calls get JSON filled in from their schema and plain calls "ok".

`input_request(prompt)` tells the optimizer model's request for a synthetic classification input
(the `inputs` meta-prompt) apart, and `written_inputs(make)` is a rule answering it.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
os.environ.setdefault("DO_NOT_TRACK", "true")
# Scripted answers change from test to test: no answers kept across them (tests/models/test_cache.py
# turns the cache on where it is the subject).
os.environ["PROMPTOMATIX_CACHE"] = "off"

import litellm  # noqa: E402
import pytest  # noqa: E402

from promptomatix.run.callbacks import Callback  # noqa: E402
from promptomatix.models.providers import PROVIDERS, import_litellm  # noqa: E402

FAKE_MODEL = "scripted/fake"
SCORING_MODEL = "scoring/fake"  # answers label requests with each label's score, as the embedded model does


class FakeLLM(litellm.CustomLLM):
    def __init__(self):
        super().__init__()
        self.rules: list[tuple[str, object]] = []
        self.calls: list[dict] = []

    def completion(self, model, messages, api_base=None, custom_prompt_dict=None, model_response=None,
                   print_verbose=None, encoding=None, api_key=None, logging_obj=None, optional_params=None,
                   **kwargs):
        params = dict(optional_params or {})
        prompt = "\n\n".join(str(m.get("content", "")) for m in messages)
        self.calls.append({"prompt": prompt, "params": params})
        text = self.answer(prompt, params)
        response = litellm.ModelResponse(model=model)
        response.choices[0].message.content = text
        usage = litellm.Usage(prompt_tokens=len(prompt.split()), completion_tokens=len(text.split()),
                              total_tokens=len(prompt.split()) + len(text.split()))
        response.usage = usage
        response._hidden_params["response_cost"] = 0.001
        return response

    def answer(self, prompt: str, params: dict) -> str:
        for needle, answer in self.rules:
            if needle(prompt) if callable(needle) else needle in prompt:
                if isinstance(answer, BaseException):
                    raise answer
                if callable(answer):
                    answer = answer(prompt, params)
                    if isinstance(answer, BaseException):
                        raise answer
                return answer if isinstance(answer, str) else json.dumps(answer)
        schema = _schema_of(params.get("response_format"))
        return json.dumps(fill_schema(schema, len(self.calls))) if schema else "ok"


class Recorder(Callback):
    """A callback that keeps what a backend reports: (step, candidate) pairs and, per iteration,
    (step, best, candidates)."""

    def __init__(self):
        self.candidates = []
        self.iterations = []

    def on_candidate(self, step, candidate):
        self.candidates.append((step, candidate))

    def on_iteration_end(self, step, best, candidates):
        self.iterations.append((step, best, list(candidates)))


def one_error_line(result, *needles: str) -> str:
    """The single line a bad input prints at the CLI (exit status 2, no traceback); returns it."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


from reliability.reliability_support import input_request  # noqa: E402  (one copy, workers use it too)

# Fixtures that several test modules share, each with the helpers they need: asked for by name,
# never imported (an imported fixture is a second definition of its name in the importing module).
pytest_plugins = ["optimize_fixtures", "feedback_fixtures", "lifecycle_fixtures"]


def written_inputs(make, output: str):
    """A rule answering the input requests of a task whose output field reads `output` with
    `make(label, number)`, `number` counting the requests from 0."""
    count = {"n": 0}

    def answer(prompt, params):
        count["n"] += 1
        return make(input_request(prompt, output), count["n"] - 1)

    return (lambda prompt: input_request(prompt, output) is not None, answer)


def sample_text(word: str, number: int) -> str:
    """A scripted input with `word` in it, distinct enough from every other number's to pass
    the synthetic data's near-duplicate check."""
    return f"a {word} film, notes w{number}a w{number}b w{number}c w{number}d"


REQUIRE_SERVICES = "PROMPTOMATIX_REQUIRE_SERVICES"


def skip_or_fail(reason: str):
    """Skip a test whose service (a database, a Java runtime) cannot run here, with `reason`;
    fail it instead where PROMPTOMATIX_REQUIRE_SERVICES is set (`.ci/run` sets it), so that CI
    cannot pass by skipping what it is meant to run."""
    if os.environ.get(REQUIRE_SERVICES):
        pytest.fail(f"{reason} ({REQUIRE_SERVICES} is set: this run must not skip it)", pytrace=False)
    pytest.skip(reason)


def _schema_of(response_format):
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        return response_format["json_schema"]["schema"]
    return None


def fill_schema(schema: dict, salt: int = 0):
    """A value satisfying the simple schemas this project uses, varied by `salt`."""
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][salt % len(schema["enum"])]
    if kind == "object":
        # Each field its own value, as a model writes them (an answer equal to its input is a copy).
        return {k: f"{k} {fill_schema(v, salt)}"[: v.get("maxLength", 1000)]
                if i and v.get("type") == "string" and "enum" not in v else fill_schema(v, salt)
                for i, (k, v) in enumerate(schema.get("properties", {}).items())}
    if kind == "array":
        return [fill_schema(schema["items"], salt * 31 + i) for i in range(schema.get("minItems", 1))]
    if kind == "string":
        text = f"value {salt} " + "word " * max(0, schema.get("minLength", 1) // 5)
        return text.strip()[: schema.get("maxLength", 1000)]
    return None


class ScoringLLM(FakeLLM):
    """The scripted fake, except that a request for one string out of a fixed set (the label
    request of `LM.choose`) is answered as the embedded model answers it: every option scored,
    by `score(prompt, option) -> log-probability`, the best as the answer."""

    scores_options = True

    def __init__(self):
        super().__init__()
        self.score = lambda prompt, option: -1.0

    def completion(self, model, messages, model_response=None, optional_params=None, **kwargs):
        from promptomatix.models.embedded import _fill_choice, enum_options

        params = dict(optional_params or {})
        options = enum_options(params.get("response_format"))
        if not options:
            return super().completion(model, messages, model_response=model_response,
                                      optional_params=optional_params, **kwargs)
        prompt = "\n\n".join(str(m.get("content", "")) for m in messages)
        self.calls.append({"prompt": prompt, "params": params})
        return _fill_choice(model_response or litellm.ModelResponse(), model, options,
                            [self.score(prompt, option) for option in options], prompt_tokens=len(prompt.split()))


@pytest.fixture(scope="session")
def _scoring_handler():
    handler = ScoringLLM()
    PROVIDERS.register("scoring", lambda: handler, replace=True)
    import_litellm()
    return handler


@pytest.fixture
def scoring(_scoring_handler):
    """A provider scoring labels (`SCORING_MODEL`), reset for this test: set `score`, and `rules`
    for its other answers."""
    _scoring_handler.rules, _scoring_handler.calls = [], []
    _scoring_handler.score = lambda prompt, option: -1.0
    return _scoring_handler


@pytest.fixture(scope="session")
def _fake_handler():
    handler = FakeLLM()
    PROVIDERS.register("scripted", lambda: handler, replace=True)
    import_litellm()
    return handler


@pytest.fixture
def fake_llm(_fake_handler):
    """The scripted provider, reset for this test; its model name is `FAKE_MODEL`."""
    _fake_handler.rules = []
    _fake_handler.calls = []
    return _fake_handler


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    """A fresh sqlite MLflow store (tracking and registry) in a temp dir; returns its URI."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)  # set_registry_uri writes it too: keep it scoped
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    # No experiment chosen by an earlier test (set_experiment sets a process-wide default and
    # MLFLOW_EXPERIMENT_ID, which child processes inherit): runs go to this store's default.
    # Set, then removed: monkeypatch then removes at teardown what a test's set_experiment sets
    # (a bare delenv of an unset variable restores nothing, and the id leaked into later
    # tests' subprocesses: "No Experiment with id=1 exists").
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID")
    monkeypatch.setattr("mlflow.tracking.fluent._active_experiment_id", None)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield uri
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
