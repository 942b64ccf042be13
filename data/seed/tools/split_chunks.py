"""Split a round's exported requests into chunk files, one per writer: data/seed/vN/chunks/chunk-01.jsonl, ...

Each chunk is a run of consecutive request lines, byte for byte as exported, so a chunk is itself
a valid --requests file for `gliznet-data batch ingest`. The chunks on disk were made by:

    python data/seed/tools/split_chunks.py --round v2 --stop 640 --chunks 8                    # v2 chunk-01 ... 08, 80 each
    python data/seed/tools/split_chunks.py --round v2 --start 640 --chunks 3 --first-number 9  # v2's top-up: 09 ... 11
    python data/seed/tools/split_chunks.py --round v3 --chunks 5                               # v3 chunk-01 ... 05, 20 each
    python data/seed/tools/split_chunks.py --round v4 --chunks 5                               # v4 chunk-01 ... 05, 20 each
"""

from __future__ import annotations

import argparse
import math

from rounds import Round, add_round_argument


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--start", type=int, default=0, help="first request line (0-based) to split")
    parser.add_argument("--stop", type=int, default=None, help="line after the last one to split")
    parser.add_argument("--first-number", type=int, default=1, help="number of the first chunk written")
    add_round_argument(parser)
    args = parser.parse_args()
    here = Round(args.round_name)
    lines = [line for line in here.requests.read_text(encoding="utf-8").splitlines() if line.strip()]
    lines = lines[args.start:args.stop]
    size = math.ceil(len(lines) / args.chunks)
    folder = here.chunks
    folder.mkdir(exist_ok=True)
    for number in range(args.chunks):
        part = lines[number * size:(number + 1) * size]
        if part:
            name = f"chunk-{args.first_number + number:02d}.jsonl"
            (folder / name).write_text("\n".join(part) + "\n", encoding="utf-8")
    print(f"{len(lines)} requests -> {args.chunks} chunks of up to {size} in {folder}")


if __name__ == "__main__":
    main()
