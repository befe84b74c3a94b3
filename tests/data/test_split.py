"""How the user's rows are split for a search: a small validation set topped up from training
with the labels it lacks, and the labels taking turns in it."""

from collections import Counter

from promptomatix.data import hold_out, interleaved


def rows(labels: str, start: int = 0) -> list[dict]:
    return [{"text": f"text {start + i}", "label": label} for i, label in enumerate(labels)]


def test_held_out_rows_bring_the_labels_validation_lacks():
    valid = rows("aaaa")  # the user's validation rows, all of one label
    train = rows("aaaaaaaabbbbbbbbcccccccc", start=100)
    new_train, new_valid = hold_out(train, valid, 8, seed=3, label_field="label")

    assert new_valid[:4] == valid  # the user's rows first
    assert Counter(e["label"] for e in new_valid[4:]) == {"b": 4, "c": 4}
    assert sorted(map(str, new_train + new_valid[4:])) == sorted(map(str, train))  # moved, not copied


def test_a_label_keeps_half_its_training_rows_for_demos():
    train = rows("abbbbbbbbb", start=100)  # one example of "a": it stays to be drawn as a demo
    new_train, new_valid = hold_out(train, rows("bbbb"), 3, seed=0, label_field="label")
    assert Counter(e["label"] for e in new_train) == {"a": 1, "b": 6}
    assert len(new_valid) == 7


def test_without_a_label_field_the_rows_held_out_are_a_seeded_random_choice():
    train = rows("ab" * 10, start=100)
    first = hold_out(train, rows("a"), 5, seed=1)
    assert first == hold_out(train, rows("a"), 5, seed=1) != hold_out(train, rows("a"), 5, seed=2)
    assert len(first[1]) == 6


def test_labels_take_turns_in_order_of_first_appearance_each_in_its_own_order():
    examples = rows("aaabbc")
    assert [e["text"] for e in interleaved(examples, "label")] == \
        ["text 0", "text 3", "text 5", "text 1", "text 4", "text 2"]
    assert interleaved(interleaved(examples, "label"), "label") == interleaved(examples, "label")
