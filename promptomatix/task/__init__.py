"""What a task is: its spec, its type, a prompt, and the candidates a search scores."""
