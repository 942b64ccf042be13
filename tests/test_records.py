import pytest
from pydantic import ValidationError

from gliznet_data.records import (
    REJECT_REASONS, Example, Record, ValidationLimits, accepted_word_range, normalize_label, record_id,
    reject_reason, validate_rows,
)

PROVENANCE = {
    "domain": "finance", "task_type": "topic classification", "length_bucket": "short", "genre": "tweet",
    "tone": "neutral", "provider": "groq", "model": "m", "prompt_version": "abc", "seed": 1,
}


def good(**over):
    row = {"text": "The central bank raised interest rates again this morning.",
           "labels": ["monetary policy"], "not_labels": ["stock market crash", "fiscal policy"]}
    return row | PROVENANCE | over


def reason_of(row, limits=None):
    with pytest.raises(ValidationError) as info:
        Record.model_validate(row, context={"limits": limits} if limits else None)
    return reject_reason(info.value)


def test_valid_record_gets_normalized_labels_and_stable_id():
    record = Record.model_validate(good(labels=["Monetary_Policy "], not_labels=["Fiscal  policy", "INFLATION"]))
    assert record.labels == ["monetary policy"]
    assert record.not_labels == ["fiscal policy", "inflation"]
    assert record.id == record_id("the CENTRAL bank  raised interest rates again this morning.")
    assert len(record.id) == 16


def test_normalization_is_one_rule():
    assert normalize_label("  Customer_Support\tTicket ") == "customer support ticket"
    assert normalize_label("ｃｕｓｔｏｍｅｒ") == "customer"  # NFKC folds full-width letters


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text(text):
    assert reason_of(good(text=text)) == "empty_text"


@pytest.mark.parametrize("text", [
    "Here are five examples about banking and rates for you.",
    "Sure! Here are the texts: the bank raised rates today.",
    "I cannot generate content about that bank.",
    "As an AI language model, I think rates went up.",
    "```json the bank raised rates```",
    '{"text": "rates", "labels": ["x"]}',
    'The bank raised rates "labels": ["monetary policy"]',
    "Example 3: the bank raised rates again.",
])
def test_meta_talk_and_debris(text):
    assert reason_of(good(text=text)) == "meta_text"


@pytest.mark.parametrize("text", [
    "I can't log in to my banking app since the rate update.",
    "Sure, I'll bring the mortgage forms tomorrow morning.",
    "I'm sorry to bother you again about the rate change.",
    "Here is my account number, please check the new rate.",
])
def test_people_may_open_like_an_assistant(text):
    Record.model_validate(good(text=text))


def test_control_characters_in_text_and_labels():
    assert reason_of(good(text="Rates rose\x00 again today.")) == "control_chars"
    assert reason_of(good(labels=["monetary\x07policy"])) == "control_chars"
    Record.model_validate(good(text="Rates rose.\nAgain today.\tReally."))  # newline and tab are text


def test_length_bucket_with_tolerance():
    low, high = accepted_word_range("medium")
    assert (low, high) == (16, 60)
    words = lambda n: " ".join(["word"] * (n - 1) + ["end."])  # noqa: E731
    Record.model_validate(good(text=words(16), length_bucket="medium"))
    Record.model_validate(good(text=words(60), length_bucket="medium"))
    assert reason_of(good(text=words(15), length_bucket="medium")) == "length_out_of_bucket"
    assert reason_of(good(text=words(61), length_bucket="medium")) == "length_out_of_bucket"
    assert reason_of(good(text=words(25), length_bucket="short")) == "length_out_of_bucket"
    assert reason_of(good(text=words(39), length_bucket="long")) == "length_out_of_bucket"
    tight = ValidationLimits(length_tolerance=0.0)
    assert reason_of(good(text=words(20), length_bucket="medium"), tight) == "length_out_of_bucket"


def test_long_reaches_200_words_and_document_bucket_has_its_tolerance():
    words = lambda n: " ".join(["word"] * (n - 1) + ["end."])  # noqa: E731
    assert accepted_word_range("long") == (40, 240)
    assert accepted_word_range("document") == (160, 480)
    Record.model_validate(good(text=words(200), length_bucket="long"))
    for n in (160, 300, 480):
        Record.model_validate(good(text=words(n), length_bucket="document"))
    assert reason_of(good(text=words(159), length_bucket="document")) == "length_out_of_bucket"
    assert reason_of(good(text=words(481), length_bucket="document")) == "length_out_of_bucket"
    assert reason_of(good(text=words(241), length_bucket="long")) == "length_out_of_bucket"
    assert reason_of(good(text=words(300), length_bucket="huge")) == "schema"


def test_label_counts_respect_configurable_limits():
    assert reason_of(good(labels=[])) == "too_few_labels"
    assert reason_of(good(not_labels=[])) == "too_few_not_labels"
    limits = ValidationLimits(max_labels=2, max_not_labels=2)
    assert reason_of(good(labels=["a", "b", "c"]), limits) == "too_many_labels"
    assert reason_of(good(not_labels=["a", "b", "c"]), limits) == "too_many_not_labels"


@pytest.mark.parametrize("label,reason", [
    ("", "label_empty"),
    ("   ", "label_empty"),
    ("one two three four five six seven", "label_too_long"),
    ("x" * 61, "label_too_long"),
])
def test_bad_labels(label, reason):
    assert reason_of(good(labels=["monetary policy", label])) == reason


def test_duplicate_labels_after_normalization():
    assert reason_of(good(labels=["Monetary Policy", "monetary_policy"])) == "label_duplicate"
    assert reason_of(good(not_labels=["fiscal policy", "FISCAL  POLICY"])) == "label_duplicate"


def test_overlap_drops_the_negative_and_keeps_the_record_when_enough_remain():
    record = Record.model_validate(good(labels=["monetary policy"], not_labels=["Monetary_Policy", "fiscal policy"]))
    assert record.not_labels == ["fiscal policy"]
    assert reason_of(good(labels=["monetary policy"], not_labels=["MONETARY POLICY"])) == "too_few_not_labels"


def test_label_equal_to_text():
    assert reason_of(good(text="Monetary policy", labels=["monetary policy"])) == "label_is_text"
    assert reason_of(good(text="fiscal policy", not_labels=["Fiscal_Policy", "x"])) == "label_is_text"


def test_wrong_types_are_schema_rejects():
    assert reason_of(good(labels="monetary policy")) == "schema"
    assert reason_of(good(text=42)) == "schema"
    with pytest.raises(ValidationError) as info:
        Record.model_validate(["not", "a", "dict"])
    assert reject_reason(info.value) == "schema"


def test_every_reason_has_a_description():
    for reason in ("empty_text", "meta_text", "label_is_text", "duplicate", "broken_json", "cross_role"):
        assert REJECT_REASONS[reason]


def test_validate_rows_handles_zshot_shaped_rows_and_duplicates():
    rows = [
        {"text": "Great phone, battery lasts two days.", "labels": ["Battery_Life"], "not_labels": ["screen quality"]},
        {"text": "great phone,  battery lasts two days.", "labels": ["battery life"], "not_labels": ["price"]},
        {"text": "", "labels": ["x"], "not_labels": ["y"]},
        good(),
    ]
    report = validate_rows(rows)
    assert (report.rows, report.valid) == (4, 2)
    assert report.rejects == {"duplicate": 1, "empty_text": 1}


def test_example_without_bucket_skips_length_check():
    Example.model_validate({"text": " ".join(["w"] * 500), "labels": ["a"], "not_labels": ["b"]})
