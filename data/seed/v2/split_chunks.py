"""Split seed v2's exported requests into chunk files, one per writer: chunks/chunk-01.jsonl, ...

Each chunk is a run of consecutive request lines, byte for byte as exported, so a chunk is itself
a valid --requests file for `gliznet-data batch ingest`.

    python data/seed/v2/split_chunks.py            # 8 chunks (80 requests each for 640 requests)
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=8)
    args = parser.parse_args()
    lines = [line for line in (HERE / "requests.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    size = math.ceil(len(lines) / args.chunks)
    folder = HERE / "chunks"
    folder.mkdir(exist_ok=True)
    for old in folder.glob("chunk-*.jsonl"):
        old.unlink()
    for number in range(args.chunks):
        part = lines[number * size:(number + 1) * size]
        if part:
            (folder / f"chunk-{number + 1:02d}.jsonl").write_text("\n".join(part) + "\n", encoding="utf-8")
    print(f"{len(lines)} requests -> {args.chunks} chunks of up to {size} in {folder}")


if __name__ == "__main__":
    main()
