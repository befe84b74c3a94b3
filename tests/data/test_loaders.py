"""Loading the user's data (CSV, TSV, JSONL, JSON, saved data sets) and splitting it."""

import json

import pytest

from promptomatix.data import split
from promptomatix.data.loaders import check_fields, load_examples
from promptomatix.errors import DataError, UsageError

ROWS = [{"review": "A gripping, funny film", "label": "positive"},
        {"review": "Dull and far too long", "label": "negative"}]


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return str(path)


# --- formats ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "name, text",
    [
        ("data.csv", 'review,label\n"A gripping, funny film",positive\nDull and far too long,negative\n'),
        ("data.tsv", "review\tlabel\nA gripping, funny film\tpositive\nDull and far too long\tnegative\n"),
        ("data.jsonl", "\n".join(json.dumps(r) for r in ROWS) + "\n\n"),
        ("data.JSON", json.dumps(ROWS)),
    ],
)
def test_loads_each_format(tmp_path, name, text):
    assert load_examples(write(tmp_path, name, text)) == ROWS


def test_loads_saved_dataset_folder(tmp_path):
    import datasets

    folder = tmp_path / "saved"
    datasets.Dataset.from_list(ROWS).save_to_disk(str(folder))
    assert load_examples(str(folder)) == ROWS


def test_values_become_strings(tmp_path):
    path = write(tmp_path, "d.jsonl", '{"question": "2+2?", "answer": 4, "note": null}\n')
    assert load_examples(path) == [{"question": "2+2?", "answer": "4", "note": ""}]


def test_field_map_renames_columns(tmp_path):
    path = write(tmp_path, "d.csv", "text,sentiment\nloved it,positive\n")
    assert load_examples(path, {"text": "review", "sentiment": "label"}) == [{"review": "loved it", "label": "positive"}]


def test_csv_multi_line_quoted_value_keeps_line_break(tmp_path):
    path = write(tmp_path, "d.csv", 'review,label\n"First line.\nSecond line.",positive\n')
    assert load_examples(path) == [{"review": "First line.\nSecond line.", "label": "positive"}]


def test_csv_with_byte_order_mark(tmp_path):
    path = write(tmp_path, "d.csv", "review,label\nloved it,positive\n", encoding="utf-8-sig")
    assert load_examples(path) == [{"review": "loved it", "label": "positive"}]


# --- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "name, text, message",
    [
        ("d.txt", "review,label\n", "unknown data format .txt"),
        ("d", "review,label\n", "unknown data format (none)"),
        ("d.jsonl", '{"review": "ok", "label": "a"}\n\n{"review": broken\n', "line 3 is not valid JSON"),
        ("d.jsonl", '{"review": "ok"}\n["a list"]\n', "line 2 is not a JSON object"),
        ("d.json", '{"review": "ok", "label": "a"}', "expected a JSON list of objects"),
        ("d.json", '[{"review": "ok"}, "text"]', "expected a JSON list of objects"),
        ("d.json", '[{"review": "ok"},\n{"review": }]', "not valid JSON (line 2"),
        ("d.csv", "review,label\nok,a\ntoo,many,values\n", "line 3 has more values than the header's 2 columns"),
        ("d.csv", "review,label\nok,a\nmissing\n", "line 3 has fewer values than the header's 2 columns"),
        ("d.csv", "", "no examples in the data"),
        ("d.csv", "review,label\n", "no examples in the data"),
        ("d.jsonl", "\n\n", "no examples in the data"),
        ("d.json", "[]", "no examples in the data"),
    ],
)
def test_bad_files_raise_data_error_naming_the_file(tmp_path, name, text, message):
    path = write(tmp_path, name, text)
    with pytest.raises(DataError) as info:
        load_examples(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)
    assert isinstance(info.value, UsageError)


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="nope.csv: no such file"):
        load_examples(path)


def test_folder_that_is_not_a_saved_dataset(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match="not a data set saved with datasets' save_to_disk"):
        load_examples(str(tmp_path / "folder"))


def test_undecodable_file(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b"review,label\n\xff\xfe bad,a\n")
    with pytest.raises(DataError, match="cannot read"):
        load_examples(str(path))


def test_field_map_naming_absent_column(tmp_path):
    path = write(tmp_path, "d.csv", "text,label\nloved it,positive\n")
    with pytest.raises(DataError, match=r"field map names columns not in the data: txt \(columns: text, label\)"):
        load_examples(path, {"txt": "review"})


def test_hub_data_set_offline_is_a_data_error():
    with pytest.raises(DataError, match="^hf:some/name: cannot load the data set"):
        load_examples("hf:some/name")


# --- check_fields -----------------------------------------------------------------------------

def test_check_fields_keeps_only_the_fields():
    rows = [{"review": "good", "label": "positive", "id": "1"}]
    assert check_fields(rows, ["review", "label"], "d.csv") == [{"review": "good", "label": "positive"}]


@pytest.mark.parametrize(
    "rows, message",
    [
        ([ROWS[0], {"review": "x"}], "d.csv: example 2 lacks field 'label' (it has: review)"),
        ([ROWS[0], ROWS[1], {"review": "x", "label": "  "}], "d.csv: example 3 has an empty 'label'"),
    ],
)
def test_check_fields_errors_name_the_example(rows, message):
    with pytest.raises(DataError) as info:
        check_fields(rows, ["review", "label"], "d.csv")
    assert str(info.value) == message


# --- split ------------------------------------------------------------------------------------

EXAMPLES = [{"text": f"example {i}", "label": "a"} for i in range(10)]


@pytest.mark.parametrize("ratio, train_size", [(0.5, 5), (0.3, 3), (0.8, 8), (0.01, 1), (0.99, 9)])
def test_split_sizes_follow_ratio(ratio, train_size):
    train, valid = split(EXAMPLES, ratio, seed=0)
    assert (len(train), len(valid)) == (train_size, 10 - train_size)


@pytest.mark.parametrize("ratio", [0.01, 0.5, 0.99])
def test_split_two_examples_gives_one_each(ratio):
    train, valid = split(EXAMPLES[:2], ratio, seed=3)
    assert len(train) == len(valid) == 1


def test_split_loses_and_duplicates_nothing():
    train, valid = split(EXAMPLES, 0.7, seed=1)
    assert sorted(e["text"] for e in train + valid) == sorted(e["text"] for e in EXAMPLES)


def test_split_is_deterministic_for_a_seed_and_shuffles():
    assert split(EXAMPLES, 0.5, seed=7) == split(EXAMPLES, 0.5, seed=7)
    orders = {tuple(e["text"] for e in sum(split(EXAMPLES, 0.5, seed=s), [])) for s in range(5)}
    assert len(orders) > 1


def test_split_needs_two_examples():
    with pytest.raises(ValueError, match="at least two examples"):
        split(EXAMPLES[:1], 0.5, seed=0)
