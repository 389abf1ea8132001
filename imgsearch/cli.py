"""The `imgsearch` command line: a thin Typer layer over the library."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from . import config
from .errors import ImgsearchError

app = typer.Typer(help="Image similarity search with PostgreSQL + pgvector as the index.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="The database: migrations, status, connection URL.", no_args_is_help=True)
app.add_typer(db_app, name="db")
index_app = typer.Typer(help="pgvector ANN indexes (one per encoder).", no_args_is_help=True)
app.add_typer(index_app, name="index")


def _echo_err(message: str) -> None:
    typer.echo(message, err=True)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Alembic revision to upgrade to.")) -> None:
    """Apply Alembic migrations (they also apply automatically on first use)."""
    from .database import ensure_pgvector, resolve
    from .migrate import current_revision, upgrade

    db = resolve()
    ensure_pgvector(db)
    upgrade(db, revision)
    typer.echo(f"{db.describe()}: schema at revision {current_revision(db)}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Alembic revision, or 'base'.")) -> None:
    """Revert Alembic migrations (`base` removes every imgsearch table)."""
    from .database import resolve
    from .migrate import current_revision, downgrade

    db = resolve()
    downgrade(db, revision)
    typer.echo(f"{db.describe()}: schema at revision {current_revision(db) or 'base'}")


@db_app.command("status")
def db_status() -> None:
    """Server, PostgreSQL and pgvector versions, schema revision, row counts."""
    from .database import ensure_pgvector, resolve
    from .status import database_status

    db = resolve()
    ensure_pgvector(db)
    s = database_status(db)
    head_note = "head" if s.at_head else f"behind head {s.head}: run `imgsearch db upgrade`"
    typer.echo(f"server:      {s.server}")
    typer.echo(f"postgresql:  {s.postgres_version}")
    typer.echo(f"pgvector:    {s.pgvector_version}")
    typer.echo(f"revision:    {s.revision or 'none'} ({head_note})")
    for table, rows in s.table_rows.items():
        typer.echo(f"  {table:<14} {rows:>10,} rows")
    for enc in s.encoders:
        typer.echo(f"  encoder {enc.name} ({enc.dimension}-d, {enc.weights}): "
                   f"{enc.embeddings:,} embeddings")


@db_app.command("url")
def db_url() -> None:
    """Print a URL that psql or another application can connect with."""
    from .database import resolve

    typer.echo(resolve().url)


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded server (it restarts on the next imgsearch command)."""
    from . import embedded

    if config.database_url_from_env():
        _echo_err("IMGSEARCH_DATABASE_URL is set: imgsearch does not manage that server.")
        raise typer.Exit(1)
    stopped = embedded.stop(config.home())
    typer.echo("embedded server stopped" if stopped else "embedded server was not running")


ModelOption = Annotated[str | None, typer.Option(
    "--model", "-m", help="Encoder name (see `imgsearch models`); default IMGSEARCH_MODEL.")]
DeviceOption = Annotated[str, typer.Option(
    "--device", envvar="IMGSEARCH_DEVICE",
    help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")]


@app.command("ingest")
def ingest_command(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Files or folders to index (folders recursively).", show_default=False)] = None,
    model: ModelOption = None,
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", min=1, max=4096, help="Images per encoder batch and per transaction.")] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, max=256, help="Parallel readers/decoders (default: CPU count).")] = None,
    device: DeviceOption = "auto",
    manifest: Annotated[Path | None, typer.Option(
        "--manifest", help="CSV with a `path` or `url` column; other columns become metadata.")] = None,
    follow_symlinks: Annotated[bool, typer.Option(
        "--follow-symlinks", help="Enter symlinked folders (each once).")] = False,
    weights: Annotated[Path | None, typer.Option(
        "--weights", help="A state-dict file for the model (offline use).")] = None,
    rehash: Annotated[bool, typer.Option(
        "--rehash", help="Also hash files whose size and mtime are unchanged; re-encode those "
        "whose content changed.")] = False,
    prune: Annotated[bool, typer.Option(
        "--prune", help="Remove indexed files under the given folders that are gone.")] = False,
) -> None:
    """Index images: new and changed files are encoded, unchanged ones skipped."""
    from .ingest import ingest
    from .models import get_encoder
    from .progress import progress_display

    if not paths and manifest is None:
        _echo_err("Give at least one PATH or --manifest CSV.")
        raise typer.Exit(2)
    encoder = get_encoder(model, device, weights)
    try:
        with progress_display() as show:
            report = ingest(paths or (), manifest=manifest, encoder=encoder, batch_size=batch_size,
                            workers=workers, follow_symlinks=follow_symlinks, rehash=rehash,
                            prune_gone=prune, progress=show)
    except FileNotFoundError as exc:
        _echo_err(f"error: {exc}")
        raise typer.Exit(2) from exc
    rate = report.encoded / report.seconds if report.seconds else 0.0
    typer.echo(f"{report.model}: {report.new} new, {report.updated} updated, "
               f"{report.unchanged} unchanged, {report.failed} failed "
               f"({report.encoded} encoded in {report.seconds:.1f}s, {rate:.1f} images/s)")
    for failure in report.failures:
        typer.echo(f"  failed: {failure.location}: {failure.message} [{failure.kind}]")
    if report.pruned:
        typer.echo(f"removed {report.pruned} indexed files that are gone from these folders")
    elif report.gone:
        typer.echo(f"{report.gone} indexed files under these folders are gone: "
                   "`--prune` removes them from the index")
    if report.interrupted:
        typer.echo("interrupted: what was written is kept; run the same command to continue.")
        raise typer.Exit(130)
    raise typer.Exit(report.exit_code)


MAX_K = 10_000  # imgsearch.search.MAX_K, repeated here so that --help imports nothing heavy


def _similarity_range(value: float | None) -> float | None:
    if value is not None and not (math.isfinite(value) and -1.0 <= value <= 1.0):
        raise typer.BadParameter(f"{value} is not a number between -1 and 1.")
    return value


@app.command("search")
def search_command(
    query: Annotated[str, typer.Argument(help="Image file, http(s) URL, or id:<image id>.")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=MAX_K, help="How many results.")] = 5,
    model: ModelOption = None,
    min_similarity: Annotated[float | None, typer.Option(
        "--min-similarity", callback=_similarity_range,
        help="Drop results below this cosine similarity (-1..1).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    grid: Annotated[Path | None, typer.Option(
        "--grid", help="Also write the query and its matches side by side to this PNG.")] = None,
    device: DeviceOption = "auto",
    weights: Annotated[Path | None, typer.Option(
        "--weights", help="The state-dict file the images were ingested with.")] = None,
    ef_search: Annotated[int | None, typer.Option(
        "--ef-search", min=1, max=1000, help="HNSW candidate list size (recall vs speed).")] = None,
    probes: Annotated[int | None, typer.Option(
        "--probes", min=1, max=32768, help="IVFFlat lists to visit (recall vs speed).")] = None,
    exact: Annotated[bool, typer.Option("--exact", help="Exact scan, no index.")] = False,
    where: Annotated[list[str] | None, typer.Option(
        "--where", help="Metadata filter key=value (repeatable).")] = None,
) -> None:
    """Find the indexed images most similar to QUERY."""
    from .search import QueryOptions, parse_image_id, search

    filters = {}
    for item in where or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _echo_err(f"--where {item!r}: expected key=value")
            raise typer.Exit(2)
        filters[key] = value
    options = QueryOptions(ef_search, probes, exact, filters or None)

    encoder = None
    if parse_image_id(query) is None:
        from .models import get_encoder

        encoder = get_encoder(model, device, weights)
    result = search(query, k, model=model, encoder=encoder, min_similarity=min_similarity,
                    options=options)
    if grid is not None:
        from .grid import save_grid

        save_grid(result, grid)
    if as_json:
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False))
        return
    if not result.results:
        typer.echo("no close match" if min_similarity is not None else "no results")
        return
    typer.echo(f"{'rank':>4}  {'similarity':>10}  path")
    for m in result.results:
        title = f"  ({m.title})" if m.title else ""
        typer.echo(f"{m.rank:>4}  {m.similarity:>10.4f}  {m.path}{title}  [id:{m.image_id}]")
    if grid is not None:
        typer.echo(f"grid written to {grid}")


@app.command("evaluate")
def evaluate_command(
    folder: Annotated[Path, typer.Argument(
        help="One sub-folder per class (or any folder with --labels / --near-duplicates).")],
    model: Annotated[list[str] | None, typer.Option(
        "--model", "-m", help="Encoder to evaluate; repeat to compare several.")] = None,
    k: Annotated[str, typer.Option("--k", help="Cut-offs, comma-separated.")] = "1,5,10",
    labels: Annotated[Path | None, typer.Option(
        "--labels", help="CSV with path,label columns (paths relative to FOLDER).")] = None,
    near_duplicates: Annotated[bool, typer.Option(
        "--near-duplicates", help="Copy detection instead: edited copies must find their original "
        "(no labels needed).")] = False,
    exact: Annotated[bool, typer.Option(
        "--exact", help="Skip the ANN index check (quality is always ranked exactly).")] = False,
    sample: Annotated[int | None, typer.Option(
        "--sample", min=1, help="Query with a seeded random subset of this many images.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    device: DeviceOption = "auto",
) -> None:
    """Measure retrieval quality on your own images: leave-one-out P@k, R@k, mAP, MRR."""
    from .progress import progress_display

    try:
        ks = [int(v) for v in k.split(",") if v.strip()]
    except ValueError:
        _echo_err(f"--k {k!r}: expected comma-separated integers such as 1,5,10")
        raise typer.Exit(2) from None
    from .evaluate import evaluate, evaluation_table
    from .nearduplicates import near_duplicates as copy_detection
    from .nearduplicates import near_duplicates_table

    with progress_display() as show:
        if near_duplicates:
            result = copy_detection(folder, models=model or (), ks=ks, sample=sample,
                                    device=device, progress=show, status=_echo_err)
            text = near_duplicates_table(result)
        else:
            result = evaluate(folder, models=model or (), ks=ks, labels_csv=labels, exact=exact,
                              sample=sample, device=device, progress=show)
            text = evaluation_table(result)
    typer.echo(json.dumps(result.to_json(), ensure_ascii=False) if as_json else text)


@index_app.command("create")
def index_create(
    model: ModelOption = None,
    kind: Annotated[str, typer.Option("--kind", help="hnsw or ivfflat.")] = "hnsw",
    m: Annotated[int, typer.Option("--m", min=2, help="HNSW links per node.")] = 16,
    ef_construction: Annotated[int, typer.Option(
        "--ef-construction", min=4, help="HNSW build candidate list.")] = 64,
    lists: Annotated[int | None, typer.Option(
        "--lists", min=1, help="IVFFlat lists (default: from the row count).")] = None,
) -> None:
    """Build the encoder's ANN index (replacing any existing one)."""
    from .database import open_database
    from .indexes import create_index

    name, warnings = create_index(open_database(), model or config.default_model(), kind, m=m,
                                  ef_construction=ef_construction, lists=lists,
                                  progress=lambda line: _echo_err(f"building: {line}"))
    for warning in warnings:
        _echo_err(f"warning: {warning}")
    typer.echo(f"created index {name}")


@index_app.command("drop")
def index_drop(model: ModelOption = None) -> None:
    """Drop the encoder's ANN index (searches fall back to an exact scan)."""
    from .database import open_database
    from .indexes import drop_index

    dropped = drop_index(open_database(), model or config.default_model())
    typer.echo(f"dropped {', '.join(dropped)}" if dropped else "no index to drop")


@index_app.command("status")
def index_status_command() -> None:
    """Per encoder: kind, parameters, size, rows, validity, rebuild advice."""
    from .database import open_database
    from .indexes import index_status

    statuses = index_status(open_database())
    if not statuses:
        typer.echo("no ANN indexes: searches use exact scans (`imgsearch index create`)")
    for s in statuses:
        advice = "  REBUILD ADVISED (table grew since build)" if s.rebuild_advised else ""
        typer.echo(f"{s.encoder}: {s.kind} ({s.parameters}) {s.size_bytes / 2**20:.1f} MiB, "
                   f"{s.rows:,} rows, {'valid' if s.valid else 'INVALID'}{advice}")


@app.command("prune")
def prune_command() -> None:
    """Remove indexed images whose files are gone (and their vectors)."""
    from .prune import prune

    removed = prune()
    typer.echo(f"removed {removed} image{'s' if removed != 1 else ''} whose files are gone")


@app.command("models")
def models_command() -> None:
    """The encoders available, their dimension, and whether their weights are here offline."""
    from .models import list_models

    typer.echo(f"{'name':<30} {'dim':>5}  {'weights':<9} source / where")
    for m in list_models():
        present = "present" if m.weights_present else "missing"
        typer.echo(f"{m.name:<30} {m.dimension:>5}  {present:<9} {m.source}: {m.weights_location}")


def main() -> None:
    """Run the CLI: every error a user can cause or meet is one sentence, never a traceback
    (IMGSEARCH_DEBUG=1 shows the traceback of an unexpected one)."""
    try:
        app()
    except ImgsearchError as exc:
        _echo_err(f"error: {exc}")
        sys.exit(2)
    except KeyboardInterrupt:
        _echo_err("interrupted")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("IMGSEARCH_DEBUG"):
            raise
        _echo_err(f"error: {_describe(exc)}")
        sys.exit(1)


def _describe(exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if type(exc).__module__.split(".")[0] in ("psycopg", "sqlalchemy"):
        return (f"the database answered with an error ({first or type(exc).__name__}); "
                "what was written before is kept.")
    return (f"unexpected {type(exc).__name__}: {first} (set IMGSEARCH_DEBUG=1 to see the "
            "traceback, and please report it).")
