"""The original Promptomatix guide's interface under its first module path (see
promptomatix/guide/, which holds it, one module per job).

    from promptomatix.compat import add_guide_aliases, process_input, translate_options
    promtomatic  # the `promtomatic` click command: `promptomatix optimize` with the guide's flags

Names are looked up when asked for, so importing this module imports none of them.
"""

from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    "promptomatix.guide.names": (
        "GUIDE_BACKENDS", "GUIDE_SEARCH_TYPES", "GUIDE_TASK_TYPES", "GUIDE_PROVIDERS", "GUIDE_DEFAULT_MODELS",
        "RENAMED", "REFUSED", "GUIDE_FLAGS", "translate_options", "fold_guide_options", "backend_name",
        "guide_backend_name", "search_name", "model_name", "field_list"),
    "promptomatix.guide.results": ("result_dict",),
    "promptomatix.guide.api": ("process_input", "optimize_with_feedback", "save_feedback", "session_ref"),
    "promptomatix.cli.guide": ("add_guide_aliases", "guide_command"),
    "promptomatix.cli": ("promtomatic",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted([*_MODULE_OF, "main"])


def main() -> None:
    """The `promtomatic` console script: `promptomatix optimize` under the guide's name."""
    from promptomatix.cli import promtomatic

    promtomatic().main(prog_name="promtomatic")


def __getattr__(name: str):
    if name == "promtomatic":  # a click command, built when asked for (it reads the plugin options)
        from promptomatix.cli import promtomatic

        return promtomatic()
    if name in _MODULE_OF:
        return getattr(import_module(_MODULE_OF[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
