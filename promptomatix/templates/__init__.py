"""Meta-prompt text files (data, not code)."""
