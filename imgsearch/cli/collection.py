"""Commands over the whole collection: duplicates (list, decide, resolve), clusters, map."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from imgsearch.cli.app import ModelOption, app, echo_err, open_index

duplicates_app = typer.Typer(
    help="Groups of near-identical images, and decisions about them.", invoke_without_command=True
)
app.add_typer(duplicates_app, name="duplicates")


@duplicates_app.callback()
def duplicates_command(
    ctx: typer.Context,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            min=0.5,
            max=1.0,
            help="Cosine similarity at or above which two images "
            "are duplicates (default 0.85, see the README).",
        ),
    ] = None,
    folder: Annotated[str | None, typer.Option("--folder", help="Only images under this folder.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    model: ModelOption = None,
) -> None:
    """List duplicate groups, largest first, each with a suggested image to keep."""
    if ctx.invoked_subcommand is not None:
        return
    from imgsearch.tables import render, table

    groups = open_index(model).duplicates(threshold, folder=folder).groups
    if as_json:
        typer.echo(json.dumps({"groups": [g.to_json() for g in groups]}, ensure_ascii=False))
        return
    if not groups:
        typer.echo("no duplicates")
        return
    for g in groups:
        rows = [
            (
                "keep" if m.id == g.keep else "",
                m.id,
                f"{m.similarity:.3f}",
                f"{m.width}x{m.height}",
                f"{m.byte_size:,}",
                m.path,
            )
            for m in g.members
        ]
        typer.echo(
            render(
                f"group {g.id}: {len(g.members)} images"
                + (f"; keep {g.keep}: {', '.join(g.reasons)}" if g.reasons else ""),
                table(
                    ["", "id", "similarity", "size", "bytes", "path"],
                    rows,
                    right=["id", "similarity", "bytes"],
                ),
            )
            + "\n"
        )
    typer.echo(
        f"{len(groups)} groups; decide with `imgsearch duplicates decide`, then "
        "`imgsearch duplicates resolve`"
    )


@duplicates_app.command("decide")
def decide_command(
    image_ids: Annotated[list[int], typer.Argument(help="The group's image ids.")],
    keep: Annotated[
        int | None, typer.Option("--keep", help="Keep this one; the others are duplicates of it.")
    ] = None,
    not_duplicates: Annotated[
        bool,
        typer.Option("--not-duplicates", help="These images are not duplicates: never group them again."),
    ] = False,
) -> None:
    """Record a decision (it lasts across runs and re-ingests: it is kept by content)."""
    if (keep is None) == (not not_duplicates):
        echo_err("Give exactly one of --keep ID or --not-duplicates.")
        raise typer.Exit(2)
    decision = "not-duplicates" if not_duplicates else "keep"
    pairs = open_index().decide(image_ids, decision, keep)
    typer.echo(f"recorded {decision} for {pairs} pair{'s' if pairs != 1 else ''}")


@duplicates_app.command("resolve")
def resolve_command() -> None:
    """Forget (from the index; files are not touched) the images `keep` decisions rank lower."""
    removed = open_index().resolve_duplicates()
    typer.echo(f"removed {removed} duplicate image{'s' if removed != 1 else ''} from the index")


@app.command("clusters")
def clusters_command(
    n: Annotated[int | None, typer.Option("-n", "--n", min=2, max=10_000, help="How many clusters.")] = None,
    auto: Annotated[bool, typer.Option("--auto", help="Choose n by silhouette.")] = False,
    folder: Annotated[str | None, typer.Option("--folder", help="Only images under this folder.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    model: ModelOption = None,
) -> None:
    """K-Means over the stored vectors: each cluster's size and the images nearest its centre."""
    from imgsearch.tables import render, table

    if (n is None) == (not auto):
        echo_err("Give -n N or --auto.")
        raise typer.Exit(2)
    result = open_index(model).clusters(n, folder=folder)
    if as_json:
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False))
        return
    rows = [(c.cluster, c.size, "  ".join(m["path"] for m in c.nearest[:3])) for c in result.clusters_found]
    typer.echo(
        render(
            f"clustering {result.id}: {result.images:,} images of {result.model} in "
            f"{result.clusters} clusters ({result.method})",
            table(["cluster", "images", "nearest its centre"], rows, right=["cluster", "images"]),
        )
    )


@app.command("map")
def map_command(
    out: Annotated[Path, typer.Option("--out", help="map.html (hover, click) or map.png.")],
    method: Annotated[str, typer.Option("--method", help="pca, or umap (pip install umap-learn).")] = "pca",
    model: ModelOption = None,
) -> None:
    """A 2-D map of the collection: similar images end up close together."""
    map_id = open_index(model).map(out, method=method)
    typer.echo(f"map {map_id} written to {out}")
