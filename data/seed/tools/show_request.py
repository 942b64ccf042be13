"""Print the prompts of a chunk's requests, the way a writer reads them.

    python data/seed/tools/show_request.py chunk-03 --system   # the system prompt (the same for every request)
    python data/seed/tools/show_request.py chunk-03 0 1 2      # requests 0, 1 and 2 of the chunk (0-based line numbers)
    python data/seed/tools/show_request.py chunk-03            # every request of the chunk (of the latest round)
    python data/seed/tools/show_request.py chunk-03 --round v2
"""

from __future__ import annotations

import argparse
import json

from rounds import Round, add_round_argument


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chunk", help="chunk name, e.g. chunk-03")
    parser.add_argument("lines", nargs="*", type=int, help="0-based request numbers within the chunk")
    parser.add_argument("--system", action="store_true", help="print the system prompt instead")
    add_round_argument(parser)
    args = parser.parse_args()
    path = Round(args.round_name).chunks / f"{args.chunk.removesuffix('.jsonl')}.jsonl"
    if not path.exists():
        parser.error(f"round {args.round_name} has no {path.name} (see {path.parent})")
    requests = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if args.system:
        print(requests[0]["body"]["messages"][0]["content"])
        return
    for number in args.lines or range(len(requests)):
        request = requests[number]
        print(f"=== {path.stem} line {number + 1} · custom_id {request['custom_id']}")
        print(request["body"]["messages"][-1]["content"], end="\n\n")


if __name__ == "__main__":
    main()
