"""The original Promptomatix module path: `from promptomatix.main import process_input` works.

A re-export of `promptomatix.guide.api` (the guide's interface translated onto ours); nothing here
runs at import time.
"""

from promptomatix.guide.api import optimize_with_feedback, process_input, save_feedback

__all__ = ["process_input", "optimize_with_feedback", "save_feedback"]
