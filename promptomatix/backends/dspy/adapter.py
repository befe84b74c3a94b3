"""Adapters: how a DSPy signature becomes a prompt, and a model's answer becomes outputs.

Two, by name (`ADAPTERS`), each counting every answer it cannot parse in the meter's
`parse_failures` before raising DSPy's `AdapterParseError` (the example then fails; the count
shows how often):

- `chat`: DSPy's `ChatAdapter` (with its JSON fallback), for chat models.
- `text`: `TextAdapter`, for base models, which continue patterns and do not follow ChatAdapter's
  `[[ ## field ## ]]` protocol. It writes the instruction, the demos and the query in the plain
  `Field: value` completion format of `promptomatix.task.prompt.Prompt` and reads the fields back
  from the continuation:

      Classify the sentiment.

      Text: a gripping, funny film
      Label: positive

      Text: {query}
      Label:

For a label field (`labels`: a classification's answer on one line) whose model scores options
(the embedded model), the text adapter asks for the answer as one JSON string out of the labels
(`LM.choose`'s scoring request), so every answer is a label; a free-text answer is mapped to the
label it names (`scoring.labels.read_label`), and one naming none is a parse failure, scored wrong.

`adapter_spec(model, single_line, labels)` picks one for a model (`ADAPTER_BY_PROVIDER`: `embedded/`
models are base models); the spec is a small JSON dict that serving turns back into the adapter.
One adapter serves every DSPy call of an optimization, the optimizer model's proposals too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import dspy
from dspy.adapters.utils import parse_value
from dspy.utils.exceptions import AdapterParseError

from promptomatix.models.lm import choice_mode, score_request
from promptomatix.models.usage import UsageMeter
from promptomatix.scoring.labels import read_label
from promptomatix.task.prompt import field_label

# Providers whose models are base (completion) models, with the adapter they need; others: chat.
ADAPTER_BY_PROVIDER = {"embedded": "text"}
DEFAULT_ADAPTER = "chat"


class CountsParseFailures:
    """Mixin for a `dspy.Adapter`: an answer that cannot be parsed adds 1 to `meter.parse_failures`."""

    meter: UsageMeter | None = None

    def __call__(self, lm, lm_kwargs, signature, demos, inputs):
        try:
            return super().__call__(lm, lm_kwargs, signature, demos, inputs)
        except AdapterParseError:
            self._count_failure()
            raise

    async def acall(self, lm, lm_kwargs, signature, demos, inputs):
        try:
            return await super().acall(lm, lm_kwargs, signature, demos, inputs)
        except AdapterParseError:
            self._count_failure()
            raise

    def _count_failure(self) -> None:
        if self.meter is not None:
            self.meter.add(parse_failures=1)


class MeteredChatAdapter(CountsParseFailures, dspy.ChatAdapter):
    """DSPy's ChatAdapter, counting parse failures (after its JSON fallback) in `meter`."""

    def __init__(self, meter: UsageMeter | None = None):
        super().__init__()
        self.meter = meter


def _paragraph(value: Any) -> str:
    # A blank line ends an example in this format (as in `Prompt`): values keep single breaks.
    text = "\n".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return re.sub(r"\n\s*\n+", "\n", text.strip())


class TextCompletion(dspy.Adapter):
    """Plain text completion: one prompt, continued by the model, cut at the next example.

    `single_line` names the output fields answered on one line (a classification's label): a
    signature whose only output is one of them stops the model at the first line break, as
    `Prompt(single_line=True)` does. Other signatures (an optimizer's proposals, a chain of
    thought) stop at the blank line that ends an example.

    A base model often writes the first output field and stops (or drifts) before the next
    field's `Field:` line. Then the fields read so far are kept and the model is asked again
    with them written into the prompt, ending at the next field's label: each call settles at
    least one more field, so a signature of k outputs takes at most k calls."""

    def __init__(self, *, single_line: Sequence[str] = (), labels: Sequence[str] = ()):
        super().__init__()
        self.single_line = tuple(single_line)
        self.labels = tuple(labels)

    def _kwargs(self, lm, lm_kwargs, signature) -> dict:
        kwargs = {"stop": self.stop(signature), **lm_kwargs}
        if self.labels and self.one_line(signature) and choice_mode(lm.model) == "score":
            kwargs |= score_request(self.labels)
            kwargs.pop("stop")
        return kwargs

    def __call__(self, lm, lm_kwargs, signature, demos, inputs):
        lm_kwargs = self._kwargs(lm, lm_kwargs, signature)
        try:
            return super().__call__(lm, lm_kwargs, signature, demos, inputs)
        except AdapterParseError as exc:
            known, rest = self._continuation(signature, exc)
            more = TextCompletion.__call__(self, lm, {**lm_kwargs, "n": 1}, rest, demos, {**inputs, **known})
            return [{**known, **values} for values in more]

    async def acall(self, lm, lm_kwargs, signature, demos, inputs):
        lm_kwargs = self._kwargs(lm, lm_kwargs, signature)
        try:
            return await super().acall(lm, lm_kwargs, signature, demos, inputs)
        except AdapterParseError as exc:
            known, rest = self._continuation(signature, exc)
            more = await TextCompletion.acall(self, lm, {**lm_kwargs, "n": 1}, rest, demos, {**inputs, **known})
            return [{**known, **values} for values in more]

    @staticmethod
    def _continuation(signature, exc: AdapterParseError):
        """`(fields read, signature asking for the rest)`, or re-raise `exc` when no leading
        field was read (then a new prompt would have nothing to continue from)."""
        read = exc.parsed_result or {}
        known = {}
        for name, field in list(signature.output_fields.items())[:-1]:
            if not read.get(name):
                break
            try:
                known[name] = parse_value(read[name], field.annotation)
            except ValueError:
                raise exc from None
        if not known:
            raise exc
        rest = signature
        for name in known:  # written answers become inputs, in order, after the real inputs
            rest = rest.delete(name).append(name, dspy.InputField(), type_=signature.output_fields[name].annotation)
        return known, rest

    def one_line(self, signature) -> bool:
        return len(signature.output_fields) == 1 and next(iter(signature.output_fields)) in self.single_line

    def stop(self, signature) -> list[str]:
        if self.one_line(signature):
            return ["\n"]
        first_input = next(iter(signature.input_fields), None)
        return ["\n\n"] + ([f"\n{field_label(first_input)}:"] if first_input else [])

    def format(self, signature, demos, inputs) -> list[dict[str, Any]]:
        """The whole prompt as one user message (base-model providers join messages as raw text)."""
        return [{"role": "user", "content": self.render(signature, demos, inputs)}]

    def render(self, signature, demos, inputs) -> str:
        blocks = [signature.instructions.strip()] if signature.instructions.strip() else []
        for demo in demos:
            present = [f for f in signature.fields if demo.get(f) is not None]
            # As ChatAdapter: a demo needs at least one input and one output to teach anything.
            if any(f in signature.input_fields for f in present) and any(f in signature.output_fields for f in present):
                blocks.append(self._lines(present, demo))
        query = self._lines([f for f in signature.input_fields if f in inputs], inputs)
        first_output = field_label(next(iter(signature.output_fields))) + ":"
        blocks.append(f"{query}\n{first_output}" if query else first_output)
        return "\n\n".join(blocks)

    def format_user_message_content(self, signature, inputs, prefix="", suffix="", main_request=False) -> str:
        body = self._lines([f for f in signature.input_fields if f in inputs], inputs)
        return "\n".join(part for part in (prefix, body, suffix) if part)

    def format_assistant_message_content(self, signature, outputs, missing_field_message=None) -> str:
        values = {f: outputs.get(f, missing_field_message) for f in signature.output_fields}
        return self._lines([f for f, v in values.items() if v is not None], values)

    @staticmethod
    def _lines(names, values) -> str:
        return "\n".join(f"{field_label(name)}: {_paragraph(values[name])}" for name in names)

    def parse(self, signature, completion: str) -> dict[str, Any]:
        """The first output field is the text up to the next `Field:` line of a later output
        field, and so on. A field left empty or never written is a parse failure."""
        names = list(signature.output_fields)
        later = {field_label(name).lower(): name for name in names[1:]}
        lines = completion.strip("\n").split("\n")
        if self.one_line(signature):
            lines = lines[:1]
        values: dict[str, list[str]] = {names[0]: []}
        current = names[0]
        for line in lines:
            head, sep, rest = line.partition(":")
            if sep and head.strip().lower() in later:
                current = later[head.strip().lower()]
                values.setdefault(current, [])
                line = rest
            values[current].append(line)
        texts = {name: "\n".join(parts).strip() for name, parts in values.items()}
        if self.labels and self.one_line(signature) and texts.get(names[0]):
            label = read_label(texts[names[0]], self.labels)
            if label is None:
                raise AdapterParseError(adapter_name=type(self).__name__, signature=signature, lm_response=completion,
                                        message=f"the answer names none of the labels {', '.join(self.labels)}",
                                        parsed_result={})
            texts[names[0]] = label
        missing = [name for name in names if not texts.get(name)]
        if missing:
            raise AdapterParseError(adapter_name=type(self).__name__, signature=signature, lm_response=completion,
                                    message=f"no value for {', '.join(missing)}",
                                    parsed_result={k: v for k, v in texts.items() if v})
        try:
            return {name: parse_value(texts[name], field.annotation) for name, field in signature.output_fields.items()}
        except ValueError as exc:  # pydantic's ValidationError is a ValueError too
            raise AdapterParseError(adapter_name=type(self).__name__, signature=signature, lm_response=completion,
                                    message=str(exc), parsed_result=texts) from exc


class TextAdapter(CountsParseFailures, TextCompletion):
    """`TextCompletion` counting the answers it cannot parse, even after continuing, in `meter`."""

    def __init__(self, meter: UsageMeter | None = None, *, single_line: Sequence[str] = (),
                 labels: Sequence[str] = ()):
        super().__init__(single_line=single_line, labels=labels)
        self.meter = meter


ADAPTERS = {"chat": MeteredChatAdapter, "text": TextAdapter}


def adapter_spec(model: str, *, single_line: Sequence[str] = (), labels: Sequence[str] = ()) -> dict:
    """The adapter for `model` as a JSON-serializable spec: `{"name": ..., options...}`;
    `single_line`: the output fields answered on one line, `labels`: the labels such a field
    answers with (for the text adapter)."""
    name = ADAPTER_BY_PROVIDER.get(model.split("/", 1)[0], DEFAULT_ADAPTER)
    if name != "text":
        return {"name": name}
    return {"name": name, "single_line": list(single_line)} | ({"labels": list(labels)} if labels else {})


def make_adapter(spec: dict, meter: UsageMeter | None = None) -> dspy.Adapter:
    """The adapter a spec names, counting parse failures in `meter`."""
    options = {k: v for k, v in spec.items() if k != "name"}
    try:
        adapter_class = ADAPTERS[spec["name"]]
    except KeyError:
        raise ValueError(f"unknown adapter {spec['name']!r}; known: {', '.join(ADAPTERS)}") from None
    return adapter_class(meter, **options)
