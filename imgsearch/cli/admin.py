"""Commands that look after the database and its ANN indexes: `db ...`, `index ...`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from imgsearch.cli.app import ModelOption, db_app, echo_err, index_app, open_index, options_from

if TYPE_CHECKING:
    from imgsearch.db.search_settings import SearchSettings


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Alembic revision to upgrade to.")) -> None:
    """Apply Alembic migrations (they also apply automatically on first use)."""
    database = open_index().database
    now = database.upgrade(revision)
    typer.echo(f"{database.describe()}: schema at revision {now}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Alembic revision, or 'base'.")) -> None:
    """Revert Alembic migrations (`base` removes every imgsearch table)."""
    database = open_index().database
    now = database.downgrade(revision)
    typer.echo(f"{database.describe()}: schema at revision {now or 'base'}")


@db_app.command("status")
def db_status() -> None:
    """Server, PostgreSQL and pgvector versions, schema revision, row counts."""
    from imgsearch.cli.tables import render, table

    s = open_index().database.status()
    head_note = "head" if s.at_head else f"behind head {s.head}: run `imgsearch db upgrade`"
    typer.echo(f"server:      {s.server}")
    typer.echo(f"postgresql:  {s.postgres_version}")
    typer.echo(f"pgvector:    {s.pgvector_version}")
    typer.echo(f"revision:    {s.revision or 'none'} ({head_note})")
    shown = [
        (n, v + (" (after a restart: `imgsearch db stop`)" if pending else ""))
        for n, v, pending in s.settings
    ]
    typer.echo(render("", table(["setting", "value"], shown)))
    if s.table_rows:
        counts = [(name, f"{count:,}") for name, count in s.table_rows.items()]
        typer.echo(render("", table(["table", "rows"], counts, right=["rows"])))
    if s.encoders:
        encoders = [(e.name, e.dimension, e.weights, f"{e.embeddings:,}") for e in s.encoders]
        typer.echo(
            render(
                "", table(["encoder", "dim", "weights", "embeddings"], encoders, right=["dim", "embeddings"])
            )
        )


@db_app.command("url")
def db_url() -> None:
    """Print a URL that psql or another application can connect with."""
    typer.echo(open_index().database.url())


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded server (it restarts on the next imgsearch command)."""
    database = open_index().database
    if not database.embedded:
        echo_err("IMGSEARCH_DATABASE_URL is set: imgsearch does not manage that server.")
        raise typer.Exit(2)
    stopped = database.stop()
    typer.echo("embedded server stopped" if stopped else "embedded server was not running")


RecallOption = Annotated[
    float,
    typer.Option(
        "--recall",
        min=0.0,
        max=1.0,
        help="Recall@k searches should reach: the cheapest index setting that does is measured and "
        "kept for this encoder (0: keep pgvector's defaults).",
    ),
]


@index_app.command("create")
def index_create(
    ctx: typer.Context,
    model: ModelOption = None,
    kind: Annotated[str, typer.Option("--kind", help="hnsw or ivfflat.")] = "hnsw",
    m: Annotated[int, typer.Option("--m", min=2, max=100, help="HNSW links per node.")] = 16,
    ef_construction: Annotated[
        int, typer.Option("--ef-construction", min=4, max=1000, help="HNSW build candidate list.")
    ] = 64,
    lists: Annotated[
        int | None,
        typer.Option("--lists", min=1, max=32768, help="IVFFlat lists (default: from the row count)."),
    ] = None,
    quantize: Annotated[
        str | None,
        typer.Option(
            "--quantize",
            help="binary: index 1 bit per dimension (a 16th of the size) and re-rank its "
            "candidates by exact distance (HNSW only).",
        ),
    ] = None,
    recall: RecallOption = 0.95,
) -> None:
    """Build the encoder's ANN index (replacing any existing one), then tune it to --recall."""
    from imgsearch.cli.display import progress_display
    from imgsearch.library.admin import IndexBuild

    index = open_index(model)
    with progress_display() as show:
        name, warnings = index.ann.create(model, options_from(IndexBuild, ctx.params), progress=show)
    for warning in warnings:
        echo_err(f"warning: {warning}")
    typer.echo(f"created index {name}")
    if recall > 0:
        from imgsearch.errors import ImgsearchError

        try:
            _tune(index, recall, 10, 300)
        except ImgsearchError as exc:  # too few vectors to measure: the index stands
            echo_err(f"note: not tuned: {exc}")


def _tune(index, recall: float, k: int, queries: int) -> None:
    from imgsearch.cli.display import progress_display

    model = index.model
    with progress_display() as show:
        result = index.ann.tune(model, recall, k=k, queries=queries, progress=show)
    for step in result.steps:
        shown = f"recall@{k} {step.recall:.3f}, p50 {step.p50_ms:.2f} ms"
        typer.echo(f"  {result.parameter} {step.setting:>5}: {shown}")
    chosen = result.chosen
    setting = chosen.setting[1]
    if result.reached:
        typer.echo(
            f"{model}: searches use {result.parameter} {setting} (recall@{k} {chosen.recall:.3f} for "
            f"{chosen.queries} queries as hard as new images, >= {result.required:.3f} asked for "
            f"{recall}; p50 {chosen.p50_ms:.2f} ms)"
        )
    else:
        remedy = (
            "binary quantisation loses too much of this collection's vectors: rebuild the index "
            "without --quantize (halfvec), or use exact scans."
            if result.parameter == "rerank"
            else "rebuild the index with more links (--m, --ef-construction) or more lists, "
            "or use exact scans."
        )
        echo_err(
            f"warning: {model}: recall@{k} {chosen.recall:.3f} at {result.parameter} {setting}, "
            f"the most tried, is below the {result.required:.3f} asked for {recall}: {remedy}"
        )


@index_app.command("tune")
def index_tune(
    model: ModelOption = None,
    recall: RecallOption = 0.95,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=1000, help="Recall is measured at k.")] = 10,
    queries: Annotated[
        int,
        typer.Option(
            "--queries", min=10, max=2_000, help="Queries measured (each made from a stored vector)."
        ),
    ] = 300,
) -> None:
    """Measure the index's recall@k on the collection's own vectors (against an exact scan) and
    keep the cheapest ef_search / probes that reaches --recall; searches then use it."""
    if recall <= 0:
        echo_err("--recall must be above 0.")
        raise typer.Exit(2)
    _tune(open_index(model), recall, k, queries)


@index_app.command("drop")
def index_drop(model: ModelOption = None) -> None:
    """Drop the encoder's ANN index (searches fall back to an exact scan)."""
    dropped = open_index(model).ann.drop()
    typer.echo(f"dropped {', '.join(dropped)}" if dropped else "no index to drop")


@index_app.command("status")
def index_status_command() -> None:
    """Per encoder: kind, parameters, size, rows, validity, rebuild advice."""
    from imgsearch.cli.tables import render, table

    statuses = open_index().ann.status()
    if not statuses:
        typer.echo("no ANN indexes: searches use exact scans (`imgsearch index create`)")
        return
    rows = [
        (
            s.encoder,
            s.kind,
            s.parameters,
            f"{s.size_bytes / 2**20:.1f} MiB",
            f"{s.rows:,}",
            _tuning(s.tuning),
            "valid" if s.valid else "INVALID",
            "REBUILD ADVISED (table grew since build)"
            if s.rebuild_advised
            else "RE-TUNE ADVISED (rows doubled since `index tune`)"
            if s.retune_advised
            else "",
        )
        for s in statuses
    ]
    typer.echo(
        render(
            table(
                ["encoder", "kind", "parameters", "size", "rows", "searches use", "state", "advice"],
                rows,
                right=["size", "rows"],
            )
        )
    )


def _tuning(tuning: SearchSettings | None) -> str:
    if tuning is None:
        return "pgvector defaults (not tuned: `imgsearch index tune`)"
    name, value = tuning.setting
    return (
        f"{name} {value}: recall@{tuning.k} {tuning.recall:.3f}, p50 {tuning.p50_ms:.2f} ms "
        f"({tuning.rows_at_tuning:,} rows, {tuning.tuned_at:%Y-%m-%d})"
    )


@db_app.command("drop-encoder")
def db_drop_encoder(
    name: Annotated[str, typer.Argument(help="The encoder whose vectors are deleted.")],
    cascade: Annotated[
        bool, typer.Option("--cascade", help="Also drop the encoders derived from it (`imgsearch train`).")
    ] = False,
) -> None:
    """Delete one encoder's vectors and registration (images and other encoders stay)."""
    dropped = open_index().database.drop_encoder(name, cascade)
    typer.echo(f"dropped {', '.join(dropped)}")


@db_app.command("partition")
def db_partition(
    count: Annotated[
        int, typer.Option("--count", min=1, max=256, help="Hash partitions by image id (1: a plain table).")
    ],
) -> None:
    """Rebuild the vectors table as N hash partitions, each with its own ANN indexes (one
    transaction; the SQL interface is unchanged)."""
    report = open_index().database.partition(count)
    layout = f"{report.partitions} hash partitions" if report.partitions > 1 else "one table"
    each = " on each" if report.partitions > 1 else ""
    rebuilt = f"; rebuilt {', '.join(report.indexes)}{each}" if report.indexes else ""
    typer.echo(f"embeddings: {report.rows:,} rows in {layout}{rebuilt} ({report.seconds:.1f} s)")
