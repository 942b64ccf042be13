"""Training with accelerate: the same loop on CPU, one GPU, or several (``accelerate launch``).

Determinism is built in so that ``resume`` reproduces an uninterrupted run: the example order of
an epoch and each example's label set are pure functions of (seed, epoch, index), and a
checkpoint stores the model, optimizer, scheduler and RNG states plus where in the epoch it was.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .backbones import default_backbone
from .data import (Example, LabelSampler, LabelSampling, epoch_order, example_length, length_grouped_order,
                   load_splits, parse_negatives, write_split_record)
from .benchmarks import multilabel_set
from .evaluation import evaluate
from .losses import preservation_loss
from .run_lock import RunLock
from .modeling import GliZNetForSequenceClassification
from .tokenizer import GliZNETTokenizer

STATE_FILE = "trainer_state.json"
RUN_CONFIG_FILE = "train_config.json"
_KEPT_UNTIL_EXIT: list[Any] = []  # multi-process runs' DDP models, whose destructor can hang (see the end of _train)
# Settings a resumed run may change: they do not alter what was already trained or how it was scored.
RESUMABLE_CHANGES = {"epochs", "max_steps", "patience", "log_every", "keep_checkpoints", "resume", "push_to_hub",
                     "output_dir"}


class TrainConfig(BaseModel):
    """Everything ``gliznet-model train`` can be told (flags or the config's ``train:`` section)."""

    model_config = ConfigDict(extra="forbid")

    data: str
    backbone: str | None = Field(None, description="Hub id or folder; default: the offline all-MiniLM-L6-v2")
    output_dir: Path = Path("runs/gliznet")
    epochs: int = Field(3, ge=1)
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; overrides epochs")
    batch_size: int = Field(16, ge=1)
    group_by_length: bool = Field(True, description="batches of similar-length rows (each run of 50 batches sorted "
                                                    "by length, batches shuffled): less padding, same examples")
    lr: float = Field(3e-5, gt=0, description="backbone learning rate")
    head_lr: float = Field(1e-3, gt=0, description="projections and scorer")
    gate_lr: float = Field(0.3, gt=0, description="the gated layout's label-to-text bias: one scalar in logit "
                                                   "units that starts at -8, so weight-sized steps never open it")
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    grad_accum: int = Field(1, ge=1)
    max_grad_norm: float = Field(1.0, gt=0)
    max_length: int = Field(256, ge=16)
    inference_max_length: int | None = Field(
        None, ge=16, description="the saved tokenizer's sequence length, which validation, evaluate and predict read; "
                                 "default max_length (train on shorter rows for speed, read more once trained)")
    min_text_tokens: int | None = Field(None, ge=1, description="text kept when labels crowd it; default max_length/2")
    max_labels: int = Field(16, ge=1, description="labels per example; positives are always kept")
    negatives: str = Field("hard", description="none, or a '+'-joined mix of hard, random and in_batch")
    random_negatives: int = Field(2, ge=0, description="random negatives added when mixed with hard ones")
    in_batch_negatives: int = Field(2, ge=0, description="other batch rows' positives added per row (in_batch)")
    needle_rate: float = Field(0.0, ge=0, le=1, description="share of rows shown as one positive among negatives")
    similarity: Literal["cosine", "dot", "bilinear"] = "cosine"
    pooling: Literal["mean", "segment_mean", "first", "lab", "attention"] = "segment_mean"
    text_pooling: Literal["cls", "mean", "label_attention"] | None = Field(
        None, description="text vector; default: the backbone's sentence-transformers pooling, else mean")
    attention_layout: Literal["full", "text_blind", "separate", "gated"] = "gated"
    logit_scale_init: float | None = Field(None, gt=0, description="starting cosine scale; default: the config's")
    tie_projections: bool = False
    segment_separators: bool = Field(True, description="close the text and every label with a SEP")
    projection_dim: int | None = Field(None, ge=1)
    losses: dict[str, float] | None = Field(None, description="loss name -> weight; default: the config's")
    merge_alpha: float = Field(0.5, gt=0, le=1, description="the saved model is merge_alpha * trained + "
                                                           "(1 - merge_alpha) * untrained weights (WiSE-FT); 1: off")
    preserve: float = Field(1.0, ge=0, description="weight of 1 - cos(vector, the untrained model's vector) on "
                                                   "text and label vectors: keeps the backbone's zero-shot geometry")
    seed: int = 42
    precision: Literal["no", "bf16", "fp16"] = "no"
    eval_every: int | None = Field(None, ge=1, description="optimizer steps between evaluations; default: each epoch")
    patience: int = Field(3, ge=1, description="evaluations without improvement before stopping")
    metric: str = Field("roc_auc", description="validation metric to maximize")
    validation_fraction: float = Field(0.1, gt=0, lt=1)
    max_eval_examples: int | None = Field(1000, ge=1)
    log_every: int = Field(10, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    resume: bool = False
    push_to_hub: str | None = None


    @field_validator("negatives")
    @classmethod
    def _known_negatives(cls, value: str) -> str:
        parse_negatives(value)
        return value


class StepInfo(BaseModel):
    step: int
    total: int
    epoch: int
    loss: float
    lr: float
    examples_per_second: float


def model_settings(config: TrainConfig) -> dict[str, Any]:
    """The GliZNetConfig fields a TrainConfig sets (None: the config's or the backbone's default)."""
    settings: dict[str, Any] = {"similarity": config.similarity, "pooling": config.pooling,
                                "projection_dim": config.projection_dim, "text_pooling": config.text_pooling,
                                "attention_layout": config.attention_layout, "tie_projections": config.tie_projections}
    if config.losses is not None:
        settings["losses"] = config.losses
    if config.logit_scale_init is not None:
        settings["logit_scale_init"] = config.logit_scale_init
    return settings


def _param_groups(model: GliZNetForSequenceClassification, config: TrainConfig) -> list[dict[str, Any]]:
    """Backbone and head get their own rates; biases and norms get no weight decay."""
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    gate: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name == "layout.gate":
            gate.append(param)
            continue
        head = not name.startswith("backbone.")
        decay = param.ndim > 1 and "norm" not in name.lower()
        groups.setdefault((head, decay), []).append(param)
    result = [{"params": params, "lr": config.head_lr if head else config.lr,
               "weight_decay": config.weight_decay if decay else 0.0}
              for (head, decay), params in groups.items()]
    if gate:
        result.append({"params": gate, "lr": config.gate_lr, "weight_decay": 0.0})
    return result


class _EpochData(torch.utils.data.Dataset):
    def __init__(self, examples: list[Example], sampler: LabelSampler, order: Any, epoch: int):
        self.examples, self.sampler, self.order, self.epoch = examples, sampler, order, epoch

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> tuple[str, list[str], list[float], tuple[str, ...]]:
        index = int(self.order[i])
        labels, targets = self.sampler.sample(index, self.epoch)
        example = self.examples[index]
        return example.text, labels, targets, example.labels + example.not_labels


class _Collator:
    """Tokenizes a batch for training. Training rows cannot be chunked, so an example whose labels
    would squeeze the text below ``min_text_tokens`` loses hard negatives (never positives) until they fit."""

    def __init__(self, tokenizer: GliZNETTokenizer, in_batch: int = 0, max_labels: int = 16):
        self.tokenizer = tokenizer
        self.budget = tokenizer.max_length - 2 - tokenizer.min_text_tokens
        self.cost: dict[str, int] = {}
        self.in_batch, self.max_labels = in_batch, max_labels

    def _add_in_batch(self, items: list[tuple[str, list[str], list[float], tuple[str, ...]]]) -> list[tuple]:
        """Each row also gets up to ``in_batch`` positives of the next rows as negatives (none of its own labels or
        hard negatives), deterministically, so a resumed run sees the same batches."""
        positives = [[label for label, t in zip(labels, targets) if t > 0.5] for _, labels, targets, _ in items]
        out = []
        for i, (text, labels, targets, own) in enumerate(items):
            labels, targets = list(labels), list(targets)
            taken, added = set(labels) | set(own), 0
            for step in range(1, len(items)):
                if added == self.in_batch or len(labels) >= self.max_labels:
                    break
                label = positives[(i + step) % len(items)][0] if positives[(i + step) % len(items)] else None
                if label is not None and label not in taken:
                    labels.append(label)
                    targets.append(0.0)
                    taken.add(label)
                    added += 1
            out.append((text, labels, targets))
        return out

    def _fit(self, labels: list[str], targets: list[float]) -> tuple[list[str], list[float]]:
        missing = [label for label in labels if label not in self.cost]
        if missing:
            ids = self.tokenizer.tokenizer(missing, add_special_tokens=False)["input_ids"]
            extra = 1 + int(self.tokenizer.segment_separators)  # [LAB], and its SEP when segments are closed
            self.cost.update((label, len(tokens) + extra) for label, tokens in zip(missing, ids))
        labels, targets = list(labels), list(targets)
        while sum(self.cost[label] for label in labels) > self.budget and 0.0 in targets:
            drop = len(targets) - 1 - targets[::-1].index(0.0)
            del labels[drop], targets[drop]
        return labels, targets

    def __call__(self, items: list[tuple[str, list[str], list[float], tuple[str, ...]]]) -> Any:
        rows = self._add_in_batch(items) if self.in_batch else [item[:3] for item in items]
        fitted = [self._fit(labels, targets) for _, labels, targets in rows]
        return self.tokenizer([row[0] for row in rows], [labels for labels, _ in fitted],
                              targets=[targets for _, targets in fitted])


def validate(model: GliZNetForSequenceClassification, tokenizer: GliZNETTokenizer, examples: list[Example],
             batch_size: int) -> dict[str, float]:
    """Metrics on held-out examples with all their positives and hard negatives as candidates."""
    from .systems import gliznet_system

    data = multilabel_set("validation", [e.text for e in examples], [e.labels for e in examples],
                          [e.not_labels for e in examples])
    result = evaluate(gliznet_system(model, tokenizer, batch_size=batch_size), data)
    # Throughput is left out: it is a property of the machine, and resumed runs must log what uninterrupted ones do.
    return {k: v for k, v in result.items() if k not in ("system", "dataset", "texts_per_second")}


def merged_with(model: GliZNetForSequenceClassification, reference: GliZNetForSequenceClassification,
                alpha: float) -> GliZNetForSequenceClassification:
    """alpha * trained + (1 - alpha) * untrained, weight by weight (WiSE-FT, Wortsman et al. 2022): a fine-tuned
    model averaged with its zero-shot start keeps most of what training taught and more of what the backbone knew,
    since both lie in one low-loss basin. Returns a new model; the one being trained is left as it is."""
    merged = copy.deepcopy(model)
    start = reference.state_dict()
    with torch.no_grad():
        for name, tensor in merged.state_dict().items():
            # The gate is a mask bias in logit units: averaged with its closed start it would shut again.
            if tensor.is_floating_point() and name != "layout.gate":
                tensor.mul_(alpha).add_(start[name].to(tensor.device, tensor.dtype), alpha=1 - alpha)
    return merged.eval()


def _check_hub_access(repo_id: str) -> None:
    """Before hours of training: is there a token, and does the Hub accept it? (HF_TOKEN or `hf auth login`)."""
    from huggingface_hub import HfApi, get_token

    if not get_token():
        raise ValueError(f"--push-to-hub {repo_id} needs a Hub token: set HF_TOKEN or run `hf auth login`")
    try:
        HfApi().whoami()
    except Exception as exc:  # bad token, unreachable Hub: many exception types
        raise ValueError(f"--push-to-hub {repo_id}: the Hub refused the token or cannot be reached "
                         f"({type(exc).__name__})") from None


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _check_resumable(output: Path, config: TrainConfig) -> None:
    """Refuse to resume with settings that differ from the interrupted run's (other data, batch size, length,
    model choices): the result would be neither run, and the best model would be picked across both."""
    path = output / RUN_CONFIG_FILE
    try:
        before = json.loads(path.read_text())
    except (OSError, ValueError):
        raise ValueError(f"{path} is missing or unreadable, so the interrupted run's settings are unknown; "
                         "train without --resume") from None
    now = config.model_dump(mode="json")
    changed = sorted(k for k in set(before) | set(now) if k not in RESUMABLE_CHANGES and before.get(k) != now.get(k))
    if changed:
        shown = ", ".join(f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in changed[:4])
        raise ValueError(f"--resume with changed settings ({shown}); resume with the same settings, or train "
                         "into a new --output-dir")


def _save_model_atomically(model: GliZNetForSequenceClassification, tokenizer: GliZNETTokenizer, output: Path,
                           card: str) -> None:
    """Write the model folder's files into a temporary folder first, then move each one over the old: a full disk
    or a kill leaves the previous best model whole, never a config without weights."""
    staging = output / ".saving"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    (staging / "README.md").write_text(card)
    files = sorted(p for p in staging.iterdir() if p.is_file())
    for file in files:
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())
    # Weights last: until they land, the folder still holds a complete older model (same architecture).
    for file in sorted(files, key=lambda p: p.suffix == ".safetensors"):
        os.replace(file, output / file.name)
    shutil.rmtree(staging, ignore_errors=True)


def _latest_checkpoint(output_dir: Path) -> Path | None:
    checkpoints = sorted((output_dir / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    return next((p for p in reversed(checkpoints) if (p / STATE_FILE).exists()), None)


def _model_card(config: TrainConfig, backbone: str, splits: dict[str, list[Example]], best: dict[str, Any]) -> str:
    from huggingface_hub import ModelCardData

    data = ModelCardData(library_name="transformers", pipeline_tag="zero-shot-classification", license="apache-2.0",
                         language="en", tags=["gliznet", "zero-shot-classification", "text-classification"],
                         base_model=backbone if "/" in backbone and not Path(backbone).exists() else None)
    hyper = config.model_dump(mode="json", exclude={"data", "output_dir", "resume", "push_to_hub", "backbone"})
    metrics = "\n".join(f"| {k} | {v:.4f} |" for k, v in best.get("metrics", {}).items() if isinstance(v, float))
    return f"""---
{data.to_yaml()}
---

# GliZNet zero-shot classifier

GliZNet reads `[CLS] text [LAB] label1 [LAB] label2 ... [SEP]` in one encoder pass and scores every candidate label
against the text, so its cost barely grows with the number of labels.

```python
from gliznet_model import GliZNetForSequenceClassification

model, tokenizer = GliZNetForSequenceClassification.from_pretrained_with_tokenizer("PATH_OR_REPO")
model.predict_example("The striker scored twice in the derby.", ["sports", "politics", "finance"], tokenizer)
```

## Training

- Backbone: `{backbone}`
- Data: `{config.data}` ({len(splits['train']):,} training and {len(splits['validation']):,} validation examples;
  columns `text`, `labels`, `not_labels`); negatives: `{config.negatives}`
- Best checkpoint: step {best.get('step')} of the run, chosen on validation `{config.metric}`
- Hyperparameters: `{json.dumps(hyper)}`

## Validation metrics (best checkpoint)

| metric | value |
|---|---:|
{metrics}

## Intended use and limitations

Zero-shot classification of English texts against labels given at inference time, multi-label with sigmoid scores or
single-label with softmax/argmax. Scores are not calibrated across label sets; pick a threshold on data of your own.
The model inherits the biases of its backbone and of its (possibly synthetic) training data, and was validated on
held-out examples of that data, not on your domain.
"""


def train(config: TrainConfig, on_step: Callable[[StepInfo], None] | None = None,
          on_eval: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train, evaluate, early-stop and save; returns the run summary (also written as train_summary.json).

    The run folder is locked for the run (one training per folder; see run_lock.py); under torchrun or accelerate
    launch the first process holds the lock for all of them."""
    if int(os.environ.get("RANK", "0")) != 0:
        return _train(config, on_step, on_eval)
    try:
        lock = RunLock(config.output_dir, "gliznet-model train").__enter__()
    except OSError as exc:
        raise ValueError(f"cannot write to run folder {config.output_dir}: {exc.strerror}") from None
    try:
        return _train(config, on_step, on_eval)
    finally:
        lock.__exit__()


def _train(config: TrainConfig, on_step: Callable[[StepInfo], None] | None,
           on_eval: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, set_seed
    from transformers import get_linear_schedule_with_warmup

    if config.push_to_hub:
        _check_hub_access(config.push_to_hub)
    # The backbone's own pooler (and a head a loss leaves unused) gets no gradient; DDP must be told.
    accelerator = Accelerator(gradient_accumulation_steps=config.grad_accum, mixed_precision=config.precision,
                              kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    set_seed(config.seed)
    output = config.output_dir
    splits = load_splits(config.data, config.validation_fraction, config.seed)
    train_set, val_set = splits["train"], splits["validation"][: config.max_eval_examples]
    backbone = config.backbone or default_backbone()

    tokenizer = GliZNETTokenizer.from_pretrained(
        backbone, max_length=config.max_length, min_text_tokens=config.min_text_tokens or config.max_length // 2,
        segment_separators=config.segment_separators)
    model = GliZNetForSequenceClassification.from_backbone(backbone, tokenizer=tokenizer, **model_settings(config))
    # What is validated is what is saved: the reading length users get, not the (shorter) training one.
    served = tokenizer
    if config.inference_max_length is not None and config.inference_max_length != config.max_length:
        positions = getattr(model.backbone.config, "max_position_embeddings", None)
        if positions and config.inference_max_length > positions:  # refused now, not when the trained model loads
            raise ValueError(f"inference_max_length {config.inference_max_length} exceeds the backbone's "
                             f"{positions} positions")
        served = copy.copy(tokenizer)
        served.max_length = config.inference_max_length
    sampler = LabelSampler(train_set, LabelSampling(config.negatives, config.max_labels,
                                                    random_negatives=config.random_negatives,
                                                    needle_rate=config.needle_rate), config.seed)
    # The untrained model, frozen: what the preservation term keeps the vectors near and what the saved model is
    # averaged with.
    reference = None
    if config.preserve > 0 or config.merge_alpha < 1:
        reference = copy.deepcopy(model).eval().requires_grad_(False).to(accelerator.device)

    batches_per_epoch = math.ceil(len(train_set) / (config.batch_size * accelerator.num_processes))
    steps_per_epoch = math.ceil(batches_per_epoch / config.grad_accum)
    total_steps = config.max_steps or steps_per_epoch * config.epochs
    epochs = math.ceil(total_steps / steps_per_epoch)
    optimizer = torch.optim.AdamW(_param_groups(model, config))
    # accelerate steps a prepared scheduler once per process for every optimizer step (as the HF Trainer expects),
    # so the schedule is laid out in process-steps: warm-up and decay then end when training does on any count.
    processes = accelerator.num_processes
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps) * processes,
                                                total_steps * processes)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    state: dict[str, Any] = {"step": 0, "epoch": 0, "batch": 0, "best": None, "bad_evals": 0, "history": [],
                             "last_eval_step": None}
    checkpoint = _latest_checkpoint(output) if config.resume else None
    if config.resume and checkpoint is None:
        accelerator.print(f"no checkpoint under {output / 'checkpoints'}: starting from scratch")
    if checkpoint is not None:
        _check_resumable(output, config)
        try:
            accelerator.load_state(str(checkpoint))
            state = json.loads((checkpoint / STATE_FILE).read_text())
        except (OSError, RuntimeError, ValueError, EOFError, KeyError) as exc:
            raise ValueError(f"checkpoint {checkpoint} cannot be loaded ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:120] if str(exc) else 'truncated or corrupt'}); delete it "
                             "to resume from the one before, or train without --resume") from None
        state.setdefault("last_eval_step", state["history"][-1]["step"] if state["history"] else None)
        if accelerator.is_main_process:  # drop what was logged after the checkpoint: it will be logged again
            lines = (output / "metrics.jsonl").read_text().splitlines()
            kept = [line for line in lines if json.loads(line)["step"] <= state["step"]]
            (output / "metrics.jsonl").write_text("".join(line + "\n" for line in kept))
    elif accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        (output / "metrics.jsonl").write_text("")
    if accelerator.is_main_process:
        write_split_record(output, config.data, splits, config.validation_fraction, config.seed)
        _write_atomic(output / RUN_CONFIG_FILE, json.dumps(config.model_dump(mode="json"), indent=2) + "\n")

    def log(entry: dict[str, Any]) -> None:
        if accelerator.is_main_process:
            with (output / "metrics.jsonl").open("a") as handle:
                handle.write(json.dumps(entry) + "\n")

    def save_checkpoint() -> None:
        directory = output / "checkpoints" / f"step-{state['step']:07d}"
        accelerator.save_state(str(directory))
        if accelerator.is_main_process:
            (directory / STATE_FILE).write_text(json.dumps(state, indent=2))
            old = sorted((output / "checkpoints").glob("step-*"))[: -config.keep_checkpoints]
            for path in old:
                shutil.rmtree(path, ignore_errors=True)

    def evaluate_and_maybe_stop() -> bool:
        unwrapped = accelerator.unwrap_model(model)
        state["last_eval_step"] = state["step"]  # on every process: all of them take the same branches after this
        if accelerator.is_main_process:
            if config.merge_alpha < 1:  # what is validated is what is saved: the merged model
                unwrapped = merged_with(unwrapped, reference, config.merge_alpha)
            metrics = validate(unwrapped, served, val_set, config.batch_size) if val_set else {}
            value = metrics.get(config.metric)
            if value is None and val_set:
                raise ValueError(f"unknown validation metric {config.metric!r} (have: {', '.join(metrics)})")
            entry = {"step": state["step"], "epoch": state["epoch"], "validation": metrics}
            state["history"].append(entry)
            log(entry)
            improved = value is not None and (state["best"] is None or value > state["best"]["value"])
            if improved or not val_set:
                state["best"] = {"step": state["step"], "value": value, "metrics": metrics}
                state["bad_evals"] = 0
                _save_model_atomically(unwrapped, served, output,
                                       _model_card(config, backbone, splits, state["best"]))
            else:
                state["bad_evals"] += 1
            if on_eval:
                on_eval(entry)
            if state["bad_evals"] >= config.patience:
                accelerator.set_trigger()
        accelerator.wait_for_everyone()
        save_checkpoint()
        return accelerator.check_trigger()

    in_batch = config.in_batch_negatives if "in_batch" in parse_negatives(config.negatives) else 0
    collate = _Collator(tokenizer, in_batch, config.max_labels)
    lengths = np.array([example_length(example) for example in train_set]) if config.group_by_length else None

    def _loop() -> bool:
        """The epochs; True when early stopping ended them."""
        stopped = False
        running, batches, seen, tick = 0.0, 0, 0, time.perf_counter()
        while state["epoch"] < epochs and state["step"] < total_steps and not stopped:
            order = epoch_order(len(train_set), state["epoch"], config.seed)
            if config.group_by_length:
                order = length_grouped_order(order, lengths, config.batch_size, config.seed, state["epoch"])
            # Its own generator: starting an iterator draws a seed, which must not come from the global RNG
            # that dropout uses, or a resumed run would diverge from an uninterrupted one.
            generator = torch.Generator().manual_seed(config.seed + state["epoch"])
            loader = accelerator.prepare(torch.utils.data.DataLoader(
                _EpochData(train_set, sampler, order, state["epoch"]), batch_size=config.batch_size, collate_fn=collate,
                generator=generator))
            if state["batch"]:
                loader = accelerator.skip_first_batches(loader, state["batch"])
            for batch in loader:
                with accelerator.accumulate(model):
                    out = model(**batch)
                    loss = out.loss
                    if config.preserve > 0:
                        with torch.no_grad():
                            ref = reference(**{k: v for k, v in batch.items() if k != "labels"})
                        loss = loss + config.preserve * preservation_loss(
                            out.text_embeddings, out.label_embeddings, out.logits_mask, ref.text_embeddings,
                            ref.label_embeddings)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                state["batch"] += 1
                running += loss.detach().float().item()
                batches += 1
                seen += len(batch["input_ids"])
                if not accelerator.sync_gradients:
                    continue
                state["step"] += 1
                if state["step"] % config.log_every == 0 or state["step"] == total_steps:
                    elapsed = time.perf_counter() - tick
                    info = StepInfo(step=state["step"], total=total_steps, epoch=state["epoch"],
                                    loss=running / batches, lr=scheduler.get_last_lr()[0],
                                    examples_per_second=seen * accelerator.num_processes / elapsed if elapsed else 0.0)
                    log({"step": info.step, "epoch": info.epoch, "train_loss": info.loss, "lr": info.lr,
                         "examples_per_second": info.examples_per_second})
                    if on_step:
                        on_step(info)
                    running, batches, seen, tick = 0.0, 0, 0, time.perf_counter()
                if config.eval_every and state["step"] % config.eval_every == 0 and evaluate_and_maybe_stop():
                    stopped = True
                    break
                if state["step"] >= total_steps:
                    break
            else:
                state["epoch"], state["batch"] = state["epoch"] + 1, 0
                if not config.eval_every and evaluate_and_maybe_stop():
                    stopped = True
        return stopped

    model.train()
    try:
        stopped = _loop()
    except KeyboardInterrupt:
        # What was done is kept: the last completed batch is checkpointed, so --resume goes on from there.
        save_checkpoint()
        raise
    if state["last_eval_step"] != state["step"]:
        evaluate_and_maybe_stop()

    summary = {"output_dir": str(output), "steps": state["step"], "epochs_completed": state["epoch"],
               "early_stopped": stopped, "best": state["best"], "backbone": backbone,
               "train_examples": len(train_set), "validation_examples": len(val_set),
               "processes": accelerator.num_processes, "main_process": accelerator.is_main_process}
    if accelerator.is_main_process:
        (output / "train_summary.json").write_text(json.dumps(summary, indent=2))
        if config.push_to_hub:
            best = GliZNetForSequenceClassification.from_pretrained(output)
            best.push_to_hub(config.push_to_hub)
            served.push_to_hub(config.push_to_hub)
            summary["pushed_to"] = config.push_to_hub
    if accelerator.num_processes > 1:
        # Freeing the DDP wrapper's reducer destroys its gloo group, and that destructor has hung joining a gloo
        # thread (seen with both processes alive, and after the peer exited): torchrun then never returns. Keep
        # it alive; the CLI ends a multi-process run with os._exit once both processes are here.
        _KEPT_UNTIL_EXIT.append(model)
        accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary
