"""Small labelled movie-review sets and scripted task models shared by the tests."""

import re

MAGIC = "CAREFULLY"  # the word a scripted task model needs in the prompt to answer right

TRAIN = [
    {"text": "a gripping, funny film", "label": "positive"},
    {"text": "dull and far too long", "label": "negative"},
    {"text": "the cast is superb", "label": "positive"},
    {"text": "I walked out halfway", "label": "negative"},
]
VALID = [
    {"text": "wonderful from start to end", "label": "positive"},
    {"text": "a boring mess of a movie", "label": "negative"},
    {"text": "moving and beautifully shot", "label": "positive"},
    {"text": "the worst script this year", "label": "negative"},
]
TRUTH = {e["text"]: e["label"] for e in TRAIN + VALID}


def answer_task(prompt: str, params: dict) -> str:
    """The task model: right on example i when the prompt carries QUALITY=n with i < n."""
    quality = re.search(r"QUALITY=(\d+)", prompt)
    query = prompt.rsplit("Review:", 1)[-1]
    index = re.search(r"film (\d+)", query)
    right = "positive" if "good" in query else "negative"
    wrong = "negative" if right == "positive" else "positive"
    return right if quality and index and int(index.group(1)) < int(quality.group(1)) else wrong
