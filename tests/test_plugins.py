"""Named registries and plugins loaded from entry points, with a broken plugin that must not break the rest."""

from __future__ import annotations

import textwrap

import pytest

from promptomatix.backends import BACKENDS
from promptomatix.errors import ConfigError
from promptomatix.models.providers import PROVIDERS
from promptomatix.plugins import Registry
from promptomatix.scoring import METRICS
from promptomatix.task.types import TASK_TYPES

GROUP = "promptomatix.test_things"


def test_register_get_and_names():
    things = Registry("test_things")
    first, second = object(), object()

    assert things.register("zeta", first) is first
    things.register("alpha", second)

    assert things.get("zeta") is first
    assert things.names() == ["alpha", "zeta"]
    assert list(things) == ["alpha", "zeta"]
    assert things.group == GROUP


def test_builtins_are_registered_on_first_use():
    calls = []

    def builtins(registry):
        calls.append(1)
        registry.register("built_in", "value")

    things = Registry("test_things", builtins)
    assert calls == []  # nothing happens until the registry is read

    assert things.get("built_in") == "value"
    assert things.names() == ["built_in"]
    assert calls == [1]


def test_an_unknown_name_lists_the_choices():
    things = Registry("test_things")
    things.register("good_one", 1)
    things.register("other_one", 2)

    with pytest.raises(ConfigError) as info:
        things.get("missing")
    message = str(info.value)
    assert "unknown test thing 'missing'" in message
    assert "choose one of: good_one, other_one" in message


def test_a_name_clash_is_refused_unless_replacing():
    things = Registry("test_things")
    original, replacement = object(), object()
    things.register("name", original)

    with pytest.raises(ConfigError, match="a test_thing named 'name' is already registered"):
        things.register("name", replacement)
    assert things.get("name") is original

    things.register("name", original)  # the same item again is not a clash
    things.register("name", replacement, replace=True)
    assert things.get("name") is replacement


@pytest.mark.parametrize("registry, names", [
    (BACKENDS, {"meta_prompt"}),
    (METRICS, {"classification", "exact_match", "token_f1", "rouge_l", "chrf", "numeric_match"}),
    (TASK_TYPES, {"classification", "qa", "summarization", "translation", "generation", "code_generation",
                  "information_extraction", "math"}),
    (PROVIDERS, {"embedded"}),
], ids=["backends", "metrics", "task_types", "providers"])
def test_the_project_registries_hold_their_builtins(registry, names):
    assert names <= set(registry.names())
    assert registry.errors == {}


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    """A fake installed distribution declaring entry points in `promptomatix.test_things`."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "pmx_good_plugin.py").write_text("class GoodThing:\n    label = 'from a plugin'\n")
    (site / "pmx_broken_plugin.py").write_text("raise RuntimeError('the plugin needs a missing service')\n")
    dist = site / "pmx_test_plugins-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: pmx-test-plugins\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent(f"""\
        [{GROUP}]
        good = pmx_good_plugin:GoodThing
        broken = pmx_broken_plugin:Thing
        missing_attr = pmx_good_plugin:NoSuchName
        taken = pmx_good_plugin:GoodThing
        """))
    monkeypatch.syspath_prepend(str(site))
    yield site
    import sys

    for module in ("pmx_good_plugin", "pmx_broken_plugin"):
        sys.modules.pop(module, None)


def test_entry_points_load_and_a_broken_plugin_is_reported(plugin_site):
    things = Registry("test_things", lambda registry: registry.register("taken", "built in"))

    good = things.get("good")

    assert good.__name__ == "GoodThing" and good.label == "from a plugin"
    assert things.names() == ["good", "taken"]
    assert set(things.errors) == {"broken", "missing_attr", "taken"}
    assert "RuntimeError: the plugin needs a missing service" in things.errors["broken"]
    assert "AttributeError" in things.errors["missing_attr"]
    assert "clashes" in things.errors["taken"]
    assert things.get("taken") == "built in"  # a plugin cannot take over a built-in name


def test_getting_a_broken_plugin_says_why_it_failed(plugin_site):
    things = Registry("test_things")

    with pytest.raises(ConfigError) as info:
        things.get("broken")

    message = str(info.value)
    assert "unknown test thing 'broken'" in message
    assert "its plugin failed: RuntimeError: the plugin needs a missing service" in message
    assert "good" in message  # the working ones are still offered
    assert "\n" not in message


def test_registering_before_reading_still_loads_the_plugins(plugin_site):
    things = Registry("test_things")
    things.register("mine", "value")

    assert things.names() == ["good", "mine", "taken"]


def test_without_plugins_only_registered_items_exist():
    things = Registry("test_things")
    assert things.names() == []
    assert things.errors == {}


def test_a_plugin_adds_a_command_to_the_cli(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from promptomatix import cli as cli_module

    site = tmp_path / "site"
    site.mkdir()
    (site / "pmx_cmd_plugin.py").write_text(textwrap.dedent("""\
        import click

        @click.command(name="hello")
        @click.argument("who")
        def hello(who):
            '''Say hello.'''
            click.echo(f"hello {who}")
        """))
    (site / "pmx_cmd_broken.py").write_text("raise ImportError('needs a missing package')\n")
    dist = site / "pmx_cmd_plugins-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: pmx-cmd-plugins\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[promptomatix.commands]\nhello = pmx_cmd_plugin:hello\nbroken = pmx_cmd_broken:command\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(cli_module, "COMMANDS", Registry("commands"))

    runner = CliRunner()
    assert runner.invoke(cli_module.cli, ["hello", "world"]).output == "hello world\n"
    assert "hello" in runner.invoke(cli_module.cli, ["--help"]).output
    listing = runner.invoke(cli_module.cli, ["plugins"]).output
    assert "commands (entry points: promptomatix.commands): hello" in listing
    assert "failed plugin 'broken': ImportError: needs a missing package" in listing


# --- plugin options ------------------------------------------------------------------------------

@pytest.fixture
def options(monkeypatch):
    from promptomatix.config.plugin_options import OPTIONS

    OPTIONS.names()
    monkeypatch.setattr(OPTIONS, "_items", dict(OPTIONS._items))
    return OPTIONS


def test_a_plugin_option_is_converted_checked_and_logged_like_a_builtin(options):
    from promptomatix.config.flat import config_from_options, to_options
    from promptomatix.config.plugin_options import PluginOption, register_option

    register_option(PluginOption("min_len", int, 3, "Shortest input kept.", choices=(1, 3, 5)))
    config = config_from_options(raw_input="Classify reviews", min_len="5")
    assert config.plugin_options["min_len"] == 5
    assert config.to_params()["min_len"] == "5" and to_options(config)["min_len"] == 5
    assert config_from_options(raw_input="Classify reviews").plugin_options["min_len"] == 3  # the default
    assert "min_len" not in to_options(config_from_options(raw_input="Classify reviews"))
    with pytest.raises(ConfigError, match="min len must be a whole number, got '2.5'"):
        config_from_options(raw_input="Classify reviews", min_len="2.5")
    with pytest.raises(ConfigError, match="min len must be one of 1, 3, 5, got 4"):
        config_from_options(raw_input="Classify reviews", min_len=4)
    with pytest.raises(ConfigError, match="unknown option 'max_len'; known options: .*min_len"):
        config_from_options(raw_input="Classify reviews", max_len=4)


def test_a_plugin_option_cannot_take_a_builtin_name_or_an_odd_type(options):
    from promptomatix.config.plugin_options import PluginOption, register_option

    with pytest.raises(ConfigError, match="'seed' is a built-in option's name"):
        register_option(PluginOption("seed", int, 1))
    with pytest.raises(ConfigError, match="type must be one of str, int, float, bool"):
        PluginOption("weights", list)


def test_a_data_step_gets_the_plugin_options_it_names(options, monkeypatch):
    from promptomatix.data.steps import DATA_STEPS, DataSteps, register_data_step, Rejected

    DATA_STEPS.names()
    monkeypatch.setattr(DATA_STEPS, "_items", dict(DATA_STEPS._items))
    from promptomatix.config.plugin_options import PluginOption, register_option
    from promptomatix.task.spec import TaskSpec

    register_option(PluginOption("min_words", int, 3))

    def long_enough(example, spec, min_words=3):
        if len(example["text"].split()) < min_words:
            raise Rejected(f"fewer than {min_words} words")
        return example

    register_data_step("long_enough_test", long_enough)
    spec = TaskSpec("d", ("text",), ("label",), "classification")
    steps = DataSteps(["long_enough_test"], spec, options={"min_words": 2})
    assert steps({"text": "two words", "label": "x"}, "train") is not None
    strict = DataSteps(["long_enough_test"], spec, options={"min_words": 5})
    assert strict({"text": "two words", "label": "x"}, "train") is None
    assert strict.rejections[0].reason == "fewer than 5 words"


def test_a_metric_gets_the_plugin_options_it_names_and_a_bad_plugin_metric_is_refused_up_front(options, monkeypatch):
    from promptomatix.config.flat import config_from_options
    from promptomatix.config.plugin_options import PluginOption, register_option
    from promptomatix.config.preflight import checked
    from promptomatix.scoring import Metric, METRICS, register_metric

    METRICS.names()
    monkeypatch.setattr(METRICS, "_items", dict(METRICS._items))
    register_option(PluginOption("min_chars", int, 1))

    def long_answer(example, pred, trace=None, min_chars=1):
        return float(len(pred["answer"]) >= min_chars)

    register_metric("long_answer", long_answer)
    preds, golds = [{"answer": "abc"}, {"answer": "abcdef"}], [{"answer": "x"}, {"answer": "y"}]
    assert Metric("long_answer", "long_answer", {"min_chars": 5}).score_records(preds, golds, ["answer"]).score == 0.5
    assert Metric("long_answer", "long_answer", {"min_chars": 1}).score_records(preds, golds, ["answer"]).score == 1.0
    # an entry point's metric is not seen by register_metric: its shape is checked with the config
    METRICS._items["entry_point_metric"] = lambda text: 1.0
    with pytest.raises(ConfigError, match="metric 'entry_point_metric' has the signature"):
        checked(config_from_options(raw_input="Classify reviews", metric_weights={"entry_point_metric": 1}))
