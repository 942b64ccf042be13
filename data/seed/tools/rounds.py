"""The hand-written rounds of the seed set: where each round's requests, chunks and replies live.

Round ``vN`` is the folder ``data/seed/vN`` (requests.jsonl, chunks/, replies/, its shards) made by
``pipelines/seed-vN.yaml``. v1 is the seed set's first 1,800 records (``data/seed/shard-*.parquet``), written
before this tooling; later rounds are checked against it and against each other for near-duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SEED = Path(__file__).resolve().parent.parent
ROOT = SEED.parent.parent
ROUNDS = ("v2", "v3", "v4")


@dataclass(frozen=True)
class Round:
    name: str

    @property
    def folder(self) -> Path:
        return SEED / self.name

    @property
    def config(self) -> Path:
        return ROOT / "pipelines" / f"seed-{self.name}.yaml"

    @property
    def requests(self) -> Path:
        return self.folder / "requests.jsonl"

    @property
    def chunks(self) -> Path:
        return self.folder / "chunks"

    @property
    def replies(self) -> Path:
        return self.folder / "replies"


def add_round_argument(parser) -> None:
    parser.add_argument("--round", dest="round_name", choices=ROUNDS, default=ROUNDS[-1],
                        help=f"which hand-written round (default: {ROUNDS[-1]}, the latest)")
