"""What an optimization records in MLflow, and how the writes get there.

`record` holds every name a run records, in one place (it imports no MLflow, so backends use it);
`mlflow_tracker` the per-iteration callback and the helpers for params, data sets and text
artifacts; `recorder` the run's writes step by step; `tracer` and `tracewriter` LLM calls as
traces; `storeretry` store calls that survive a flaky network; `servercheck` whether the
tracking server is there; `failure` the error tag. This file imports nothing, so that reaching
`record` does not load MLflow.
"""
