"""gliznet-model: train and evaluate GliZNet (coming next; see the README)."""

import typer

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)


@app.command()
def version() -> None:
    """Print the installed gliznet version."""
    from importlib.metadata import version as dist_version

    typer.echo(dist_version("gliznet"))
