"""Data sources: which source reads a location, and how a plugin source's faults are reported."""

from __future__ import annotations

import pytest

from promptomatix.data import sources
from promptomatix.data.loaders import load_examples
from promptomatix.data.sources import DATA_SOURCES, register_data_source
from promptomatix.errors import DataError, PluginError


@pytest.fixture(autouse=True)
def own_registry(monkeypatch):
    DATA_SOURCES.names()
    monkeypatch.setattr(DATA_SOURCES, "_items", dict(DATA_SOURCES._items))


def test_a_registered_name_before_the_colon_picks_the_source():
    register_data_source("mem", lambda location: [{"text": location.upper(), "label": "x"}])
    assert load_examples("mem:hello") == [{"text": "HELLO", "label": "x"}]


def test_paths_pick_a_source_by_suffix_and_folders_the_saved_reader(tmp_path):
    (tmp_path / "a.tsv").write_text("text\tlabel\nhi\tx\n")
    assert load_examples(str(tmp_path / "a.tsv")) == [{"text": "hi", "label": "x"}]
    assert sources._resolve(str(tmp_path)) == ("saved", str(tmp_path))


def test_a_colon_that_names_no_source_is_part_of_the_path(tmp_path):
    path = tmp_path / "odd:name.jsonl"
    path.write_text('{"text": "hi", "label": "x"}\n')
    assert load_examples(str(path)) == [{"text": "hi", "label": "x"}]
    with pytest.raises(DataError, match="nope:thing: no such file"):
        load_examples("nope:thing")


def test_an_unknown_suffix_names_the_sources_to_choose_from(tmp_path):
    path = tmp_path / "data.parquet"
    path.write_text("x")
    with pytest.raises(DataError, match=r"unknown data format \.parquet.*NAME:LOCATION \(sources: csv, hf, json"):
        load_examples(str(path))


def test_a_failing_plugin_source_is_named_with_its_reason():
    def broken(location):
        raise KeyError("token")

    register_data_source("broken", broken)
    with pytest.raises(PluginError, match=r"broken:x: data source 'broken' failed: KeyError: 'token'"):
        load_examples("broken:x")


def test_rows_that_are_not_mappings_are_refused():
    register_data_source("lists", lambda location: [["a", "b"]])
    with pytest.raises(DataError, match="row 1 is not a mapping.*'lists' gave list"):
        load_examples("lists:x")


def test_a_source_must_be_callable_and_names_are_taken_once():
    with pytest.raises(PluginError, match="must be callable"):
        register_data_source("text", "not a function")
    from promptomatix.errors import ConfigError

    with pytest.raises(ConfigError, match="already registered"):
        register_data_source("csv", lambda location: [])
