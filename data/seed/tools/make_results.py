"""Assemble a seed round's results.jsonl from its hand-written replies in data/seed/vN/replies/*.jsonl.

This only wraps each reply (one JSON line per request, see WRITERS.md) in the OpenAI batch output
envelope that `gliznet-data batch ingest` reads; it writes no text. It refuses while
check_replies.py finds problems in any replies file (``--force`` wraps them anyway, and ingest
then counts what fails).

    python data/seed/tools/make_results.py --round v3
    gliznet-data batch ingest data/seed/v3/results.jsonl --requests data/seed/v3/requests.jsonl \\
      --config pipelines/seed-v3.yaml --output data/seed/v3 --provider-name handwritten-llm \\
      --model-name "claude (Anthropic)"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from check_replies import parse_custom_id, read_replies, reply_content, run_checks  # noqa: E402
from rounds import Round, add_round_argument  # noqa: E402

MODEL = "claude (Anthropic), replies written one by one in a gliznet development session"


def envelope(index: int, custom_id: str, content: str, tag: str) -> dict:
    return {
        "id": f"{tag}_req_{index:04d}", "custom_id": custom_id, "error": None,
        "response": {"status_code": 200, "request_id": f"{tag}-{index:04d}", "body": {
            "id": f"{tag}-{index:04d}", "object": "chat.completion", "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            # Written in a chat session, not metered by an API: token counts are unknown.
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="assemble even when the checks find problems")
    parser.add_argument("--output", type=Path, help="default: the round's results.jsonl")
    add_round_argument(parser)
    args = parser.parse_args()
    round_ = Round(args.round_name)
    args.output = args.output or round_.folder / "results.jsonl"
    if run_checks(round_, None, verbose=False) and not args.force:
        sys.exit("problems found: fix the replies (or pass --force)")
    by_index: dict[int, dict] = {}
    for path in sorted(round_.replies.glob("*.jsonl")):
        for reply in read_replies(path)[0]:
            parsed = parse_custom_id(reply.data.get("custom_id"))
            if parsed:
                by_index.setdefault(parsed["index"], reply.data)
    tmp = args.output.with_name(f".{args.output.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for index in sorted(by_index):
            data = by_index[index]
            handle.write(json.dumps(envelope(index, data["custom_id"], reply_content(data), f"seed{round_.name[1:]}"), ensure_ascii=False) + "\n")
    tmp.replace(args.output)
    print(f"{len(by_index)} replies -> {args.output}")


if __name__ == "__main__":
    main()
