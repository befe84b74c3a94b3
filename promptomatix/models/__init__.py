"""The model layer: every LLM call goes through LiteLLM."""
