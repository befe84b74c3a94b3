"""Copying a registered version into another registered model (dev to prod).

In: a model name, a version and a target model name.
Out: a `Copied` naming the new model version and its prompt version. The model version is
copied with `MlflowClient().copy_model_version` (tags, run and scores come along); the prompt
is registered again under `<target>-prompt` so that the copy has a prompt of its own model
(and promotions in the target move that prompt's alias), its commit message the source's as it
was registered (without the paragraphs `promotion` put first, which speak of the source's
aliases). All or nothing: if the model copy fails, the new prompt version is removed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from promptomatix.errors import RegistryError
from promptomatix.lifecycle import versions
from promptomatix.run.registration import model_exists, prompt_name_for
from promptomatix.tracking import record

log = logging.getLogger(__name__)

# How each paragraph `promotion` puts first in a prompt version's commit message begins:
# "Promotion (<alias>, <time>): ..." (defined here, as `promotion` imports this module).
PARAGRAPH_START = "Promotion ("


@dataclass(frozen=True)
class Copied:
    source_uri: str
    name: str
    version: str
    prompt_uri: str

    @property
    def model_uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def check_target(name: str, target: str) -> None:
    """Refuse a target that is the source itself, a prompt, or whose prompt name a model holds."""
    if not target or target == name:
        raise RegistryError(f"--to-model must name another registered model than {name!r}")
    client = MlflowClient()
    if client.get_prompt(target) is not None:
        raise RegistryError(f"the name {target!r} is used by a prompt in the registry, not a model")
    try:
        client.get_registered_model(prompt_name_for(target))
    except MlflowException:
        return
    raise RegistryError(f"the name {prompt_name_for(target)!r} is used by a model; {target!r} cannot get its prompt")


def split_commit_message(message: str | None) -> tuple[list[str], str]:
    """A prompt version's commit message as (the promotion paragraphs first in it, the message it
    was registered with)."""
    parts = message.split("\n\n") if message else []
    lead = 0
    while lead < len(parts) and parts[lead].startswith(PARAGRAPH_START):
        lead += 1
    return parts[:lead], "\n\n".join(parts[lead:])


def copy_to(name: str, version: str, target: str) -> Copied:
    """Copy version `version` of `name` into the registered model `target` (created if needed)."""
    source = versions.get_version(name, version)
    prompt_name, prompt_version = versions.linked_prompt(source)
    check_target(name, target)
    return copy_checked(source, (prompt_name, prompt_version), target)


def copy_checked(source, prompt: tuple[str, str], target: str) -> Copied:
    """The copy itself, for callers that ran the checks of `copy_to` already."""
    client = MlflowClient()
    original = client.get_prompt_version(*prompt)
    message = split_commit_message(original.commit_message)[1]
    source_uri = f"models:/{source.name}/{source.version}"
    model_existed = model_exists(client, target)
    copied_prompt = mlflow.genai.register_prompt(  # the tags go on the version (below), not the prompt
        name=prompt_name_for(target), template=original.template,
        commit_message=f"copy of {original.uri} with {source_uri}" + (f": {message}" if message else ""),
        model_config=original.model_config, response_format=original.response_format,
    )
    copy = None
    try:
        for key, value in (original.tags or {}).items():
            if not key.startswith(("mlflow.", "_mlflow")) and value.strip():
                client.set_prompt_version_tag(prompt_name_for(target), str(copied_prompt.version), key, value)
        copy = client.copy_model_version(source_uri, target)
        client.set_model_version_tag(target, copy.version, record.PROMPT_URI, copied_prompt.uri)
        client.set_model_version_tag(target, copy.version, record.COPIED_FROM, source_uri)
        client.set_prompt_version_tag(prompt_name_for(target), str(copied_prompt.version), record.MODEL_VERSION,
                                      str(copy.version))
    except BaseException:
        log.error("copying %s failed; removing prompt version %s", source_uri, copied_prompt.uri)
        if copy is not None:
            client.delete_model_version(target, copy.version)
        client.delete_prompt_version(prompt_name_for(target), str(copied_prompt.version))
        if str(copied_prompt.version) == "1":
            client.delete_prompt(prompt_name_for(target))
        if not model_existed and model_exists(client, target):
            client.delete_registered_model(target)
        raise
    return Copied(source_uri, target, str(copy.version), copied_prompt.uri)
