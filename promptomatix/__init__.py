"""Promptomatix: turn a plain-language task into an optimized, versioned prompt tracked in MLflow."""
