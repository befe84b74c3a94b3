"""The model layer: every LLM call goes through LiteLLM."""

import os

# LiteLLM fetches its price table from the internet at import unless told otherwise; any
# module here may be the first to import it (the embedded provider does at its top).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
