"""gliznet-data: make, check and describe synthetic zero-shot classification data."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
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
BUNDLE_SHARE_HELP = ("Share of cross-role bundle requests (texts of one reply share a label pool, every label "
                     "a positive of one text and a hard negative of another) \\[default: 0.3, from the diversity table]")


def _guard(action: Callable[[], T]) -> T:
    """Run a command body: user errors become one line on stderr and exit code 2 (3: a run that stopped
    itself on its failure budget)."""
    try:
        return action()
    except UserError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)  # escaped: "[LAB]" is not markup
        raise typer.Exit(getattr(exc, "exit_code", 2)) from None
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
    provider: Optional[str] = typer.Option(None, help=f"LLM service: {' or '.join(PROVIDERS)} \\[default: groq]"),
    n: Optional[int] = typer.Option(None, "--n", "-n", help="Valid, unique records to produce \\[default: 1000]"),
    model: Optional[str] = typer.Option(None, help="Model name \\[default: the provider's default]"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder for shards and manifest \\[default: data]"),
    seed: Optional[int] = typer.Option(None, help="Seed of the parameter draws; same seed, same requests \\[default: 0]"),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", "-c", help="Requests in flight \\[default: 16]"),
    examples_per_request: Optional[int] = typer.Option(None, "--k", help="Examples asked per request \\[default: 5]"),
    rpm: Optional[float] = typer.Option(None, help="Requests-per-minute limit"),
    tpm: Optional[float] = typer.Option(None, help="Tokens-per-minute limit"),
    timeout: Optional[float] = typer.Option(None, help="Seconds per request \\[default: 60]"),
    max_consecutive_failures: Optional[int] = typer.Option(
        None, "--max-consecutive-failures", help="Stop once this many requests in a row yielded no valid record "
                                                 "\\[default: 20]"),
    max_failure_share: Optional[float] = typer.Option(
        None, "--max-failure-share", help="Stop once this share of the last --failure-window requests yielded no "
                                          "valid record \\[default: 0.8]"),
    failure_window: Optional[int] = typer.Option(
        None, "--failure-window", help="Requests the failure share is measured over \\[default: 100]"),
    bundle_share: Optional[float] = typer.Option(None, "--bundle-share", help=BUNDLE_SHARE_HELP),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config; its generate: section sets anything not given as a flag"),
) -> None:
    """Generate N valid records with hard negatives into Parquet shards.

    Rerunning the same command after a crash or Ctrl-C continues where it stopped.
    A run whose replies keep yielding nothing stops itself with exit code 3 (the failure budget).
    Keys come from GROQ_API_KEY (and GROQ_BASE_URL) or OLLAMA_HOST.
    """
    flags = dict(provider=provider, n=n, model=model, output=output, seed=seed, concurrency=concurrency,
                 examples_per_request=examples_per_request, rpm=rpm, tpm=tpm, timeout=timeout,
                 max_consecutive_failures=max_consecutive_failures, max_failure_share=max_failure_share,
                 failure_window=failure_window, bundle_share=bundle_share)

    def body() -> dict[str, Any]:
        if provider is not None and provider not in PROVIDERS:
            raise UserError(f"unknown provider {provider!r} (choose from: {', '.join(PROVIDERS)})")
        if n is not None and n <= 0:
            raise UserError(f"--n must be a positive number of records, got {n}")
        settings = build(GenerateConfig, config, "generate", flags)
        return _live("generating", lambda show, note: run_generate(settings, show, note))

    _report(_guard(body))


def _live(verb: str, start: Callable[[Callable[[RunProgress], None], Callable[[str], None]], Any]) -> dict[str, Any]:
    """Run a live route under a progress bar; ``start(show, note)`` returns its coroutine."""
    with Progress(
        TextColumn(f"[bold]{verb}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
        TextColumn("{task.fields[rejected]:,} rejected · {task.fields[tokens]:,} tokens · {task.fields[retries]} retries"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=True,
    ) as bar:
        task = bar.add_task(verb, total=None, rejected=0, tokens=0, retries=0)

        def show(p: RunProgress) -> None:
            bar.update(task, total=p.target, completed=p.valid, rejected=p.rejected, tokens=p.tokens,
                       retries=p.retries)

        def note(line: str) -> None:
            bar.console.print(line, markup=False, soft_wrap=True)

        return asyncio.run(start(show, note))


def _report(manifest: dict[str, Any], extra: str = "") -> None:
    counts = manifest["counts"]
    out.print(f"{counts['records']:,} records{extra} in {manifest['duration_seconds']:.1f}s, {counts['rejected']:,} "
              f"rejected, {manifest['tokens']['total']:,} tokens"
              + (f", ${manifest['cost_usd']:.4f}" if manifest.get("cost_usd") is not None else "")
              + f" -> {(Path(manifest['config']['output']) / shards.MANIFEST)}", soft_wrap=True, markup=False)


@app.command()
def annotate(
    texts: Path = typer.Argument(..., help="Your texts: a .parquet, .jsonl or .csv file"),
    text_column: Optional[str] = typer.Option(None, "--text-column", help="Column (or JSONL field) holding the "
                                                                           "texts \\[default: text]"),
    n: Optional[int] = typer.Option(None, "--n", "-n", help="Valid records to produce, texts taken in file order "
                                                             "\\[default: one per text]"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder for shards and manifest "
                                                                        "\\[default: <TEXTS stem>-annotated beside it]"),
    provider: Optional[str] = typer.Option(None, help=f"LLM service: {' or '.join(PROVIDERS)} \\[default: groq]"),
    model: Optional[str] = typer.Option(None, help="Model name \\[default: the provider's default]"),
    domain: Optional[str] = typer.Option(None, help="What the texts are (\"support tickets of a bank\"); told to "
                                                    "the LLM and stored as the domain"),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", "-c", help="Requests in flight \\[default: 16]"),
    examples_per_request: Optional[int] = typer.Option(None, "--k", help="Texts per request \\[default: 5]"),
    rpm: Optional[float] = typer.Option(None, help="Requests-per-minute limit"),
    tpm: Optional[float] = typer.Option(None, help="Tokens-per-minute limit"),
    timeout: Optional[float] = typer.Option(None, help="Seconds per request \\[default: 60]"),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config; its annotate: section sets anything "
                                                                 "not given as a flag"),
) -> None:
    """Label your own texts: the LLM writes positives and hard negatives for each, into Parquet shards.

    The stored texts are yours, as written. Same validators (a text's length is never a reject), shards,
    manifest, resume and exact N as `generate`: rerun the same command after a crash to continue.
    Keys come from GROQ_API_KEY (and GROQ_BASE_URL) or OLLAMA_HOST.
    """
    from .annotate import AnnotateConfig, annotate as run_annotate

    flags = dict(input=texts, text_column=text_column, n=n, output=output, provider=provider, model=model,
                 domain=domain, concurrency=concurrency, examples_per_request=examples_per_request, rpm=rpm, tpm=tpm,
                 timeout=timeout)

    def body() -> dict[str, Any]:
        if provider is not None and provider not in PROVIDERS:
            raise UserError(f"unknown provider {provider!r} (choose from: {', '.join(PROVIDERS)})")
        if n is not None and n <= 0:
            raise UserError(f"--n must be a positive number of records, got {n}")
        settings = build(AnnotateConfig, config, "annotate", flags)
        return _live("annotating", lambda show, note: run_annotate(settings, show, note))

    manifest = _guard(body)
    source = manifest["input"]
    _report(manifest, f" from {source['texts']:,} texts")
    if source["exhausted"]:
        err.print(f"note: all {source['texts']:,} texts were sent, for {manifest['counts']['records']:,} valid records "
                  f"of the {manifest['config']['n']:,} asked for (rejects by reason in the manifest)", soft_wrap=True,
                  markup=False)


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
    both = result["both_roles"]
    summary.add_row("labels in both roles", f"{both['labels']:,} ({both['share']:.1%} of distinct labels)")
    summary.add_row("label uses", " · ".join(f"{band} {v['labels']:,} ({v['share']:.1%})"
                                             for band, v in result["label_uses"].items()))
    broad = result["broad_labels"]
    summary.add_row("records with a broad label", f"{broad['records']:,} ({broad['share']:.1%}; "
                                                  f"{broad['records_with_broad_positive']:,} as a positive)")
    for key in ("request_mode", "label_granularity"):
        if result.get(key):
            summary.add_row(key.replace("_", " "), " · ".join(f"{k} {v:,}" for k, v in result[key].items()))
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
    def body() -> Any:
        report = validate_rows(with_text_column(shards.read_table(path)).iter_rows(named=True))
        if report.rows == 0:
            raise UserError(f"{path} holds no rows: nothing to validate")
        return report

    report = _guard(body)
    table = Table("reason", "rows", "meaning", title=f"{report.valid:,} of {report.rows:,} rows valid")
    for reason, count in report.rejects.items():
        table.add_row(reason, f"{count:,}", REJECT_REASONS.get(reason, ""))
    out.print(table)
    if report.valid != report.rows:
        raise typer.Exit(1)


batch_app = typer.Typer(help="The batch route: export requests, run them as a Groq batch, ingest the results.",
                        no_args_is_help=True)
app.add_typer(batch_app, name="batch")


@batch_app.command("export")
def batch_export(
    output: Path = typer.Option(..., "--output", "-o", help="The requests file to write (JSONL)"),
    n: Optional[int] = typer.Option(None, "--n", "-n", help="Records wanted; exports ceil(N / k) requests \\[default: 1000]"),
    requests: Optional[int] = typer.Option(None, "--requests", help="Export exactly this many requests instead"),
    seed: Optional[int] = typer.Option(None, help="Seed of the parameter draws \\[default: 0]"),
    model: Optional[str] = typer.Option(None, help="Model named in every request \\[default: the Groq default]"),
    examples_per_request: Optional[int] = typer.Option(None, "--k", help="Examples asked per request \\[default: 5]"),
    bundle_share: Optional[float] = typer.Option(None, "--bundle-share", help=BUNDLE_SHARE_HELP),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config; its generate: section applies"),
) -> None:
    """Write the requests `generate` would send, one OpenAI/Groq batch line each (same seed, same file)."""
    flags = dict(n=n, seed=seed, model=model, examples_per_request=examples_per_request, bundle_share=bundle_share)
    from .batch import export_requests

    summary = _guard(lambda: export_requests(build(GenerateConfig, config, "generate", flags), output, requests))
    out.print(f"{summary['requests']:,} requests (model {summary['model']}, prompt version "
              f"{summary['prompt_version']}, seed {summary['seed']}) -> {summary['path']}", soft_wrap=True)


@batch_app.command("submit")
def batch_submit(
    requests_file: Path = typer.Argument(..., help="A requests file from `gliznet-data batch export`"),
    provider: str = typer.Option("groq", help="Batch service (groq)"),
    resume: Optional[str] = typer.Option(None, "--resume", help="Reattach to this batch id instead of uploading"),
    results: Optional[Path] = typer.Option(None, "--results", help="Where to save results \\[default: beside the requests]"),
    poll: float = typer.Option(15.0, help="Seconds between status checks"),
    window: str = typer.Option("24h", help="Completion window, 24h to 7d"),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config; its generate: section applies"),
) -> None:
    """Upload the requests, create the batch, wait for it to end, download results and errors.

    Interrupted? The batch keeps running on the service: reattach with --resume BATCH_ID.
    """
    from .batch import submit

    def body() -> dict[str, Any]:
        settings = build(GenerateConfig, config, "generate", {"provider": provider})
        with err.status("uploading", spinner="dots") as status:
            def show(batch: Any) -> None:
                counts = batch.request_counts
                done = f" {counts.completed + counts.failed:,}/{counts.total:,}" if counts and counts.total else ""
                status.update(f"batch {batch.id}: {batch.status}{done}")

            return asyncio.run(submit(settings, requests_file, results, resume, poll, window, show))

    summary = _guard(body)
    out.print(f"batch {summary['batch_id']} {summary['status']}: {summary['completed']} completed, "
              f"{summary['failed']} failed -> {summary['results']}"
              + (f" (errors: {summary['errors']})" if summary["errors"] else ""), soft_wrap=True)


@batch_app.command("ingest")
def batch_ingest(
    results: Path = typer.Argument(..., help="Results JSONL from `batch submit` (OpenAI batch output format)"),
    requests_file: Path = typer.Option(..., "--requests", help="The requests file the results answer"),
    output: Path = typer.Option(..., "--output", "-o", help="Shard folder to write (or to add to)"),
    provider_name: str = typer.Option("groq-batch", help="Provider written into each record's provenance"),
    model_name: Optional[str] = typer.Option(None, help="Model written into provenance \\[default: each result's model]"),
    bundle_share: Optional[float] = typer.Option(None, "--bundle-share", help="The --bundle-share of the export, if any"),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config of the export (diversity, limits)"),
) -> None:
    """Parse, validate and dedupe batch results into shards and a manifest, exactly as `generate` does."""
    from .batch import ingest

    def body() -> dict[str, Any]:
        settings = build(GenerateConfig, config, "generate", {"output": output, "bundle_share": bundle_share})
        return ingest(settings, results, requests_file, provider_name, model_name)

    manifest = _guard(body)
    counts = manifest["counts"]
    out.print(f"{counts['records']:,} records, {counts['rejected']:,} rejected, {counts['failed_requests']:,} failed "
              f"requests -> {output / shards.MANIFEST}", soft_wrap=True)


@app.command()
def push(
    path: Path = typer.Argument(..., help="Shard folder written by `gliznet-data generate` (searched recursively) "
                                          "or one Parquet file"),
    repo_id: Optional[str] = typer.Option(None, "--repo-id", help="Dataset repo OWNER/NAME; created when missing"),
    private: Optional[bool] = typer.Option(None, "--private/--public",
                                           help="Visibility of a repo this push creates \\[default: public]"),
    split_seed: Optional[int] = typer.Option(None, "--split-seed", help="Seed of the split hashes \\[default: 0]"),
    validation: Optional[float] = typer.Option(
        None, "--validation", help="Fraction of the non-test records for the validation split \\[default: 0.1]"),
    unseen_labels: Optional[float] = typer.Option(
        None, "--unseen-labels", help="About this share of the records go to a zero-shot test split: labels are "
                                      "held out, every record with a held-out positive goes to test, and held-out "
                                      "hard negatives are dropped from the others, so none appears in train or "
                                      "validation \\[default: 0]"),
    license: Optional[str] = typer.Option(None, "--license", help="License id for the card \\[default: apache-2.0]"),
    language: Optional[list[str]] = typer.Option(None, "--language", help="Language code for the card; repeatable "
                                                                          "\\[default: en]"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Build the folder that would be uploaded and stop; "
                                                          "no token or network needed"),
    to_folder: Optional[Path] = typer.Option(None, "--to-folder", help="Where --dry-run writes the folder (implies "
                                                                       "--dry-run) \\[default: <shard folder>-hub "
                                                                       "beside it]"),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config; its push: section sets anything not "
                                                                 "given as a flag"),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds to wait for the Hub to connect or "
                                                                   "answer, per request \\[default: 60]"),
    as_json: bool = typer.Option(False, "--json", help="Print the push summary as JSON on stdout"),
) -> None:
    """Publish shards as a Hugging Face Hub dataset: train/validation(/test) splits, a dataset card, one commit.

    Records are validated first; a single invalid row stops the push.
    Splits are deterministic: validation by record id and --split-seed, test by label with --unseen-labels.
    Pushing unchanged data makes no commit; stale files under data/ are deleted in the same commit.
    The token comes from HF_TOKEN or `hf auth login`; HF_ENDPOINT selects another Hub.
    A JSON summary is saved as push.json beside the shards (and printed with --json).
    """
    flags = dict(repo_id=repo_id, private=private, split_seed=split_seed, validation=validation,
                 unseen_labels=unseen_labels, license=license, language=language or None, timeout=timeout)

    def body() -> dict[str, Any]:
        from . import hub  # here, so that the other commands start without pyarrow and huggingface_hub

        settings = build(hub.PushConfig, config, "push", flags)
        with err.status("pushing", spinner="dots") as status:
            def step(message: str) -> None:
                status.update(message)

            if dry_run or to_folder is not None:
                summary = hub.write_folder(settings, path, to_folder or hub.default_folder(path), step)
            else:
                summary = hub.upload(settings, path, step)
        hub.write_summary(path, summary)
        return summary

    summary = _guard(body)
    for note in summary["notes"]:
        err.print(f"note: {note}", soft_wrap=True, markup=False)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    splits = " · ".join(f"{name} {count:,}" for name, count in summary["splits"].items())
    if summary["dry_run"]:
        size = sum(f["bytes"] for f in summary["files"])
        out.print(f"{summary['rows']:,} records ({splits}) -> {summary['folder']}: {len(summary['files'])} files, "
                  f"{size:,} bytes; nothing uploaded", soft_wrap=True, markup=False)
    elif summary["changed"]:
        out.print(f"{summary['rows']:,} records ({splits}) -> {summary['url']} at commit {summary['commit'][:8]}: "
                  f"{len(summary['uploaded'])} file(s) written, {len(summary['deleted'])} deleted", soft_wrap=True,
                  markup=False)
    else:
        out.print(f"{summary['url']} already holds these {summary['rows']:,} records ({splits}); no commit made",
                  soft_wrap=True, markup=False)


if __name__ == "__main__":
    app()
