"""Commands over the whole collection: duplicates (list, decide, resolve), clusters, map."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from imgsearch.cli.app import JsonFlag, ModelOption, app, echo_err, open_index, options_from
from imgsearch.cli.display import plural

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
            help="Cosine similarity at or above which two images are duplicates, for the whole "
            "collection (default: the calibrated rule, see --explain and docs/guide/collection.md).",
        ),
    ] = None,
    folder: Annotated[str | None, typer.Option("--folder", help="Only images under this folder.")] = None,
    as_json: JsonFlag = False,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate",
            help="Measure the margin on edited copies of a sample of the collection and store it.",
        ),
    ] = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show the rule in use and the stored calibration.")
    ] = False,
    decided: Annotated[
        bool, typer.Option("--decided", help="Also list the groups whose image to keep you chose.")
    ] = False,
    model: ModelOption = None,
) -> None:
    """List duplicate groups, largest first, each with a suggested image to keep."""
    if ctx.invoked_subcommand is not None:
        return
    from imgsearch.cli.tables import render, table
    from imgsearch.collection.duplicates import DuplicateQuery

    index = open_index(model)
    if calibrate:
        calibration = index.calibrate_duplicates(model)
        if as_json:
            typer.echo(json.dumps(calibration.to_json(), ensure_ascii=False))
        else:
            typer.echo(_calibrated(calibration))
            typer.echo(render(_margin_table(calibration)))
        return
    if explain:
        typer.echo(_explain(index, model, threshold))
        return
    if threshold is None and index.duplicate_calibration(model) is None:
        from imgsearch.errors import ImgsearchError

        try:
            echo_err(_calibrated(index.calibrate_duplicates(model)))
        except ImgsearchError as exc:
            echo_err(f"not calibrated ({exc}); the default margin is used")
    page = index.duplicates(options_from(DuplicateQuery, ctx.params))
    groups = page.groups
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "rule": page.rule,
                    "margin": page.margin,
                    "threshold": page.threshold,
                    "groups": [g.to_json() for g in groups],
                },
                ensure_ascii=False,
            )
        )
        return
    if not groups:
        typer.echo(f"no duplicates ({_rule(page)})")
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
        f"{plural(len(groups), 'group')} ({_rule(page)}); decide with "
        "`imgsearch duplicates decide`, then "
        "`imgsearch duplicates resolve`"
    )


def _rule(page) -> str:
    """How a page's groups were found, in a few words."""
    if page.rule == "threshold":
        return f"similarity {page.threshold:g} or more"
    return f"{'calibrated' if page.rule == 'calibrated' else 'default'} margin {page.margin:.2f}"


def _calibrated(c) -> str:
    found = f"calibrated on {c.images} images: margin {c.margin:.2f}"
    if c.negatives <= 1.0 - c.target + 1e-9:
        return f"{found} (expected recall {c.recall:.3f} at precision {c.target:g})"
    # no margin reached the target: the one chosen links the fewest copies to unrelated images
    return (
        f"{found} (expected recall {c.recall:.3f}; no margin reaches precision {c.target:g}: "
        f"this one, the closest, links {c.negatives:.3f} of the copies to an unrelated image)"
    )


def _margin_table(c):
    from imgsearch.cli.tables import table

    return table(
        ["margin", "copies linked (recall)", "linked to an unrelated image"],
        [
            (
                ("* " if row["margin"] == c.margin else "") + f"{row['margin']:.2f}",
                f"{row['recall']:.3f}",
                f"{row['negatives']:.3f}",
            )
            for row in c.table
        ],
        right=["margin", "copies linked (recall)", "linked to an unrelated image"],
    )


def _explain(index, model: str | None, threshold: float | None) -> str:
    """The rule `imgsearch duplicates` uses with these options, and the stored calibration."""
    from imgsearch.cli.tables import render
    from imgsearch.collection.duplicates import BACKGROUND, DEFAULT_MARGIN, FALLBACK_THRESHOLD, NEIGHBOURS

    calibration = index.duplicate_calibration(model)
    contrast = (
        f"each image's {NEIGHBOURS} nearest neighbours are duplicates when their similarity "
        f"exceeds both images' background (the median similarity of their neighbours ranked "
        f"{BACKGROUND[0] + 1} to {BACKGROUND[1]}) by the margin; an image with fewer than "
        f"{BACKGROUND[1]} neighbours needs similarity {FALLBACK_THRESHOLD} or more"
    )
    if threshold is not None:
        lines = [
            f"rule: threshold: similarity {threshold:g} or more to one of an image's {NEIGHBOURS} "
            "nearest neighbours (--threshold overrides the calibration)"
        ]
    elif calibration is not None:
        lines = [f"rule: calibrated margin {calibration.margin:.2f}: {contrast}"]
    else:
        lines = [f"rule: default margin {DEFAULT_MARGIN:.2f}: {contrast}"]
    if calibration is None:
        name = model or index.model
        lines.append(
            f"no calibration stored for {name}: `imgsearch duplicates --calibrate` measures one "
            "(a plain `imgsearch duplicates` does so the first time)"
        )
        return "\n".join(lines)
    when = calibration.created_at.strftime("%Y-%m-%d %H:%M %Z") if calibration.created_at else "?"
    p = calibration.percentiles
    lines += [
        f"calibration of {calibration.encoder}: margin {calibration.margin:.2f}, measured {when} "
        f"in {calibration.seconds:g} s",
        f"sample: {calibration.images} images, {calibration.copies} edited copies (seed {calibration.seed})",
        f"expected recall {calibration.recall:.3f} (the sample's random copies that reach the margin: "
        "low where many images look alike, whose copies no margin can tell apart); "
        f"copies linked to an unrelated image "
        f"{calibration.negatives:.3f} (target precision {calibration.target:g})",
    ]
    for key, words in (
        ("copy_contrast", "copy to its original, over the background"),
        ("unrelated_contrast", "copy to the nearest unrelated image, over the background"),
        ("copy_similarity", "copy to its original, similarity"),
    ):
        if p.get(key):
            lines.append(f"percentiles 5/25/50/75/95, {words}: " + " ".join(f"{v:.3f}" for v in p[key]))
    return "\n".join(lines) + "\n" + render(_margin_table(calibration))


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
    typer.echo(f"recorded {decision} for {plural(pairs, 'pair')}")


@duplicates_app.command("resolve")
def resolve_command() -> None:
    """Forget (from the index; files are not touched) the images `keep` decisions rank lower."""
    removed = open_index().resolve_duplicates()
    typer.echo(f"removed {plural(removed, 'duplicate image')} from the index")


@app.command("clusters")
def clusters_command(
    n: Annotated[int | None, typer.Option("-n", "--n", min=2, max=10_000, help="How many clusters.")] = None,
    auto: Annotated[bool, typer.Option("--auto", help="Choose n by silhouette.")] = False,
    folder: Annotated[str | None, typer.Option("--folder", help="Only images under this folder.")] = None,
    as_json: JsonFlag = False,
    model: ModelOption = None,
) -> None:
    """K-Means over the stored vectors: each cluster's size and the images nearest its centre."""
    from imgsearch.cli.tables import render, table

    if (n is None) == (not auto):
        echo_err("Give -n N or --auto.")
        raise typer.Exit(2)
    result = open_index(model).clusters(n, folder=folder)
    if as_json:
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False))
        return
    rows = [(c.cluster, c.size, "  ".join(m.path for m in c.nearest[:3])) for c in result.clusters_found]
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
