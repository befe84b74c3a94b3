"""A config checked against the plugin registries, where a run starts (`api.optimize`,
`api.plan`), before anything is written.

`OptimizationConfig` validates only its own values: building one loads no plugin (an entry
point may import heavy packages, or fail) and imports none of the modules that read it, so it
stays a plain value every layer can depend on. The names it holds (backend, hooks, data steps,
metrics, task type, templates, plugin options) are looked up here instead, each unknown name a
one-line ConfigError naming the choices.
"""

from __future__ import annotations

from promptomatix.backends import get_backend
from promptomatix.config import OptimizationConfig
from promptomatix.config.plugin_options import resolve
from promptomatix.data.selflabel import INPUTS_FIELDS
from promptomatix.data.steps import DATA_STEPS
from promptomatix.data.synthetic import SYNTHETIC_FIELDS
from promptomatix.intake import INTAKE_FIELDS
from promptomatix.run.callbacks import HOOKS
from promptomatix.scoring import check_metric_spec
from promptomatix.task.types import get_task_type
from promptomatix.templates import check_source


def checked(config: OptimizationConfig) -> OptimizationConfig:
    """`config` with every plugin option's value for the run (converted, else its default);
    ConfigError for a name no registry knows."""
    resolved = resolve(config.plugin_options)
    for key, allowed in (("intake_prompt", INTAKE_FIELDS), ("synthetic_prompt", SYNTHETIC_FIELDS),
                         ("inputs_prompt", INPUTS_FIELDS)):
        check_source(getattr(config, key), allowed, key.replace("_", " "))
    for spec in (*config.metric_weights, *config.eval_metrics):  # an entry point's metric too
        check_metric_spec(spec)
    get_backend(config.backend)
    for hook in config.hooks:
        HOOKS.get(hook)
    for step in config.data_steps:
        DATA_STEPS.get(step)
    if config.task_type is not None:
        get_task_type(config.task_type)
    return config if resolved == config.plugin_options else config.replace(plugin_options=resolved)
