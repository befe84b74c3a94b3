"""Model providers: LiteLLM custom handlers registered under a provider name.

`embedded` (the in-process GGUF model) is built in. A plugin adds its own with
`register_provider("name", factory)` or an entry point in the group `promptomatix.providers`,
where `factory()` returns a `litellm.CustomLLM`; its models are then addressed as `name/<model>`.
A handler with a method `model_prices(provider) -> dict` has those entered in LiteLLM's cost map.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from promptomatix.plugins import Registry

ProviderFactory = Callable[[], Any]


def _builtins(registry: Registry[ProviderFactory]) -> None:
    from promptomatix.models import embedded

    registry.register(embedded.PROVIDER, embedded.EmbeddedLLM)


PROVIDERS: Registry[ProviderFactory] = Registry("providers", _builtins)
_INSTALL_LOCK = threading.Lock()


def register_provider(name: str, factory: ProviderFactory, *, replace: bool = False) -> ProviderFactory:
    """Register a factory of a LiteLLM custom handler under a provider name."""
    PROVIDERS.register(name, factory, replace=replace)
    if replace:  # the next import_litellm() installs the new handler
        litellm = _litellm()
        litellm.custom_provider_map = [e for e in litellm.custom_provider_map if e["provider"] != name]
    return factory


def import_litellm():
    """LiteLLM as this project needs it: the bundled cost map (no network at import), no debug
    banners, unsupported optional params dropped, and every registered provider installed."""
    litellm = _litellm()
    with _INSTALL_LOCK:  # called from scoring threads; LiteLLM's provider lists are globals
        installed = {entry["provider"] for entry in litellm.custom_provider_map}
        missing = [name for name in PROVIDERS.names() if name not in installed]
        for name in missing:
            handler = PROVIDERS.get(name)()
            litellm.custom_provider_map = [*litellm.custom_provider_map, {"provider": name, "custom_handler": handler}]
            if hasattr(handler, "model_prices"):  # a handler may declare its prices for the cost map
                litellm.register_model(handler.model_prices(name))
        if missing:
            litellm.utils.custom_llm_setup()
    return litellm


def _litellm():
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.drop_params = True
    return litellm
