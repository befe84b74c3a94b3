"""Starting an optimization from a registered version: its prompt, task spec, data and open
feedback, and the links the new version keeps to it.

In: a reference `name@version` or `name@alias`. Out: an `Origin`, which `optimize(from_=...)`
uses instead of intake and data generation; its open comments fill the rewrite meta-prompt's
`$feedback`, and are marked resolved by the new version once it is registered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mlflow.exceptions import MlflowException

from promptomatix.errors import RegistryError
from promptomatix.run import checkpoints
from promptomatix.task.prompt import Prompt
from promptomatix.task.spec import Example, TaskSpec
from promptomatix.tracking import record


@dataclass(frozen=True)
class Origin:
    name: str
    version: str
    run_id: str
    options: dict          # the options of the run that made the version (data paths left out)
    prompt: Prompt
    spec: TaskSpec
    train: list[Example]
    valid: list[Example]
    feedback: list         # open `Feedback` on the version, oldest first

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def feedback_text(self) -> str:
        """The comments as the rewrite meta-prompt reads them, most urgent first."""
        order = {"critical": 0, "high": 1, "medium": 2, "low": 3}
        items = sorted(self.feedback, key=lambda f: order.get(f.priority, 4))
        return "\n".join(f"- [{f.priority}, {f.type}] on {json.dumps(f.text, ensure_ascii=False)}: {f.comment}"
                         for f in items)


def load(ref: str) -> Origin:
    """The version `ref` names, with what its run saved; `RegistryError` when the version or its
    run's saved steps cannot be found."""
    from mlflow.models import get_model_info

    from promptomatix.lifecycle.feedback import list_feedback
    from promptomatix.lifecycle.versions import resolve

    version = resolve(ref)
    name, number = version.name, str(version.version)
    if not version.run_id:
        raise RegistryError(f"{name} version {number} has no run to start from")
    try:
        flavor = get_model_info(f"models:/{name}/{number}").flavors.get("python_function") or {}
    except (MlflowException, OSError) as exc:
        raise RegistryError(f"{name} version {number}: cannot read its logged model: {str(exc).splitlines()[0]}") from None
    prompt = record.config_prompt(flavor.get("config") or {})
    saved = checkpoints.read_saved(version.run_id)
    if prompt is None or saved.spec is None or saved.train is None:
        raise RegistryError(f"{name} version {number} was not made by a promptomatix optimization "
                            f"(its run lacks the prompt, task spec or data)")
    assert saved.valid is not None  # read_saved leaves train and valid both None or both set
    options = {k: v for k, v in saved.options.items() if k not in ("train_data", "valid_data", "field_map")}
    return Origin(name, number, version.run_id, options | {"name": name}, prompt,
                  saved.spec, saved.train, saved.valid, list_feedback(f"{name}@{number}", resolved=False))
