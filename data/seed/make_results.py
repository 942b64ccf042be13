"""Assemble the seed set's results.jsonl from the hand-written reply parts, and check them.

Each line of ``parts/*.jsonl`` is one reply, written for one request of ``requests.jsonl``:
``{"custom_id": "...", "examples": [{"text": ..., "labels": [...], "not_labels": [...]}, ...]}``.
This script only wraps those replies in the OpenAI batch output envelope; it writes no text.

    python data/seed/make_results.py --check data/seed/parts/part-03.jsonl   # validate one part
    python data/seed/make_results.py                                        # all parts -> results.jsonl

Checks use the project's own validators (gliznet_data.records) plus a near-duplicate test
(Jaccard similarity of word 3-grams above 0.5) across every part.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from pydantic import ValidationError  # noqa: E402

from gliznet_data.batch import _parse_custom_id, read_requests  # noqa: E402
from gliznet_data.generate import GenerateConfig, Plan  # noqa: E402
from gliznet_data.records import Record, record_id  # noqa: E402

MODEL = "claude (Anthropic), replies written one by one in a gliznet development session"


def shingles(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + 3]) for i in range(max(1, len(words) - 2))}


def load_parts(paths: list[Path]) -> list[tuple[Path, int, dict]]:
    rows = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append((path, number, json.loads(line)))
                except ValueError as exc:
                    rows.append((path, number, {"_error": f"invalid JSON: {exc}"}))
    return rows


def check(rows: list[tuple[Path, int, dict]], only: Path | None) -> int:
    requests = read_requests(HERE / "requests.jsonl")
    plan = Plan(GenerateConfig(seed=2026))
    problems = 0
    seen_ids: dict[str, str] = {}
    index: dict[tuple[str, ...], set[int]] = defaultdict(set)
    texts: list[tuple[str, set, str]] = []
    answered: set[str] = set()
    for path, number, row in rows:
        where = f"{path.name}:{number}"
        mine = only is None or path == only
        if "_error" in row or row.get("custom_id") not in requests:
            problems += mine
            if mine:
                print(f"{where}: {row.get('_error') or 'unknown custom_id ' + str(row.get('custom_id'))}")
            continue
        if row["custom_id"] in answered and mine:
            print(f"{where}: {row['custom_id']} answered twice")
            problems += 1
        answered.add(row["custom_id"])
        draw, _ = plan.request(_parse_custom_id(row["custom_id"])["index"])
        examples = row.get("examples", [])
        if len(examples) != 5 and mine:
            print(f"{where}: {len(examples)} examples, 5 asked")
        for j, example in enumerate(examples):
            try:
                record = Record.model_validate(example | plan.provenance(draw, "check", "check"))
            except (ValidationError, TypeError) as exc:
                if mine:
                    message = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
                    print(f"{where} example {j} ({draw.length_bucket}): {message}")
                problems += mine
                continue
            if record.id in seen_ids:
                if mine:
                    print(f"{where} example {j}: duplicate of {seen_ids[record.id]}")
                problems += mine
                continue
            seen_ids[record.id] = f"{where} example {j}"
            grams = shingles(record.text)
            candidates = set().union(*(index[g] for g in grams)) if grams else set()
            for c in candidates:
                other_text, other_grams, other_where = texts[c]
                jaccard = len(grams & other_grams) / len(grams | other_grams)
                if jaccard > 0.5 and mine:
                    print(f"{where} example {j}: near-duplicate ({jaccard:.2f}) of {other_where}")
                    problems += 1
            for g in grams:
                index[g].add(len(texts))
            texts.append((record.text, grams, f"{where} example {j}"))
    print(f"{problems} problem(s); {len(seen_ids)} valid unique texts in {len(answered)} replies checked")
    return problems


def assemble(rows: list[tuple[Path, int, dict]]) -> None:
    by_index = {}
    for _, _, row in rows:
        parsed = _parse_custom_id(row.get("custom_id"))
        if parsed:
            by_index[parsed["index"]] = row
    out = HERE / "results.jsonl"
    with out.open("w", encoding="utf-8") as handle:
        for i in sorted(by_index):
            row = by_index[i]
            content = json.dumps({"examples": row["examples"]}, ensure_ascii=False)
            handle.write(json.dumps({
                "id": f"seed_req_{i:04d}", "custom_id": row["custom_id"], "error": None,
                "response": {"status_code": 200, "request_id": f"seed-{i:04d}", "body": {
                    "id": f"seed-{i:04d}", "object": "chat.completion", "model": MODEL,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                 "finish_reason": "stop"}],
                    # Written in a chat session, not metered by an API: token counts are unknown.
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}},
            }, ensure_ascii=False) + "\n")
    print(f"{len(by_index)} replies -> {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", type=Path, help="report problems of this part only (others give context)")
    args = parser.parse_args()
    parts = sorted((HERE / "parts").glob("*.jsonl"))
    rows = load_parts(parts)
    if args.check:
        sys.exit(1 if check(rows, args.check.resolve()) else 0)
    check(rows, None)
    assemble(rows)


if __name__ == "__main__":
    main()
