"""`imgsearch train`: derived encoders fitted on the collection (heads, PCA)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from imgsearch.cli.app import BackendOption, DeviceOption, app, open_index


@app.command("train")
def train_command(
    folder: Annotated[
        Path | None,
        typer.Argument(
            help="Labelled images, one sub-folder per class (any images with --self-supervised; "
            "optional with --pca).",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str,
        typer.Option(
            "--name",
            help="The new encoder's name: search, evaluate and serve with --model NAME, "
            "SQL with encoder => 'NAME'.",
        ),
    ] = "",
    base: Annotated[
        str | None,
        typer.Option(
            "--base", help="The encoder whose stored vectors are projected (default IMGSEARCH_MODEL)."
        ),
    ] = None,
    dim: Annotated[int, typer.Option("--dim", min=2, max=4096, help="Head output dimension.")] = 256,
    epochs: Annotated[int, typer.Option("--epochs", min=1, max=1000)] = 60,
    loss: Annotated[str, typer.Option("--loss", help="supcon or triplet (batch-hard).")] = "supcon",
    seed: Annotated[int, typer.Option("--seed", help="Seeds sampling and initialisation.")] = 0,
    labels: Annotated[
        Path | None, typer.Option("--labels", help="CSV with path,label columns instead of sub-folders.")
    ] = None,
    pca: Annotated[
        int | None,
        typer.Option(
            "--pca",
            min=1,
            max=4096,
            help="Fit PCA to this many dimensions instead of a head "
            "(on FOLDER's images, else on the whole collection).",
        ),
    ] = None,
    whiten: Annotated[bool, typer.Option("--whiten", help="With --pca: whiten the components.")] = False,
    self_supervised: Annotated[
        bool,
        typer.Option(
            "--self-supervised",
            help="No labels: train so that random edits (crop, rotation, grey, "
            "brightness, JPEG, border, caption bar) find their original.",
        ),
    ] = False,
    copies: Annotated[
        int, typer.Option("--copies", min=1, max=32, help="With --self-supervised: edits per image.")
    ] = 8,
    device: DeviceOption = None,
    backend: BackendOption = None,
) -> None:
    """Fit a derived encoder on stored vectors (no image is decoded again) and register it."""
    from imgsearch.cli.display import progress_display
    from imgsearch.learning.train import TrainOptions

    index = open_index(base, device, backend)
    name = name or _default_name(folder, pca, whiten, self_supervised)
    options = TrainOptions(dim=dim, epochs=epochs, loss=loss, seed=seed)
    with progress_display() as show:
        report = index.train(
            name,
            folder,
            base=base,
            labels_csv=labels,
            pca=pca,
            whiten=whiten,
            self_supervised=self_supervised,
            copies=copies,
            options=options,
            progress=show,
        )
    saved = 1 - report.bytes_per_vector / report.base_bytes_per_vector
    what = f"{report.classes} classes, " if report.kind == "head" else ""
    typer.echo(
        f"{report.name}: {report.kind} of {report.base}, {report.dimension} dimensions, "
        f"fitted on {report.images} images ({what}{report.seconds:.1f} s)"
    )
    typer.echo(
        f"  {report.filled} vectors computed from stored {report.base} vectors; "
        f"{report.bytes_per_vector:,} bytes a vector vs {report.base_bytes_per_vector:,} "
        f"({abs(saved):.0%} {'less' if saved >= 0 else 'more'} storage)"
    )
    typer.echo(
        f"  use it: imgsearch search IMG --model {report.name}   "
        f"(quality: imgsearch evaluate DIR --model {report.base} --model {report.name})"
    )


def _default_name(folder: Path | None, pca: int | None, whiten: bool, self_supervised: bool) -> str:
    stem = folder.absolute().name if folder else "collection"
    if pca is not None:
        return f"{stem}-pca{pca}{'w' if whiten else ''}"
    return f"{stem}-{'ssl' if self_supervised else 'head'}"
