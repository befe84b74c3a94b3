"""Optimization backends, by name: `meta_prompt` (default), `dspy`, and any registered plugin."""

from __future__ import annotations

from promptomatix.plugins import Registry


def _builtins(registry: Registry) -> None:
    from promptomatix.backends.dspy import DSPyBackend
    from promptomatix.backends.metaprompt import MetaPromptBackend

    registry.register("meta_prompt", MetaPromptBackend)
    registry.register("dspy", DSPyBackend)


BACKENDS: Registry = Registry("backends", _builtins)


def register_backend(name: str, backend_class, *, replace: bool = False):
    """Register a `Backend` subclass (or a factory returning a `Backend`) under `name`."""
    return BACKENDS.register(name, backend_class, replace=replace)


def get_backend(name: str):
    return BACKENDS.get(name)
