"""The everyday commands: ingest, search, prune, models, serve."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated

import typer

from imgsearch.cli.app import (
    MAX_K,
    BackendOption,
    DeviceOption,
    JsonFlag,
    ModelOption,
    app,
    echo_err,
    open_index,
    options_from,
    settings,
    similarity_range,
)
from imgsearch.cli.display import plural

WeightsOption = Annotated[
    Path | None,
    typer.Option(
        "--weights",
        help="A state-dict file for the model (offline use), or for a CLIP-style model an open_clip "
        "checkpoint file or folder; search with the same one.",
    ),
]


@app.command("ingest")
def ingest_command(
    ctx: typer.Context,
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Files or folders to index (folders recursively).", show_default=False),
    ] = None,
    model: ModelOption = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", min=1, max=4096, help="Images per encoder batch and per transaction."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, max=256, help="Parallel readers/decoders (default: CPU count)."),
    ] = None,
    device: DeviceOption = None,
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", help="CSV with a `path` or `url` column; other columns become metadata."),
    ] = None,
    follow_symlinks: Annotated[
        bool, typer.Option("--follow-symlinks", help="Enter symlinked folders (each once).")
    ] = False,
    weights: WeightsOption = None,
    rehash: Annotated[
        bool,
        typer.Option(
            "--rehash",
            help="Also hash files whose size and mtime are unchanged; re-encode those whose content changed.",
        ),
    ] = False,
    prune_gone: Annotated[
        bool, typer.Option("--prune", help="Remove indexed files under the given folders that are gone.")
    ] = False,
    backend: BackendOption = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Then keep watching: new, changed, moved and deleted files are "
            "reflected within seconds (Ctrl-C stops).",
        ),
    ] = False,
    augment: Annotated[
        int,
        typer.Option(
            "--augment",
            min=0,
            max=16,
            help="Also store N vectors of random edits (mirror, crop, "
            "colour, rotation, JPEG, downscale) per image; searches rank an image by its closest "
            "vector and list it once.",
        ),
    ] = 0,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="local (threads in this process) or ray (Ray Data: decode tasks, "
            "encoder actors; pip install 'imgsearch[ray]').",
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="With --engine ray: auto (a running cluster) or ray://HOST:10001; "
            "default: start a local Ray.",
        ),
    ] = None,
) -> None:
    """Index images: new and changed files are encoded, unchanged ones skipped."""
    from imgsearch.cli.display import progress_display
    from imgsearch.ingest.options import IngestOptions

    if not paths and manifest is None:
        echo_err("Give at least one PATH or --manifest CSV.")
        raise typer.Exit(2)
    index = open_index(model, device, backend)
    index.encoder(model, weights)  # a missing model fails before any work
    try:
        with progress_display() as show:
            options = options_from(IngestOptions, ctx.params)
            report = index.ingest(paths or (), options, model=model, weights=weights, progress=show)
    except FileNotFoundError as exc:
        echo_err(f"error: {exc}")
        raise typer.Exit(2) from exc
    rate = report.encoded / report.seconds if report.seconds else 0.0
    typer.echo(
        f"{report.model}: {report.new} new, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.failed} failed "
        f"({report.encoded} encoded in {report.seconds:.1f}s, {rate:.1f} images/s)"
    )
    for failure in report.failures:
        typer.echo(f"  failed: {failure.location}: {failure.message} [{failure.kind}]")
    for location, warning in report.warnings:
        typer.echo(f"  warning: {location}: {warning}")
    if report.waited:
        typer.echo(f"waited {report.waited:.1f}s for another ingest with {report.model} to finish")
    if report.pruned:
        one = report.pruned == 1
        typer.echo(
            f"removed {plural(report.pruned, 'indexed file')} that {'is' if one else 'are'} "
            "gone from these folders"
        )
    elif report.gone:
        one = report.gone == 1
        typer.echo(
            f"{plural(report.gone, 'indexed file')} under these folders {'is' if one else 'are'} "
            f"gone: `--prune` removes {'it' if one else 'them'} from the index"
        )
    if report.interrupted:
        typer.echo("interrupted: what was written is kept; run the same command to continue.")
        raise typer.Exit(130)
    if watch and paths:
        _watch(index, paths, model)
    raise typer.Exit(report.exit_code)


def _watch(index, paths: list[Path], model: str | None) -> None:
    import signal
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def show(event) -> None:
        r = event.report
        done = f"{r.new} new, {r.updated} updated, {r.failed} failed" if r else "nothing to encode"
        typer.echo(f"watch: {len(event.paths)} changed: {done}, {event.removed} removed", err=True)

    typer.echo(f"watching {', '.join(map(str, paths))} (Ctrl-C stops)", err=True)
    index.watch(paths, stop=stop, on_event=show, model=model, first_pass=False)
    typer.echo("stopped watching", err=True)


@app.command("search")
def search_command(
    query: Annotated[
        str | None,
        typer.Argument(
            help="Image file, http(s) URL, or id:<image id> (optional with --text).", show_default=False
        ),
    ] = None,
    text: Annotated[
        str | None,
        typer.Option(
            "--text",
            help='Search by words, e.g. "a red bicycle in the snow" (a CLIP-style model: '
            "clip-vit-b-32, ...); beside QUERY, the words steer the picture.",
        ),
    ] = None,
    text_weight: Annotated[
        float,
        typer.Option("--text-weight", min=0.0, max=1.0, help="The words' share of a picture + words query."),
    ] = 0.5,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=MAX_K, help="How many results.")] = 5,
    model: ModelOption = None,
    min_similarity: Annotated[
        float | None,
        typer.Option(
            "--min-similarity",
            callback=similarity_range,
            help="Drop results below this cosine similarity (-1..1).",
        ),
    ] = None,
    as_json: JsonFlag = False,
    grid: Annotated[
        Path | None,
        typer.Option("--grid", help="Also write the query and its matches side by side to this PNG."),
    ] = None,
    device: DeviceOption = None,
    weights: WeightsOption = None,
    ef_search: Annotated[
        int | None,
        typer.Option("--ef-search", min=1, max=1000, help="HNSW candidate list size (recall vs speed)."),
    ] = None,
    probes: Annotated[
        int | None,
        typer.Option("--probes", min=1, max=32768, help="IVFFlat lists to visit (recall vs speed)."),
    ] = None,
    exact: Annotated[bool, typer.Option("--exact", help="Exact scan, no index.")] = False,
    where: Annotated[
        list[str] | None, typer.Option("--where", help="Metadata filter key=value (repeatable).")
    ] = None,
    backend: BackendOption = None,
    tta: Annotated[
        bool,
        typer.Option(
            "--tta",
            help="Test-time augmentation: query with the mean of the image, its mirror "
            "and its centre crop (3 encodes).",
        ),
    ] = False,
) -> None:
    """Find the indexed images most similar to QUERY, to words (--text), or to both."""
    from imgsearch.cli.display import search_table
    from imgsearch.db.nearest import QueryOptions

    filters = {}
    for item in where or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            echo_err(f"--where {item!r}: expected key=value")
            raise typer.Exit(2)
        filters[key] = value
    if query is None and text is None:
        echo_err("Give a QUERY image, --text WORDS, or both.")
        raise typer.Exit(2)
    options = QueryOptions(ef_search, probes, exact, filters or None)
    index = open_index(model, device, backend)
    result = index.search(
        query,
        k,
        text=text,
        text_weight=text_weight,
        weights=weights,
        min_similarity=min_similarity,
        options=options,
        tta=tta,
    )
    if grid is not None:
        from imgsearch.cli.render import save_grid

        save_grid(result, grid, index.settings)
    if as_json:
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False))
        return
    if not result.results:
        typer.echo("no close match" if min_similarity is not None else "no results")
        return
    typer.echo(search_table(result))
    if grid is not None:
        typer.echo(f"grid written to {grid}")


@app.command("prune")
def prune_command() -> None:
    """Remove indexed images whose files are gone (and their vectors)."""
    removed = open_index().prune()
    typer.echo(f"removed {plural(removed, 'image')} whose files are gone")


models_app = typer.Typer(
    help="The encoders available; `models pull` fetches a CLIP-style model's checkpoint.",
    invoke_without_command=True,
)
app.add_typer(models_app, name="models")


@models_app.callback()
def models_command(ctx: typer.Context) -> None:
    """The encoders available, their dimension, and whether their weights are here offline."""
    if ctx.invoked_subcommand is not None:
        return
    from imgsearch.cli.display import models_table

    typer.echo(models_table(open_index().models.available()))


@models_app.command("pull")
def models_pull_command(
    name: Annotated[
        str, typer.Argument(help="A CLIP-style model (clip-vit-b-32, ...), or a name of yours with --from.")
    ],
    source: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Install a checkpoint already on this machine instead of downloading: an open_clip "
            "checkpoint file, or a folder in the hub's layout (open_clip_config.json + weights), "
            "which can define a model of your own under NAME.",
        ),
    ] = None,
) -> None:
    """Put a model's checkpoint into the model cache: from the Hugging Face hub (progress shown,
    sha256 checked), or --from a file or folder; every command and the server then load it by NAME."""
    folder = open_index().models.pull(name, source)
    typer.echo(f"{name}: checkpoint in {folder}")


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=64, help="Worker processes (each loads the model once).")
    ] = 1,
    model: ModelOption = None,
    device: DeviceOption = None,
    backend: BackendOption = None,
    watch: Annotated[
        list[Path] | None,
        typer.Option("--watch", help="Also index this folder and keep it in step (repeatable; one worker)."),
    ] = None,
    replica: Annotated[
        str | None,
        typer.Option(
            "--replica",
            help="A read replica's URL (PostgreSQL streaming replication): searches go there, "
            "and to the database itself while it does not answer.",
        ),
    ] = None,
) -> None:
    """The HTTP API (OpenAPI at /docs) and the web page, on the same database as the CLI."""
    import functools

    import uvicorn
    from uvicorn.importer import import_from_string

    from imgsearch.library import Index

    if watch and workers > 1:
        echo_err("--watch needs --workers 1 (one process watches the folders).")
        raise typer.Exit(2)
    options = {"model": model, "device": device, "backend": backend, "replica_url": replica}
    updates: dict[str, object] = {name: value for name, value in options.items() if value}
    if watch:
        updates["serve_watch"] = tuple(str(p.absolute()) for p in watch)
    served = settings().model_copy(update=updates)  # the environment's, with this command's options
    # the service's startup, named the way uvicorn names apps (the CLI imports no service module)
    build = import_from_string("imgsearch.service.main:build")
    if workers == 1:
        uvicorn.run(build(served), host=host, port=port, log_level="info")
        return
    # Each worker process builds its app from `served`, an argument of the factory: uvicorn's
    # supervisor pickles its config (the factory with its settings) into every worker it spawns,
    # so nothing is handed over through the environment or a file. uvicorn.run() itself takes
    # only an import string for several workers; this is the same supervisor it runs then.
    from uvicorn.supervisors import Multiprocess

    with Index(settings=served) as index:
        index.prepare()  # the schema is migrated and the server started before workers start
    config = uvicorn.Config(
        functools.partial(build, served),
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
    )
    with contextlib.suppress(KeyboardInterrupt):
        Multiprocess(config, sockets=[config.bind_socket()]).run()
