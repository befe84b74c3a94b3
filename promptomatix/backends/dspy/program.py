"""DSPy programs for a task: which module, its signature, and the JSON that serving rebuilds.

    spec = SignatureSpec("Classify the sentiment.", ("text",), ("label",), labels=("negative", "positive"))
    program = build_program("ChainOfThought", spec)           # a dspy.ChainOfThought over the spec
    data = program_to_dict(program, "ChainOfThought", spec, {"name": "chat"})
    same = program_from_dict(data)                               # same instructions, demos, outputs

Modules, by name (`MODULES`; `dspy.ChainOfThought` is accepted for `ChainOfThought`):
Predict, ChainOfThought, ProgramOfThought (runs the code it writes in DSPy's interpreter: the
Deno sandbox unless `dspy.configure(interpreter_factory=...)` says otherwise) and ReAct (with no
tools but DSPy's `finish`). A user's own `dspy.Module` subclass is named `package.module:Class`;
its constructor takes the signature.

`program_to_dict` is `{"kind": "dspy", "module", "signature", "state": program.dump_state(),
"adapter"}`; `load_runner` turns it into the callable the registered pyfunc model serves.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from promptomatix.errors import ConfigError
from promptomatix.plugins import Registry
from promptomatix.task.prompt import Prompt
from promptomatix.task.spec import Example

log = logging.getLogger(__name__)
KIND = "dspy"


@dataclass(frozen=True)
class SignatureSpec:
    """The task's side of a DSPy signature: instructions, field names, and the label set (shown to
    the model as the first output field's description)."""

    instructions: str
    input_fields: tuple[str, ...]
    output_fields: tuple[str, ...]
    labels: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict) -> SignatureSpec:
        return cls(data["instructions"], tuple(data["input_fields"]), tuple(data["output_fields"]),
                   tuple(data.get("labels", ())))

    @property
    def fields(self) -> tuple[str, ...]:
        return self.input_fields + self.output_fields

    def build(self):
        """The `dspy.Signature`."""
        import dspy

        fields = {name: dspy.InputField() for name in self.input_fields}
        for index, name in enumerate(self.output_fields):
            hint = f"one of: {', '.join(self.labels)}" if self.labels and index == 0 else None
            fields[name] = dspy.OutputField(desc=hint) if hint else dspy.OutputField()
        return dspy.Signature(fields, self.instructions)


def _predict(signature):
    import dspy

    return dspy.Predict(signature)


def _chain_of_thought(signature):
    import dspy

    return dspy.ChainOfThought(signature)


def _program_of_thought(signature):
    import dspy

    return dspy.ProgramOfThought(signature)


def _react(signature):
    import dspy

    return dspy.ReAct(signature, tools=[])


ModuleFactory = Callable[[object], object]  # dspy.Signature -> dspy.Module


def _builtins(registry: Registry[ModuleFactory]) -> None:
    for name, factory in (("Predict", _predict), ("ChainOfThought", _chain_of_thought),
                          ("ProgramOfThought", _program_of_thought), ("ReAct", _react)):
        registry.register(name, factory)


MODULES: Registry[ModuleFactory] = Registry("dspy_modules", _builtins)


def register_dspy_module(name: str, factory: ModuleFactory, *, replace: bool = False) -> ModuleFactory:
    """Register `factory(signature) -> dspy.Module` (a `dspy.Module` subclass, say) for
    `--dspy-module NAME`; entry points in `promptomatix.dspy_modules` do the same."""
    return MODULES.register(name, factory, replace=replace)


def resolve_module(name: str) -> tuple[str, ModuleFactory]:
    """`(canonical name, factory)` for a module name, or `ConfigError` listing the choices."""
    short = name.removeprefix("dspy.")
    if short in MODULES.names():
        return short, MODULES.get(short)
    if ":" in name:
        return name, _import_module_class(name)
    raise ConfigError(f"unknown DSPy module {name!r}; choose one of: {', '.join(MODULES.names())} "
                      f"(also spelled dspy.<Name>), or your own dspy.Module as package.module:Class")


def _import_module_class(path: str):
    import dspy

    module_name, _, qualname = path.partition(":")
    try:
        target = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"cannot import the DSPy module {path!r}: {exc}") from None
    if not (isinstance(target, type) and issubclass(target, dspy.Module)):
        raise ConfigError(f"{path!r} is not a dspy.Module subclass")
    return target


def check_module(name: str) -> None:
    """`ConfigError` for a module that cannot be built here, before any run starts."""
    short, _ = resolve_module(name)
    if short == "ProgramOfThought":
        import dspy

        deno = shutil.which("deno") or importlib.util.find_spec("deno")
        if dspy.settings.get("interpreter_factory") is None and not deno:
            raise ConfigError("ProgramOfThought runs the code it writes in DSPy's Deno sandbox: install Deno "
                              "(pip install 'dspy[deno]') or set dspy.configure(interpreter_factory=...)")


def build_program(module: str, spec: SignatureSpec, demos: Iterable[Example] = ()):
    """A fresh program of `module` over `spec`; `demos` go to its main predictor."""
    _, factory = resolve_module(module)
    program = factory(spec.build())
    demos = list(demos)
    if demos:
        import dspy

        main_predictor(program, spec.output_fields).demos = [
            dspy.Example(**demo).with_inputs(*spec.input_fields) for demo in demos]
    return program


def main_predictor(program, output_fields: Iterable[str]):
    """The predictor that writes the task's outputs: the last one whose signature has them all
    (ChainOfThought's `predict`, ReAct's `extract.predict`), else the last one."""
    predictors = [p for _, p in program.named_predictors()]
    if not predictors:
        raise ConfigError(f"the DSPy program {type(program).__name__} has no predictors to optimize")
    wanted = set(output_fields)
    writers = [p for p in predictors if wanted <= set(p.signature.output_fields)]
    return (writers or predictors)[-1]


def _text(value) -> str:
    return "" if value is None else str(value)


def predictors_text(predictors: Iterable) -> str:
    """The instructions and demo values of `predictors`: what the length penalty counts."""
    parts = []
    for predictor in predictors:
        parts.append(predictor.signature.instructions)
        for demo in predictor.demos:
            parts.extend(_text(value) for key, value in demo.items() if key != "augmented")
    return "\n".join(parts)


def program_text(program) -> str:
    return predictors_text(p for _, p in program.named_predictors())


def program_prompt(program, spec: SignatureSpec, *, single_line: bool, labels: tuple[str, ...] = ()) -> Prompt:
    """The program as a promptomatix `Prompt`: its main predictor's instructions and the demos it
    learned (their task fields), which is the text the Prompt Registry shows."""
    predictor = main_predictor(program, spec.output_fields)
    demos = tuple({name: _text(demo.get(name)) for name in spec.fields} for demo in predictor.demos
                  if all(demo.get(name) is not None for name in spec.fields))
    return Prompt(predictor.signature.instructions, spec.input_fields, spec.output_fields, demos, single_line, labels)


def program_to_dict(program, module: str, spec: SignatureSpec, adapter: dict) -> dict:
    """What serving needs to rebuild `program`, as plain JSON data."""
    state = program.dump_state()
    for predictor_state in state.values() if "signature" not in state else [state]:
        predictor_state["lm"] = None  # serving runs the registered task model
    data = {"kind": KIND, "module": module, "signature": asdict(spec), "state": state, "adapter": dict(adapter)}
    return json.loads(json.dumps(data))  # fails here, not in MLflow, on anything not JSON


def program_from_dict(data: dict):
    """The program `program_to_dict` described, with its learned instructions and demos."""
    program = build_program(data["module"], SignatureSpec.from_dict(data["signature"]))
    program.load_state(data["state"])
    return program


def state_key(program) -> str:
    """Equal for programs with the same instructions and demos."""
    return json.dumps(program.dump_state(), sort_keys=True, default=repr)


class ProgramRunner:
    """Serving: runs a rebuilt program on one row of inputs with the registered task model.

    An answer the adapter cannot parse gives empty outputs for that row (logged, and counted in
    `meter.parse_failures`), as the plain prompt path returns whatever the model wrote."""

    def __init__(self, data: dict, settings, meter):
        from promptomatix.backends.dspy.adapter import make_adapter
        from promptomatix.backends.dspy.lm import MeteredLM

        self.spec = SignatureSpec.from_dict(data["signature"])
        self.program = program_from_dict(data)
        self.lm = MeteredLM(settings, meter)
        self.adapter = make_adapter(data["adapter"], meter)

    def __call__(self, row: dict) -> dict[str, str]:
        import dspy
        from dspy.utils.exceptions import AdapterParseError

        inputs = {name: row[name] for name in self.spec.input_fields}
        try:
            with dspy.context(lm=self.lm, adapter=self.adapter):
                prediction = self.program(**inputs)
        except AdapterParseError as exc:
            log.warning("unparseable answer for %s: %s", inputs, exc)
            return dict.fromkeys(self.spec.output_fields, "")
        return {name: _text(getattr(prediction, name, None)) for name in self.spec.output_fields}


def load_runner(data: dict, settings, meter) -> ProgramRunner:
    return ProgramRunner(data, settings, meter)
