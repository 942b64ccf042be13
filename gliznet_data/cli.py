"""gliznet-data: make, check and describe synthetic zero-shot classification data."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from . import shards
from .config import build
from .errors import UserError
from .generate import GenerateConfig, Progress as RunProgress, generate as run_generate
from .providers import PROVIDERS
from .records import REJECT_REASONS, validate_rows
from .stats import dataset_stats, with_text_column

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
out = Console()
err = Console(stderr=True, highlight=False)
T = TypeVar("T")


def _guard(action: Callable[[], T]) -> T:
    """Run a command body: user errors become one line on stderr and exit code 2."""
    try:
        return action()
    except UserError as exc:
        err.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print("interrupted: finished work is saved; run the same command again to continue")
        raise typer.Exit(130) from None


class _RateColumn(TextColumn):
    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):  # noqa: D102
        speed = task.finished_speed or task.speed
        return f"{speed:,.1f} rec/s" if speed else "- rec/s"


@app.command()
def generate(
    provider: Optional[str] = typer.Option(None, help=f"LLM service: {' or '.join(PROVIDERS)} [default: groq]"),
    n: Optional[int] = typer.Option(None, "--n", "-n", help="Valid, unique records to produce [default: 1000]"),
    model: Optional[str] = typer.Option(None, help="Model name [default: the provider's default]"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder for shards and manifest [default: data]"),
    seed: Optional[int] = typer.Option(None, help="Seed of the parameter draws; same seed, same requests [default: 0]"),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", "-c", help="Requests in flight [default: 16]"),
    examples_per_request: Optional[int] = typer.Option(None, "--k", help="Examples asked per request [default: 5]"),
    rpm: Optional[float] = typer.Option(None, help="Requests-per-minute limit"),
    tpm: Optional[float] = typer.Option(None, help="Tokens-per-minute limit"),
    timeout: Optional[float] = typer.Option(None, help="Seconds per request [default: 60]"),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config; its generate: section sets anything not given as a flag"),
) -> None:
    """Generate N valid records with hard negatives into Parquet shards.

    Rerunning the same command after a crash or Ctrl-C continues where it stopped.
    Keys come from GROQ_API_KEY (and GROQ_BASE_URL) or OLLAMA_HOST.
    """
    flags = dict(provider=provider, n=n, model=model, output=output, seed=seed, concurrency=concurrency,
                 examples_per_request=examples_per_request, rpm=rpm, tpm=tpm, timeout=timeout)

    def body() -> dict[str, Any]:
        if provider is not None and provider not in PROVIDERS:
            raise UserError(f"unknown provider {provider!r} (choose from: {', '.join(PROVIDERS)})")
        if n is not None and n <= 0:
            raise UserError(f"--n must be a positive number of records, got {n}")
        settings = build(GenerateConfig, config, "generate", flags)
        with Progress(
            TextColumn("[bold]generating"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
            TextColumn("{task.fields[rejected]:,} rejected · {task.fields[tokens]:,} tokens · {task.fields[retries]} retries"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True,
        ) as bar:
            task = bar.add_task("generate", total=settings.n, rejected=0, tokens=0, retries=0)

            def show(p: RunProgress) -> None:
                bar.update(task, completed=p.valid, rejected=p.rejected, tokens=p.tokens, retries=p.retries)

            return asyncio.run(run_generate(settings, show))

    manifest = _guard(body)
    counts = manifest["counts"]
    out.print(f"{counts['records']:,} records in {manifest['duration_seconds']:.1f}s, {counts['rejected']:,} rejected, "
              f"{manifest['tokens']['total']:,} tokens"
              + (f", ${manifest['cost_usd']:.4f}" if manifest.get("cost_usd") is not None else "")
              + f" -> {(Path(manifest['config']['output']) / shards.MANIFEST)}")


@app.command()
def stats(
    path: Path = typer.Argument(..., help="A shard folder (searched recursively) or a Parquet file"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables"),
) -> None:
    """Dataset statistics: samples, labels, positives and negatives per sample, lengths, coverage, rejects."""
    def body() -> dict[str, Any]:
        manifest = shards.read_manifest(path) if path.is_dir() else None
        return dataset_stats(shards.read_table(path), manifest)

    result = _guard(body)
    if as_json:
        out.print_json(json.dumps(result))
        return
    summary = Table(title=f"{path}", show_header=False)
    for key in ("samples", "unique_labels", "unique_positive_labels", "unique_negative_labels",
                "avg_positives", "avg_negatives"):
        summary.add_row(key.replace("_", " "), f"{result[key]:,}")
    summary.add_row("text words", " · ".join(f"{k} {v:g}" for k, v in result["text_words"].items()))
    summary.add_row("length buckets", " · ".join(f"{k} {v:,}" for k, v in result["length_buckets"].items()))
    out.print(summary)
    for key in ("task_type", "domain", "rejects"):
        if result.get(key):
            table = Table(key.replace("_", " "), "count", title=f"{key.replace('_', ' ')} ({len(result[key])})")
            for name, count in result[key].items():
                table.add_row(name, f"{count:,}")
            out.print(table)


@app.command()
def validate(path: Path = typer.Argument(..., help="A shard folder or a Parquet file (ours or ZSHOT-HARDSET-shaped)")) -> None:
    """Re-check stored data against the record validators and report rejects by reason.

    Exits with 1 when any row fails.
    """
    report = _guard(lambda: validate_rows(with_text_column(shards.read_table(path)).iter_rows(named=True)))
    table = Table("reason", "rows", "meaning", title=f"{report.valid:,} of {report.rows:,} rows valid")
    for reason, count in report.rejects.items():
        table.add_row(reason, f"{count:,}", REJECT_REASONS.get(reason, ""))
    out.print(table)
    if report.valid != report.rows:
        raise typer.Exit(1)
if __name__ == "__main__":
    app()
