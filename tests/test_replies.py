import json

from gliznet_data.replies import parse_reply

EX = [{"text": f"text number {i}", "labels": ["a"], "not_labels": ["b"]} for i in range(4)]
BODY = json.dumps({"examples": EX})


def test_clean_reply():
    assert parse_reply(BODY) == (EX, 0)


def test_bare_list_and_single_object():
    assert parse_reply(json.dumps(EX)).examples == EX
    assert parse_reply(json.dumps(EX[0])).examples == [EX[0]]


def test_prose_and_fences_around_json():
    reply = "Here are the examples:\n```json\n" + BODY + "\n```\nHope this helps {not json}."
    assert parse_reply(reply) == (EX, 0)


def test_truncated_reply_keeps_complete_examples_and_counts_the_cut_one():
    parsed = parse_reply(BODY[: BODY.index('"text": "text number 3"') + 15])
    assert parsed.examples == EX[:3]
    assert parsed.broken == 1


def test_one_broken_object_among_good_ones():
    broken = json.dumps(EX[1]).replace('", "labels"', '" "labels"')
    reply = '{"examples": [' + ", ".join([json.dumps(EX[0]), broken, json.dumps(EX[2])]) + "]}"
    parsed = parse_reply(reply)
    assert parsed.examples == [EX[0], EX[2]]
    assert parsed.broken == 1


def test_nothing_usable_is_one_reject():
    assert parse_reply("I cannot help with that.") == ([], 1)
    assert parse_reply("") == ([], 1)


def test_more_examples_than_asked_are_all_returned():
    many = [{"text": f"t{i}", "labels": ["a"], "not_labels": ["b"]} for i in range(12)]
    assert len(parse_reply(json.dumps({"examples": many})).examples) == 12


def test_bundle_reply_with_its_pool_first_even_when_truncated():
    bundle = json.dumps({"label_pool": ["a", "b"], "examples": EX})
    assert parse_reply(bundle) == (EX, 0)
    cut = bundle[: bundle.index('"text number 3"') + 5]  # the pool and three examples survive, the fourth is torn
    assert parse_reply(cut) == (EX[:3], 1)
