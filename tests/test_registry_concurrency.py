"""Registrations of one name by several processes at once (threads stand in for them here, each
with its own run): a failed registration's undo removes its own versions only, and the prompt's
link to each process's experiment survives the others' writes of the same tag."""

from __future__ import annotations

import logging
import threading
import time

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from promptomatix.config import ModelSettings
from promptomatix.run import registration
from promptomatix.task.prompt import Prompt

NAME = "shared"
PROMPT_NAME = registration.prompt_name_for(NAME)
PROMPT_A = Prompt("Label the review (process A).", ("text",), ("label",))
PROMPT_B = Prompt("Label the review (process B).", ("text",), ("label",))
STORE_DOWN = "503 Service Unavailable: the tracking server is restarting"


def _register(prompt: Prompt, change: str) -> registration.Registered:
    """One process's registration: its own run, the run id among the version tags (as `optimize`)."""
    with mlflow.start_run() as run:
        return registration.register(NAME, prompt, ModelSettings(), tags={"run_id": run.info.run_id}, change=change,
                                 task="Label reviews.")


def _in_another_thread(results: list) -> None:
    """Process B registers its version, start to end, while A's registration is half-way."""
    def work() -> None:
        try:
            results.append(_register(PROMPT_B, "b"))
        except BaseException as exc:  # shown by the test
            results.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert results and isinstance(results[0], registration.Registered), results


def _fail_a(monkeypatch, where: str, other: list | None) -> None:
    """Make A's registration (the main thread's) fail at `where`, once, after B (when `other` is
    given) registered its version meanwhile. B's own calls, and later ones, go through."""
    main = threading.main_thread()
    fired: list[bool] = []

    def meanwhile() -> None:
        if other is not None:
            _in_another_thread(other)

    if where == "after both versions":  # the last write: the prompt version's model_version tag
        real_tag = MlflowClient.set_prompt_version_tag

        def tag(self, *args, **kwargs):
            if threading.current_thread() is not main or fired:
                return real_tag(self, *args, **kwargs)
            fired.append(True)
            meanwhile()
            raise MlflowException(STORE_DOWN)

        monkeypatch.setattr(MlflowClient, "set_prompt_version_tag", tag)
        return
    real_register = mlflow.register_model

    def register_model(*args, **kwargs):
        if threading.current_thread() is not main or fired:
            return real_register(*args, **kwargs)
        fired.append(True)
        if where == "model version written, its answer lost":
            real_register(*args, **kwargs)
        meanwhile()
        raise MlflowException(STORE_DOWN)

    monkeypatch.setattr(mlflow, "register_model", register_model)


def _model_versions(client: MlflowClient) -> list[tuple[str, str]]:
    return sorted((str(v.version), v.tags.get("prompt_uri", "")) for v in client.search_model_versions(f"name = '{NAME}'"))


def _prompt_versions(client: MlflowClient) -> list[tuple[str, str]]:
    return sorted((str(v.version), v.template) for v in client.search_prompt_versions(PROMPT_NAME))


FAILURES = ["before the model version", "model version written, its answer lost", "after both versions"]


@pytest.mark.parametrize("where", FAILURES)
def test_undo_of_a_failed_first_registration_keeps_the_versions_another_process_registered(tracking, monkeypatch,
                                                                                            where):
    """A writes prompt version 1 (and, but in the first case, model version 1), then fails; B
    registered its versions meanwhile. A's undo removes A's versions only: B's prompt and model
    versions, and the prompt and registered model holding them, stay. Before, an undo whose prompt
    version was 1 deleted the whole prompt, and one that found the model new deleted the
    registered model, B's versions with them (met in tests/reliability/test_restarts.py)."""
    other: list = []
    _fail_a(monkeypatch, where, other)
    with pytest.raises(MlflowException, match="restarting"):
        _register(PROMPT_A, "a")

    b = other[0]
    assert b.prompt_version == "2"  # A's was 1
    client = MlflowClient()
    assert _prompt_versions(client) == [("2", PROMPT_B.template)]
    assert _model_versions(client) == [(b.model_version, b.prompt_uri)]
    assert client.get_prompt_version(PROMPT_NAME, "2").tags["model_version"] == b.model_version
    assert mlflow.genai.load_prompt(b.prompt_uri).template == PROMPT_B.template
    # and the name goes on: the next registration gets the next versions
    after = _register(PROMPT_A, "a again")
    assert (after.prompt_version, int(after.model_version)) == ("3", int(b.model_version) + 1)


@pytest.mark.parametrize("where", FAILURES)
def test_a_failed_first_registration_alone_leaves_nothing(tracking, monkeypatch, where):
    """No other process: the undo leaves no prompt, no registered model, no version (as before the
    fix; the model version whose answer was lost is found by its prompt_uri tag)."""
    _fail_a(monkeypatch, where, None)
    with pytest.raises(MlflowException, match="restarting"):
        _register(PROMPT_A, "a")

    client = MlflowClient()
    assert client.get_prompt(PROMPT_NAME) is None
    assert not registration.model_exists(client, NAME)
    assert client.search_model_versions(f"name = '{NAME}'") == []


def test_a_failed_later_registration_removes_only_its_own_versions(tracking, monkeypatch):
    """The model and prompt existed before A: they stay, with the versions they held."""
    first = _register(PROMPT_B, "b")
    _fail_a(monkeypatch, "after both versions", None)
    with pytest.raises(MlflowException, match="restarting"):
        _register(PROMPT_A, "a")

    client = MlflowClient()
    assert _prompt_versions(client) == [("1", PROMPT_B.template)]
    assert _model_versions(client) == [("1", first.prompt_uri)]


# --- the prompt's link to each experiment -----------------------------------------------------

def _linked(client: MlflowClient) -> set[str]:
    found = (client.get_prompt(PROMPT_NAME).tags or {}).get(registration.EXPERIMENT_IDS_TAG, "")
    return {i for i in found.split(",") if i}


@pytest.fixture
def prompt_and_experiments(tracking, monkeypatch):
    """A prompt, two experiments (A's and B's), and no waits."""
    client = MlflowClient()
    client.create_prompt(PROMPT_NAME)
    waits: list[float] = []
    real_sleep = time.sleep
    main = threading.current_thread()

    def sleep(seconds: float) -> None:
        # registration.time.sleep is the time module's: patched for this thread only, since a
        # thread an earlier test left running (MLflow's, polling each second) would spin on it
        if threading.current_thread() is main:
            waits.append(seconds)
        else:
            real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
    return client, client.create_experiment("a"), client.create_experiment("b"), waits


def test_a_link_another_process_writes_over_is_written_again(prompt_and_experiments, monkeypatch):
    """B links the prompt to its experiment while A, in another process, does the same for its
    own: A read the tag before B's write and writes after it (`,a,`: B's id dropped; MLflow's lock
    holds within a process only). B looks again after its write, finds its id gone and writes it
    again: the tag holds both."""
    client, a, b, waits = prompt_and_experiments
    real = MlflowClient.set_prompt_tag
    writes: list[str] = []

    def set_tag(self, name, key, value):
        writes.append(value)
        real(self, name, key, value)
        if len(writes) == 1:  # A's write, from its read before B's write, lands now
            real(self, name, key, f",{a},")

    monkeypatch.setattr(MlflowClient, "set_prompt_tag", set_tag)
    linked = registration.link_to_experiment(client, PROMPT_NAME, b)

    assert _linked(client) == {a, b}
    assert writes == [f",{b},", f",{a},{b},"]
    assert linked is True
    assert len(waits) == 2 and 0.05 <= waits[0] < 0.15 and 0.1 <= waits[1] < 0.3  # jittered, growing


def test_a_link_already_there_is_not_written(prompt_and_experiments, monkeypatch):
    client, a, b, waits = prompt_and_experiments
    client.set_prompt_tag(PROMPT_NAME, registration.EXPERIMENT_IDS_TAG, f",{a},{b},")
    monkeypatch.setattr(MlflowClient, "set_prompt_tag", lambda *args: pytest.fail("written again"))
    linked = registration.link_to_experiment(client, PROMPT_NAME, b)
    assert waits == [] and linked is True


def test_a_link_overwritten_every_time_is_a_warning_not_a_failure(prompt_and_experiments, monkeypatch, caplog):
    """Another writer that drops B's id after each of its writes: B gives up after LINK_ATTEMPTS
    writes with a WARNING; the link only lists the prompt on the experiment's page."""
    client, a, b, waits = prompt_and_experiments
    real = MlflowClient.set_prompt_tag
    writes: list[str] = []

    def set_tag(self, name, key, value):
        writes.append(value)
        real(self, name, key, f",{a},")

    monkeypatch.setattr(MlflowClient, "set_prompt_tag", set_tag)
    with caplog.at_level(logging.WARNING, logger=registration.__name__):
        linked = registration.link_to_experiment(client, PROMPT_NAME, b)

    assert len(writes) == len(waits) == registration.LINK_ATTEMPTS
    assert _linked(client) == {a} and linked is False
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and f"could not link prompt {PROMPT_NAME} to experiment {b}" in warned[0].getMessage()


def test_a_registration_whose_link_is_lost_still_registers(tracking, monkeypatch, caplog):
    """The link's WARNING does not fail the registration: both versions are registered (after
    its waits, 1.5 s in all)."""
    real = MlflowClient.set_prompt_tag

    def overwritten(self, name, key, value):
        if key != registration.EXPERIMENT_IDS_TAG:
            return real(self, name, key, value)
        return real(self, name, key, ",12345,")  # another writer's value, every time

    monkeypatch.setattr(MlflowClient, "set_prompt_tag", overwritten)
    experiment = mlflow.create_experiment("linked")
    with caplog.at_level(logging.WARNING, logger=registration.__name__), mlflow.start_run(experiment_id=experiment):
        done = registration.register(NAME, PROMPT_A, ModelSettings(), tags={}, change="a", task="t")

    assert (done.prompt_version, done.model_version) == ("1", "1")
    assert any("could not link prompt" in r.getMessage() for r in caplog.records)
