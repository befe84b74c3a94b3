"""Writing the result to the registries, last, all or nothing.

The Model Registry version (a pyfunc model applying the prompt) is registered under `name`;
the Prompt Registry version under `<name>-prompt` (MLflow keeps prompts and models in one
namespace, so they cannot share a name). If the second write fails, the first is undone.
"""

from __future__ import annotations

import collections.abc

import contextlib
import io
import logging
import random
import threading
import time
import warnings
from dataclasses import dataclass
from importlib.resources import files

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from promptomatix.config import ModelSettings, redact_url
from promptomatix.errors import RegistryError
from promptomatix.task.prompt import Prompt
from promptomatix.tracking import record

log = logging.getLogger(__name__)
PROMPT_SUFFIX = "-prompt"
# MLflow's tag on a prompt naming the experiments whose Prompts page lists it (",1,4,").
EXPERIMENT_IDS_TAG = "_mlflow_experiment_ids"
# `link_to_experiment`: how many times it writes the tag, and the wait before it looks whether
# its write stayed (times the attempt, jittered by a factor in [0.5, 1.5)).
LINK_ATTEMPTS = 5
LINK_SETTLE_SECONDS = 0.1


@dataclass(frozen=True)
class Registered:
    model_name: str
    model_version: str
    prompt_name: str
    prompt_version: str

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}/{self.model_version}"

    @property
    def prompt_uri(self) -> str:
        return f"prompts:/{self.prompt_name}/{self.prompt_version}"


def prompt_name_for(name: str) -> str:
    return f"{name}{PROMPT_SUFFIX}"


def check_name(name: str) -> None:
    """Refuse a model name that a prompt holds, or a prompt name that a model holds, before any
    work starts (MLflow would otherwise add the model as a version of the prompt)."""
    client = MlflowClient()
    if client.get_prompt(name) is not None:
        raise RegistryError(f"the name {name!r} is already used by a prompt in the registry; pass another --name")
    if model_exists(client, prompt_name_for(name)):
        raise RegistryError(f"the name {prompt_name_for(name)!r} is already used by a model in the registry; "
                            f"pass another --name")
    if model_exists(client, name):  # another tool's model (another flavor): our version would not serve like its
        foreign = next((v for v in client.search_model_versions(f"name = '{name}'")
                        if record.PROMPT_URI not in (v.tags or {})), None)
        if foreign is not None:
            raise RegistryError(f"the model {name!r} holds versions promptomatix did not register (version "
                                f"{foreign.version}, from {foreign.source}); pass another --name")


def model_config(prompt: Prompt, settings: ModelSettings, prompt_uri: str | None = None,
                 program: dict | None = None) -> dict:
    """What the registered pyfunc model (promptomatix/serving.py) reads back to serve. MLflow
    logs it as run params too (`prompt/...`, `model/...`): what is unset is left out, so no
    param reads "None"."""
    return record.model_config(prompt, _model_settings(settings), prompt_uri, program)


def model_params(settings: ModelSettings) -> dict[str, str]:
    """The task model's settings as the run params MLflow logs from `model_config` on
    registration (`model/model`, `model/temperature`, ...): logged under these keys from the
    start, they appear once, registered or not (MLflow's later identical values change nothing)."""
    return {f"model/{k}": str(v) for k, v in _model_settings(settings).items()}


def _model_settings(settings: ModelSettings) -> dict:
    # MLflow logs a model's config as run params: no credentials in it (keys come from the
    # environment when the model is served).
    found = {"model": settings.model, "temperature": settings.temperature, "max_tokens": settings.max_tokens,
             "api_base": redact_url(settings.api_base) if settings.api_base else None}
    return {k: v for k, v in found.items() if v is not None}


def register(name: str, prompt: Prompt, settings: ModelSettings, *, tags: dict[str, str],
             change: str, task: str, program: dict | None = None) -> Registered:
    """Log the pyfunc model in the active run, then register the prompt and the model version.
    `change` (what changed against the parent or the starting prompt, with the scores) is the
    prompt version's commit message and the model version's description; `tags` go on the two
    versions, never on the prompt shared by all versions. `task` (the task in a sentence)
    describes the registered model and the prompt when they are new. The prompt is linked to the
    run's experiment (its Prompts page lists it), whichever experiment is MLflow's active one."""
    run = mlflow.active_run()
    experiment_id = run.info.experiment_id if run else None
    with _active_experiment(experiment_id):  # MLflow links the prompt as it registers and loads it
        return _register(name, prompt, settings, tags=tags, change=change, task=task, program=program,
                         experiment_id=experiment_id)


def _register(name: str, prompt: Prompt, settings: ModelSettings, *, tags: dict[str, str], change: str, task: str,
              program: dict | None, experiment_id: str | None) -> Registered:
    client = MlflowClient()
    signature = ModelSignature(inputs=Schema([ColSpec("string", f) for f in prompt.input_fields]),
                               outputs=Schema([ColSpec("string", f) for f in prompt.output_fields]))
    model_existed = model_exists(client, name)
    prompt_existed = not _create_prompt(client, prompt_name_for(name), task)
    prompt_version = _register_prompt(
        client, name=prompt_name_for(name), template=prompt.template, description=change[:500], tags=tags,
        model_config={"model_name": settings.model, "temperature": settings.temperature,
                      "max_tokens": settings.max_tokens},
    )
    version = None  # the model version, once registered: what a failure from then on must remove too
    try:
        if experiment_id is not None:
            link_to_experiment(client, prompt_name_for(name), experiment_id)
        with warnings.catch_warnings():  # no input example on purpose: it would call the model
            warnings.filterwarnings("ignore", message=".*input example was not provided.*")
            info = mlflow.pyfunc.log_model(
                name="model", python_model=str(files("promptomatix").joinpath("serving.py")),
                model_config=model_config(prompt, settings, prompt_version.uri, program), signature=signature,
                pip_requirements=[f"mlflow=={mlflow.__version__}", "promptomatix"], prompts=[prompt_version.uri],
            )
        with contextlib.redirect_stderr(io.StringIO()) as said:  # MLflow prints its progress there
            version = mlflow.register_model(info.model_uri, name, tags=tags | {record.PROMPT_URI: prompt_version.uri})
        for line in said.getvalue().splitlines():  # as progress: on the console unless --quiet
            log.info("%s", line)
        client.update_model_version(name, str(version.version),
                                    description=f"{change}\n\n{promote_hint(name, str(version.version))}")
        if not model_existed:
            client.update_registered_model(name, description=task[:5000])
        client.set_prompt_version_tag(prompt_name_for(name), str(prompt_version.version), record.MODEL_VERSION,
                                      str(version.version))
    except BaseException:
        log.error("registering the model failed; removing prompt version %s", prompt_version.uri)
        _undo(client, name, prompt_version, version, prompt_existed=prompt_existed, model_existed=model_existed)
        raise
    return Registered(name, str(version.version), prompt_name_for(name), str(prompt_version.version))


@contextlib.contextmanager
def _active_experiment(experiment_id: str | None):
    """The run's experiment as MLflow's active one while a prompt version is registered.

    `mlflow.genai.register_prompt` links the prompt to the *active* experiment (what
    `mlflow.set_experiment` or MLFLOW_EXPERIMENT_ID chose, else Default), not to the active
    run's: `optimize` starts its run in an experiment of its own without making that experiment
    the process's active one, so the prompt was linked to Default (`_mlflow_experiment_ids`
    `,0,`) and the experiment's Prompts page stayed empty. MLflow reads the experiment
    synchronously when it registers a prompt version and when it loads one (`log_model(prompts=)`
    does); its link is then written by a thread of its own."""
    from mlflow.tracking import fluent

    if experiment_id is None or not hasattr(fluent, "_active_experiment_id"):
        yield
        return
    saved = fluent._active_experiment_id
    fluent._active_experiment_id = experiment_id  # type: ignore[assignment]  # MLflow annotates it as None
    try:
        yield
    finally:
        fluent._active_experiment_id = saved


def link_to_experiment(client: MlflowClient, prompt_name: str, experiment_id: str) -> bool:
    """Link prompt `prompt_name` to experiment `experiment_id` now (the experiment's Prompts page
    and `search_prompts("experiment_id = '...'")` list it): MLflow's own link, written in a
    background thread, may not be stored yet when the run ends. Returns whether the link is stored.

    The tag is one value that every writer reads, extends and writes back, and the store has no
    compare-and-set: MLflow's lock keeps the writers of one process apart, not those of two
    processes registering into one prompt from different experiments (one's write, from a read
    made before the other's write, drops the other's id). So the write is checked: after a short
    jittered wait (a writer that read before this write has then written too) the tag is read
    again and, if this experiment's id is gone, written again, up to `LINK_ATTEMPTS` times. If
    it is still missing then, a WARNING says so and the registration goes on: the link only lists
    the prompt on the experiment's page. A writer that read before this write and writes after
    the last look (held up longer than the waits) can still drop it."""
    from mlflow.tracking import client as client_module

    lock = getattr(client_module, "_prompt_experiment_link_lock", None) or threading.Lock()
    for attempt in range(LINK_ATTEMPTS + 1):
        with lock:
            ids = _linked_experiments(client, prompt_name)
            if experiment_id in ids:
                return True
            if attempt == LINK_ATTEMPTS:
                break
            if attempt:
                log.info("the link of prompt %s to experiment %s was overwritten by another writer; writing it "
                         "again (attempt %d of %d)", prompt_name, experiment_id, attempt + 1, LINK_ATTEMPTS)
            client.set_prompt_tag(prompt_name, EXPERIMENT_IDS_TAG, f",{','.join([*ids, experiment_id])},")
        time.sleep(LINK_SETTLE_SECONDS * (attempt + 1) * random.uniform(0.5, 1.5))
    log.warning("could not link prompt %s to experiment %s: other writers overwrote the tag %s %d times; the "
                "experiment's Prompts page will not list it (the registration is complete)", prompt_name,
                experiment_id, EXPERIMENT_IDS_TAG, LINK_ATTEMPTS)
    return False


def _linked_experiments(client: MlflowClient, prompt_name: str) -> list[str]:
    prompt = client.get_prompt(prompt_name)
    found = ((prompt.tags if prompt is not None else None) or {}).get(EXPERIMENT_IDS_TAG, "")
    return [i.strip() for i in found.strip(",").split(",") if i.strip()]


PROMOTE_HINT_START = "To give this version an alias"


def promote_hint(name: str, version: str) -> str:
    """The last paragraph of every version's description: how to promote it, and why not with
    MLflow's own button."""
    return (f"{PROMOTE_HINT_START} (champion, ...), run `promptomatix promote {name} --version {version} "
            f"--alias champion`: it scores the version against the alias's holder first and records why. "
            f"MLflow's \"Promote model\" button copies the version to another model without that check.")


def remove_run_versions(name: str, run_id: str) -> list[str]:
    """Delete what run `run_id` registered under `name` (model versions and prompt versions):
    a run killed while registering leaves them behind, and the run that resumes it registers
    its own. Returns the URIs removed."""
    client = MlflowClient()
    removed = []
    if model_exists(client, name):
        for version in client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"):
            client.delete_model_version(name, str(version.version))
            removed.append(f"models:/{name}/{version.version}")
    prompt_name = prompt_name_for(name)
    if client.get_prompt(prompt_name) is not None:
        token = None
        while True:
            page = client.search_prompt_versions(prompt_name, page_token=token)
            for version in page:
                if (version.tags or {}).get(record.RUN_ID) == run_id:
                    client.delete_prompt_version(prompt_name, str(version.version))
                    removed.append(f"prompts:/{prompt_name}/{version.version}")
            token = page.token
            if not token:
                break
    return removed


def _create_prompt(client: MlflowClient, name: str, description: str) -> bool:
    """The prompt all versions share, described by the task, if it is new: `register_prompt`
    would give a new prompt its first version's commit message as description. Returns whether
    this call created it."""
    if client.get_prompt(name) is not None:
        return False
    try:
        client.create_prompt(name, description=description[:5000])
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # another process created it meanwhile: fine
            raise
        return False
    return True


def _register_prompt(client: MlflowClient, *, name: str, template: str, description: str, tags: dict[str, str],
                     model_config: dict):
    """A new version of prompt `name` (which `_create_prompt` made), its tags (the run id among
    them) in the request that creates it: a creation whose answer is lost on the way is then told
    from any other process's version of the same text (`storeretry` looks for it before sending
    it again), and no version is ever without them. `mlflow.genai.register_prompt` would also copy
    each tag onto the prompt all versions share; MLflow's registry client writes the version only."""
    return client._get_registry_client().create_prompt_version(name=name, template=template, description=description,
                                                               tags=tags, model_config=model_config)


def _undo(client: MlflowClient, name: str, prompt_version, model_version, *, prompt_existed: bool,
          model_existed: bool) -> None:
    """Remove what a failed registration wrote: its model version and its prompt version, then
    the prompt and the registered model if they were new to it and hold no version now (read from
    the store). Other processes may have registered versions of the same model and prompt
    meanwhile: they, and the prompt and model holding them, stay. A failure here is logged, not
    raised, so the original error is the one the caller sees.

    Left open: another process that adds its first version to the prompt or model between the
    look ("no version") and the delete (milliseconds) fails its registration, and undoes it."""
    prompt_name = prompt_name_for(name)
    steps: list[collections.abc.Callable[[], object]] = [
        lambda: _delete_own_model_versions(client, name, model_version, prompt_version.uri),
        lambda: client.delete_prompt_version(prompt_name, str(prompt_version.version)),
    ]
    if not prompt_existed:  # left empty by the undo: no empty prompt behind
        steps.append(lambda: not list(client.search_prompt_versions(prompt_name, max_results=1))
                     and client.delete_prompt(prompt_name))
    if not model_existed:
        steps.append(lambda: model_exists(client, name)
                     and not client.search_model_versions(f"name = '{name}'", max_results=1)
                     and client.delete_registered_model(name))
    for step in steps:
        try:
            step()
        except MlflowException as exc:
            log.error("could not undo part of the failed registration: %s", exc)


def _delete_own_model_versions(client: MlflowClient, name: str, model_version, prompt_uri: str) -> None:
    """Delete the model version this registration made: the one `register_model` returned, or,
    when it failed after writing it (its answer lost), the one tagged with this registration's
    prompt version (no other version carries that tag)."""
    if model_version is not None:
        client.delete_model_version(name, str(model_version.version))
        return
    for version in client.search_model_versions(f"name = '{name}' and tags.`{record.PROMPT_URI}` = '{prompt_uri}'"):
        client.delete_model_version(name, str(version.version))


def model_exists(client: MlflowClient, name: str) -> bool:
    """Whether a registered model `name` exists (a missing one is an MlflowException). Any other
    failure, such as a store that stayed unreachable, is raised: read as "no such model", it
    would have a registration or a promotion go on from a wrong picture of the registry."""
    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        return False
    return True
