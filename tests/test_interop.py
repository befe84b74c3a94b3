"""`PromptomatixOptimizer` passed as `optimizer=` to MLflow's own `mlflow.genai.optimize_prompts`,
on a real sqlite store; only the LLM is scripted."""

from __future__ import annotations

import litellm
import mlflow
import pytest
from conftest import FAKE_MODEL
from mlflow.genai.optimize.optimizers import BasePromptOptimizer
from mlflow.genai.scorers import scorer

from promptomatix.backends.mlflow_optimizer import PromptomatixOptimizer
from promptomatix.errors import ConfigError

BETTER = "Read the review CAREFULLY and answer positive or negative."
ROWS = [{"inputs": {"review": f"a {word} film {i}"},
         "expectations": {"expected_response": "positive" if word == "good" else "negative"}}
        for i, word in enumerate(["good", "bad", "good", "bad"])]


def answer_task(prompt: str, params: dict) -> str:
    """The application's model: right only when the prompt says CAREFULLY."""
    if "CAREFULLY" not in prompt:
        return "maybe"
    return "positive" if "good" in prompt.rsplit("Review:", 1)[-1] else "negative"


@pytest.fixture
def prompt(tracking, fake_llm):
    fake_llm.rules = [("Improved instruction", {"instruction": BETTER}), ("Review:", answer_task)]
    return mlflow.genai.register_prompt(name="sentiment", template="Say something.\n\nReview: {{review}}")


def predict(review: str) -> str:
    template = mlflow.genai.load_prompt("prompts:/sentiment/1")
    response = litellm.completion(model=FAKE_MODEL, messages=[{"role": "user", "content": template.format(review=review)}])
    return response.choices[0].message.content


@scorer(name="exact")
def exact(outputs, expectations) -> float:
    return float(str(outputs).strip() == expectations["expected_response"])


def test_optimize_prompts_registers_the_rewrite_our_meta_prompt_wrote(prompt, fake_llm):
    optimizer = PromptomatixOptimizer(model=FAKE_MODEL, iterations=1, candidates=2)
    assert isinstance(optimizer, BasePromptOptimizer)

    result = mlflow.genai.optimize_prompts(predict_fn=predict, train_data=ROWS, prompt_uris=[prompt.uri],
                                           optimizer=optimizer, scorers=[exact])

    (optimized,) = result.optimized_prompts
    assert (optimized.name, str(optimized.version)) == ("sentiment", "2")
    assert optimized.template.startswith(BETTER) and "{{review}}" in optimized.template  # placeholder kept
    assert mlflow.genai.load_prompt("prompts:/sentiment/2").template == optimized.template
    assert result.optimizer_name == "PromptomatixOptimizer"
    assert (result.initial_eval_score, result.final_eval_score) == (0.0, 1.0)
    rewrites = [c["prompt"] for c in fake_llm.calls if "Improved instruction" in c["prompt"]]
    assert rewrites and optimizer.rewrites == len(rewrites)  # our rewrite meta-prompt did the work
    assert "Say something." in rewrites[0] and '"expected": {"expected_response": "positive"}' in rewrites[0]
    assert optimizer.usage.calls == len(rewrites) and optimizer.usage.cost > 0
    (run,) = mlflow.search_runs(output_format="list", search_all_experiments=True)
    assert run.data.params["optimizer"] == "PromptomatixOptimizer"
    assert run.data.metrics["promptomatix.best_score"] == 1.0


def test_a_rewrite_that_scores_no_better_leaves_the_prompt_as_it_was(prompt, fake_llm):
    fake_llm.rules[0] = ("Improved instruction", {"instruction": "Just guess the sentiment."})
    result = mlflow.genai.optimize_prompts(predict_fn=predict, train_data=ROWS, prompt_uris=[prompt.uri],
                                           optimizer=PromptomatixOptimizer(model=FAKE_MODEL, iterations=1,
                                                                           candidates=1),
                                           scorers=[exact])
    assert result.optimized_prompts[0].template == prompt.template
    assert result.final_eval_score == result.initial_eval_score == 0.0


def test_without_scorers_it_refuses_with_one_line(prompt):
    with pytest.raises(ConfigError, match="needs scorers"):
        mlflow.genai.optimize_prompts(predict_fn=predict, train_data=ROWS, prompt_uris=[prompt.uri],
                                      optimizer=PromptomatixOptimizer(model=FAKE_MODEL, iterations=1, candidates=1))


def test_bad_options_fail_when_the_optimizer_is_built():
    with pytest.raises(ConfigError, match="iterations"):
        PromptomatixOptimizer(model=FAKE_MODEL, iterations=0)
    with pytest.raises(ConfigError):
        PromptomatixOptimizer(model=FAKE_MODEL, meta_prompt="no-such-meta-prompt")
