"""One optimization's life around the search: its run, data, checkpoints, registration and progress."""
