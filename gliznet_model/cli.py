"""gliznet-model: train GliZNet on zero-shot data and evaluate it beside baselines."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import typer
from rich.console import Console
from rich.text import Text
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .data import DataError
from .benchmarks import BENCHMARK_NAMES, BenchmarkError

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
out = Console()
err = Console(stderr=True, highlight=False)
T = TypeVar("T")


def _quiet_libraries() -> None:
    """Our own progress bars and tables are the output; the libraries' loading bars and notes are noise here."""
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    disable_progress_bars()


def _guard(action: Callable[[], T]) -> T:
    """User errors (bad data, a missing model, an unknown benchmark or setting) become one line and exit 2."""
    from pydantic import ValidationError

    _quiet_libraries()
    try:
        return action()
    except ValidationError as exc:
        first = exc.errors()[0]
        err.print(f"[bold red]error:[/] invalid setting {'.'.join(map(str, first['loc']))}: {first['msg']}",
                  soft_wrap=True)
    except (DataError, BenchmarkError, ValueError, OSError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        err.print(Text.assemble(("error: ", "bold red"), message), soft_wrap=True)
    except KeyboardInterrupt:
        err.print("interrupted: rerun with --resume to continue from the last checkpoint")
        raise typer.Exit(130) from None
    raise typer.Exit(2)


def _check_output_file(path: Optional[Path], flag: str) -> None:
    """Before any long work: an output file must be a file we can write, not a folder or a read-only place."""
    if path is None:
        return
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{flag} {path}: cannot create {parent} ({exc.strerror})") from None
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"{flag} {path} is not writable")


def _write_json(path: Optional[Path], value: Any) -> None:
    """Write results atomically (temporary file, then rename), so a failure never leaves half a file."""
    if path is None:
        return
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(json.dumps(value, indent=2) + "\n")
        os.replace(temporary, path)
    except OSError as exc:
        err.print(Text.assemble(("error: ", "bold red"), f"cannot write {path}: {exc.strerror}"), soft_wrap=True)
        raise typer.Exit(2) from None


def _losses(spec: str | None) -> dict[str, float] | None:
    """'supcon=1,repulsion=0.1,decoupled_bce=1' or 'bce' -> {name: weight}."""
    if not spec:
        return None
    losses = {}
    for part in spec.split(","):
        name, _, weight = part.strip().partition("=")
        try:
            losses[name.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"--loss: {part!r} is not NAME or NAME=WEIGHT") from None
    return losses


def _read_section(path: Optional[Path], section: str) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ValueError(f"cannot read config {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    body = data.get(section, data) if isinstance(data, dict) else None
    if not isinstance(body, dict):
        raise ValueError(f"config {path}: section {section!r} must be a mapping")
    return body


@app.command()
def train(
    data: str = typer.Argument(..., help="Shard folder (searched recursively), a Parquet/JSONL file, or a Hub dataset id"),
    backbone: Optional[str] = typer.Option(None, help="Encoder Hub id or folder \\[default: offline all-MiniLM-L6-v2]"),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="Run folder \\[default: runs/gliznet]"),
    epochs: Optional[int] = typer.Option(None, help="Epochs \\[default: 3]"),
    max_steps: Optional[int] = typer.Option(None, help="Optimizer steps; overrides --epochs"),
    batch_size: Optional[int] = typer.Option(None, help="Examples per batch and process \\[default: 16]"),
    lr: Optional[float] = typer.Option(None, help="Backbone learning rate \\[default: 3e-5]"),
    head_lr: Optional[float] = typer.Option(None, help="Projection and scorer learning rate \\[default: 1e-3]"),
    warmup_ratio: Optional[float] = typer.Option(None, help="Share of steps with linear warm-up \\[default: 0.1]"),
    weight_decay: Optional[float] = typer.Option(None, help="AdamW weight decay \\[default: 0.01]"),
    grad_accum: Optional[int] = typer.Option(None, help="Batches per optimizer step \\[default: 1]"),
    max_length: Optional[int] = typer.Option(None, help="Joint sequence length in tokens \\[default: 256]"),
    max_labels: Optional[int] = typer.Option(None, help="Labels per example; positives always kept \\[default: 16]"),
    negatives: Optional[str] = typer.Option(None, help="hard (the record's not_labels), random (other records' "
                                                       "labels) or none \\[default: hard]"),
    similarity: Optional[str] = typer.Option(None, help="cosine, dot or bilinear \\[default: cosine]"),
    pooling: Optional[str] = typer.Option(None, help="Label vector: segment_mean, mean, first, lab or attention \\[default: segment_mean]"),
    loss: Optional[str] = typer.Option(None, "--loss", help="Losses and weights, e.g. 'bce', 'hybrid' or "
                                                            "'supcon=1,repulsion=0.1,decoupled_bce=1' (the default)"),
    seed: Optional[int] = typer.Option(None, help="Seed of data order, label sampling and init \\[default: 42]"),
    precision: Optional[str] = typer.Option(None, help="no, bf16 or fp16 (GPU) \\[default: no]"),
    eval_every: Optional[int] = typer.Option(None, help="Steps between validations \\[default: each epoch]"),
    patience: Optional[int] = typer.Option(None, help="Validations without improvement before stopping \\[default: 3]"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in --output-dir"),
    push_to_hub: Optional[str] = typer.Option(None, "--push-to-hub", help="Upload the best model to this Hub repo"),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config; its train: section sets anything "
                                                                 "not given as a flag"),
) -> None:
    """Train GliZNet; the best checkpoint is saved as a Hugging Face model folder with a model card.

    Runs on CPU, one GPU, or several with `accelerate launch -m gliznet_model.cli train ...`.
    Writes metrics.jsonl, checkpoints/ and train_summary.json in the output folder.
    """
    flags = dict(data=data, backbone=backbone, output_dir=output_dir, epochs=epochs, max_steps=max_steps,
                 batch_size=batch_size, lr=lr, head_lr=head_lr, warmup_ratio=warmup_ratio, weight_decay=weight_decay,
                 grad_accum=grad_accum, max_length=max_length, max_labels=max_labels, negatives=negatives,
                 similarity=similarity, pooling=pooling, seed=seed, precision=precision, eval_every=eval_every,
                 patience=patience, push_to_hub=push_to_hub)

    def body() -> dict[str, Any]:
        from .training import StepInfo, TrainConfig, train as run_train

        values = _read_section(config, "train") | {k: v for k, v in flags.items() if v is not None}
        if loss:
            values["losses"] = _losses(loss)
        values["resume"] = resume or values.get("resume", False)
        settings = TrainConfig.model_validate(values)
        with Progress(TextColumn("[bold]training"), BarColumn(), TextColumn("step {task.completed}/{task.total}"),
                      TextColumn("loss {task.fields[loss]:.4f} · lr {task.fields[lr]:.2e} · {task.fields[rate]:.1f} ex/s"),
                      TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True) as bar:
            task = bar.add_task("train", total=None, loss=float("nan"), lr=0.0, rate=0.0)

            def step(info: StepInfo) -> None:
                bar.update(task, completed=info.step, total=info.total, loss=info.loss, lr=info.lr,
                           rate=info.examples_per_second)

            def evaluated(entry: dict[str, Any]) -> None:
                metrics = entry["validation"]
                shown = " · ".join(f"{k} {metrics[k]:.3f}" for k in ("roc_auc", "f1_micro_best", "mrr") if k in metrics)
                bar.console.print(f"step {entry['step']}: validation {shown}")

            return run_train(settings, step, evaluated)

    summary = _guard(body)
    if not summary.get("main_process", True):  # under accelerate launch / torchrun the main process reports
        _exit_now()
    best = summary["best"] or {}
    out.print(f"{summary['steps']} steps{' (early stop)' if summary['early_stopped'] else ''}; best step "
              f"{best.get('step')} ({best.get('value', float('nan')):.4f}) saved to {summary['output_dir']}",
              soft_wrap=True)
    if summary.get("processes", 1) > 1:
        _exit_now()


def _exit_now() -> None:
    """End a multi-process run without running destructors: everything is written and both processes have met,
    and gloo's teardown of the DDP model can hang (training.py keeps that model alive for this)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@app.command()
def evaluate(
    model: str = typer.Argument(..., help="A trained GliZNet folder or Hub id"),
    data: Optional[list[str]] = typer.Option(None, "--data", help="Evaluation data: a shard folder, Parquet/JSONL "
                                                                  "file or Hub dataset id; repeatable"),
    benchmark: Optional[list[str]] = typer.Option(None, "--benchmark", help=f"One of {', '.join(BENCHMARK_NAMES)}; "
                                                                            "repeatable"),
    baseline: Optional[list[str]] = typer.Option(None, "--baseline", help="embedding, nli or untrained; repeatable"),
    split: Optional[str] = typer.Option(None, help="Split of --data, or 'all' \\[default: test if there is one, "
                                                   "else exactly the records MODEL held out in training]"),
    text_column: Optional[str] = typer.Option(None, help="Text column of --data (single-label data)"),
    label_column: Optional[str] = typer.Option(None, help="Class column of --data: makes it single-label"),
    limit: Optional[int] = typer.Option(None, help="Evaluate a seeded random subset of this many texts per dataset"),
    embedding_model: Optional[str] = typer.Option(None, help="Sentence-transformers model of the embedding "
                                                             "baseline \\[default: offline all-MiniLM-L6-v2]"),
    nli_model: Optional[str] = typer.Option(None, help="NLI model (path or Hub id) of the nli baseline"),
    batch_size: int = typer.Option(32, help="Texts per forward pass"),
    seed: int = typer.Option(42, help="Seed of the --limit subset"),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the results as JSON here"),
) -> None:
    """Score GliZNet (and baselines) on benchmarks and held-out data; print a Markdown table."""
    def body() -> list[dict[str, Any]]:
        from .evaluation import run_evaluation

        _check_output_file(json_path, "--json")
        with Progress(TextColumn("[bold]evaluating"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TextColumn("{task.description}"), TimeElapsedColumn(), console=err, transient=True) as bar:
            task = bar.add_task("loading", total=None)

            def progress(done: int, total: int, what: str) -> None:
                bar.update(task, completed=done, total=total, description=what)

            def finished(r: dict[str, Any]) -> None:
                bar.console.print(f"{r['dataset']} · {r['system']}: done ({r['texts_per_second']:.1f} texts/s)")

            return run_evaluation(model, data or [], benchmark or [], baseline or [], split=split,
                                  text_column=text_column, label_column=label_column, limit=limit,
                                  embedding_model=embedding_model, nli_model=nli_model, batch_size=batch_size,
                                  seed=seed, on_result=finished, on_progress=progress)

    results = _guard(body)
    from .evaluation import markdown_table

    out.print(markdown_table(results), soft_wrap=True, markup=False)
    _write_json(json_path, results)


@app.command()
def ablate(
    data: str = typer.Argument(..., help="Training data, as for `train`; its held-out split scores every run"),
    config: Path = typer.Option(..., "--config", help="YAML with an ablate: section (base, runs, benchmarks, limit)"),
    output_dir: Path = typer.Option(Path("runs/ablations"), "--output-dir", "-o", help="One model folder per run"),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the results as JSON here"),
) -> None:
    """Train one model per variant (e.g. cosine vs dot vs bilinear, none vs random vs hard negatives) and print
    one table comparing them."""
    def body() -> list[dict[str, Any]]:
        from .ablations import AblationConfig, run_ablations

        _check_output_file(json_path, "--json")
        settings = AblationConfig.model_validate(_read_section(config, "ablate"))
        return run_ablations(data, settings, output_dir, on_run=lambda name: err.print(f"training {name}"))

    results = _guard(body)
    from .evaluation import markdown_table

    out.print(markdown_table(results), soft_wrap=True, markup=False)
    _write_json(json_path, results)


@app.command()
def xml0(
    data: str = typer.Argument(..., help="An unseen-label split: the folder `gliznet-data push --unseen-labels ... "
                                         "--to-folder` wrote, or a Hub dataset with train and test splits"),
    model: Optional[str] = typer.Option(None, "--model", help="A trained GliZNet: adds its own row (it ranks the "
                                                              "unseen labels itself, chunked)"),
    seen_classifier: str = typer.Option("neighbours", help="Seen-label classifier: neighbours (label propagation "
                                                           "from the nearest training documents) or gliznet "
                                                           "(--model over every seen label)"),
    threshold: Optional[float] = typer.Option(None, help="Seen labels predicted at least this are fused "
                                                         "\\[default: 0.1]"),
    max_labels: Optional[int] = typer.Option(None, help="Most predicted labels fused (2^n - 1 subsets) "
                                                        "\\[default: 5]"),
    weight: Optional[float] = typer.Option(None, help="Share of label fusion in XML0, the rest SBERT "
                                                      "\\[default: 0.1]"),
    neighbours: Optional[int] = typer.Option(None, help="Training documents that vote \\[default: 10]"),
    encoder: Optional[str] = typer.Option(None, help="Sentence-transformers label encoder \\[default: offline "
                                                     "all-MiniLM-L6-v2]"),
    limit: Optional[int] = typer.Option(None, help="Rank for a seeded random subset of this many test documents"),
    batch_size: int = typer.Option(32, help="Texts per forward pass"),
    seed: int = typer.Option(42, help="Seed of the --limit subset"),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the results as JSON here"),
) -> None:
    """Zero-shot labels for large label sets: rank every unseen label for every test document with SBERT, ConSE,
    XML0 label fusion, XML0 and (with --model) GliZNet; P@k, nDCG@k and documents per second."""
    flags = dict(threshold=threshold, max_labels=max_labels, weight=weight, neighbours=neighbours)

    def body() -> dict[str, Any]:
        from .xml0 import Xml0Settings, run_xml0_table

        _check_output_file(json_path, "--json")
        settings = Xml0Settings.model_validate({k: v for k, v in flags.items() if v is not None})
        with err.status("xml0", spinner="dots") as status:
            return run_xml0_table(data, model, settings, seen_classifier, encoder, limit, seed, batch_size,
                                  on_progress=lambda what: status.update(what))

    result = _guard(body)
    from rich import box
    from rich.table import Table

    table = Table(box=box.MARKDOWN, title=f"{result['dataset']}: {result['documents']:,} test documents, "
                                          f"{result['unseen_labels']:,} unseen labels")
    columns = {"P@1": "precision@1", "P@3": "precision@3", "P@5": "precision@5", "nDCG@3": "ndcg@3",
               "nDCG@5": "ndcg@5", "docs/s": "documents_per_second"}
    table.add_column("system")
    for column in columns:
        table.add_column(column, justify="right")
    for row in result["rows"]:
        table.add_row(row["system"], *(f"{row[key]:,.1f}" if column == "docs/s" else f"{row[key]:.3f}"
                                       for column, key in columns.items()))
    out.print(table)
    for note in result["notes"]:
        err.print(f"note: {note}", soft_wrap=True, markup=False)
    _write_json(json_path, result)


@app.command()
def version() -> None:
    """Print the installed gliznet version."""
    from importlib.metadata import version as dist_version

    typer.echo(dist_version("gliznet"))


# ----------------------------------------------------------------- using a trained model (predict, serve, demo)
@app.command()
def predict(
    model: str = typer.Argument(..., help="A trained GliZNet folder or Hub id"),
    text: Optional[str] = typer.Option(None, "--text", help="Classify this one text and print the result as JSON"),
    input_path: Optional[Path] = typer.Option(None, "--input", "-i", help="Parquet, JSONL or CSV file of texts"),
    text_column: str = typer.Option("text", help="Text column of --input"),
    labels: Optional[str] = typer.Option(None, "--labels", help="Candidate labels, comma-separated"),
    labels_file: Optional[Path] = typer.Option(None, "--labels-file", help="Candidate labels: one per line or a "
                                                                           "JSON list"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Parquet or JSONL scores \\[default: "
                                                                       "INPUT_STEM.predictions.parquet]"),
    multi_label: bool = typer.Option(False, "--multi-label", help="Independent sigmoid scores (else they sum to 1)"),
    threshold: Optional[float] = typer.Option(None, help="Also list the labels scoring at least this"),
    batch_size: int = typer.Option(32, help="Texts per forward pass"),
    part_rows: int = typer.Option(10_000, help="Rows per part file (what a rerun after a crash can lose at most)"),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output instead of resuming"),
) -> None:
    """Score texts against candidate labels: one --text, or a whole --input file streamed in batches.

    Rerun the same command after an interruption to continue: rows already written are skipped. A JSON summary is
    printed and written beside the output.
    """
    def body() -> dict[str, Any]:
        from .predict import PredictConfig, read_labels, run_predict, score_text

        candidates = read_labels(labels, labels_file)
        if (text is None) == (input_path is None):
            raise ValueError("give one --text or an --input file (one of them)")
        if text is not None and output is not None:
            raise ValueError("--output goes with --input; one --text prints its result")
        if text is not None:
            from .pipeline import load_model

            loaded, tokenizer = load_model(model, device)
            return score_text(loaded, tokenizer, text, candidates, multi_label, threshold)
        target = output or input_path.with_name(input_path.name.rsplit(".", 1)[0] + ".predictions.parquet")
        config = PredictConfig(model=model, input=input_path, output=target, labels=candidates,
                               text_column=text_column, multi_label=multi_label, threshold=threshold,
                               batch_size=batch_size, part_rows=part_rows, overwrite=overwrite)
        bar = Progress(TextColumn("[bold]predicting"), BarColumn(), TextColumn("{task.completed:,}/{task.total} rows"),
                       TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True)
        task = bar.add_task("predict", total=None)

        def progress(done: int, total: Optional[int]) -> None:
            bar.start()  # on the first scored batch, so that early errors print alone
            bar.update(task, completed=done, total=total)

        try:
            return run_predict(config, device=device, on_progress=progress)
        except KeyboardInterrupt:
            err.print("interrupted: run the same command again to continue from the rows already written")
            raise typer.Exit(130) from None
        finally:
            if bar.live.is_started:
                bar.stop()

    typer.echo(json.dumps(_guard(body), indent=2))


@app.command()
def serve(
    model: str = typer.Argument(..., help="A trained GliZNet folder or Hub id"),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 for every interface)"),
    port: int = typer.Option(8000, help="Port"),
    max_batch_size: int = typer.Option(16, help="Most texts gathered into one model call (1 turns batching off)"),
    max_wait_ms: float = typer.Option(100.0, help="Longest a request waits for others to join its batch (only "
                                                 "while fewer have joined than took part in the last one, and "
                                                 "never over half the model's time per batch)"),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N"),
    max_texts: int = typer.Option(64, help="Texts per request at most"),
    max_labels: int = typer.Option(128, help="Candidate labels per text at most"),
    max_chars: int = typer.Option(10_000, help="Characters per text at most"),
    threads: Optional[int] = typer.Option(None, help="torch CPU threads \\[default: torch's choice]"),
    log_level: str = typer.Option("info", help="uvicorn log level"),
) -> None:
    """Serve the model over HTTP: POST /v1/classify, the Hugging Face Inference API format at POST /, GET /health,
    GET /v1/model, docs at /docs. Concurrent requests are micro-batched; SIGTERM finishes requests in flight."""
    def body() -> None:
        from .serving import Limits, ServerSettings, serve as run_server

        settings = ServerSettings(max_batch_size=max_batch_size, max_wait_ms=max_wait_ms,
                                  limits=Limits(max_texts=max_texts, max_labels=max_labels, max_chars=max_chars))
        run_server(model, host=host, port=port, device=device, settings=settings, log_level=log_level,
                   threads=threads)

    _guard(body)


@app.command()
def demo(
    model: str = typer.Argument(..., help="A trained GliZNet folder or Hub id"),
    host: str = typer.Option("127.0.0.1", help="Address to listen on"),
    port: int = typer.Option(7860, help="Port"),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N"),
    baseline_model: Optional[str] = typer.Option(None, help="Sentence-transformers model of the embedding baseline "
                                                            "\\[default: offline all-MiniLM-L6-v2]"),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Show the embedding baseline's scores"),
) -> None:
    """A Gradio page to try the model in a browser, beside the embedding baseline (needs the .[demo] extra)."""
    def body() -> None:
        from .demo import launch_demo

        launch_demo(model, host=host, port=port, device=device, baseline_model=baseline_model, baseline=baseline)

    _guard(body)


if __name__ == "__main__":
    app()
