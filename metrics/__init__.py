"""Local offline `evaluate` metric modules, shipped as ``promptomatix.builtin_metrics``."""
