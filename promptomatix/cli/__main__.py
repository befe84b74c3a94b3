"""`python -m promptomatix.cli`: the `promptomatix` command."""

from promptomatix.cli import main

main()
