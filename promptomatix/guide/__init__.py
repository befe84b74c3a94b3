"""The interface of the original Promptomatix guide, translated at the edge onto ours.

In: the guide's keywords and flags (`process_input(human_input=..., backend="simple_meta_prompt",
model_name=..., model_provider=..., search_type="quick_search", load_data_local=True, ...)`,
`promtomatic --raw_input ... --backend dspy --dspy_module dspy.ChainOfThought`).
Out: one call of `promptomatix.api.optimize` with our option names, and the original's result
dict (`result`, `initial_prompt`, `session_id`, `backend`, `metrics`, `synthetic_data`,
`input_fields`, `output_fields`, `task_type`) plus ours (`run_id`, the registered versions).

One module per job: `names` (the guide's keywords, flags and values as ours), `results` (the
result dict) and `api` (its Python API); its flags on our click command are `promptomatix.cli.guide`,
the only one of them that knows click. `promptomatix.compat` and `promptomatix.main` are their old import paths.
"""
