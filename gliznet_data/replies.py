"""Recovers examples from an LLM reply that should be ``{"examples": [...]}`` but may not be.

Replies come with prose around the JSON, inside markdown fences, truncated by a token limit, or
with one broken object among good ones. Every object that decodes is kept; each ``"text"`` key
that sits in no decoded object counts as one broken example. (An annotation reply has no texts: its
items are found by their ``"index"`` key instead.)
"""

from __future__ import annotations

import json
import re

import orjson
from typing import Any, NamedTuple

_DECODER = json.JSONDecoder()
_ITEM_KEYS: dict[str, re.Pattern[str]] = {}


class ParsedReply(NamedTuple):
    examples: list[Any]  # raw items; the record validators decide what they are worth
    broken: int  # examples seen in the reply that could not be decoded


def _key_pattern(key: str) -> re.Pattern[str]:
    if key not in _ITEM_KEYS:
        _ITEM_KEYS[key] = re.compile(rf'"{re.escape(key)}"\s*:')
    return _ITEM_KEYS[key]


def _items(obj: Any, key: str) -> list[Any] | None:
    if isinstance(obj, dict):
        if isinstance(obj.get("examples"), list):
            return obj["examples"]
        if key in obj:
            return [obj]
    if isinstance(obj, list):
        return obj
    return None


def parse_reply(content: str, key: str = "text") -> ParsedReply:
    """``key``: the field every item has (``text`` for examples, ``index`` for annotations)."""
    try:  # orjson: the well-formed reply is the common case, and parsing it is on the hot path
        items = _items(orjson.loads(content), key)
        if items is not None:
            return ParsedReply(items, 0)
    except ValueError:  # orjson.JSONDecodeError is one
        pass

    # Walk the text: the first decodable container holding examples wins; otherwise collect
    # every decodable object with the item key (the survivors of a truncated or broken array).
    found: list[Any] = []
    covered: list[tuple[int, int]] = []
    pos = 0
    while True:
        start = min((i for i in (content.find("{", pos), content.find("[", pos)) if i >= 0), default=-1)
        if start < 0:
            break
        try:
            obj, end = _DECODER.raw_decode(content, start)
        except ValueError:
            pos = start + 1
            continue
        items = _items(obj, key)
        if isinstance(obj, dict) and "examples" in obj and items is not None:
            return ParsedReply(items, 0)
        if isinstance(obj, dict) and key in obj:
            found.append(obj)
            covered.append((start, end))
            pos = end
        else:
            pos = start + 1
    broken = sum(
        1 for m in _key_pattern(key).finditer(content) if not any(a <= m.start() < b for a, b in covered)
    )
    if not found and not broken:
        broken = 1  # nothing usable at all: the whole reply is one reject
    return ParsedReply(found, broken)
