"""`imgsearch train`: derived encoders fitted on the collection (heads, PCA)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from imgsearch.cli.app import BackendOption, DeviceOption, LabelsOption, app, echo_err, open_index

if TYPE_CHECKING:
    from imgsearch.learning.finetune import FinetuneOptions

FinetuneFlag = Annotated[
    bool,
    typer.Option(
        "--finetune",
        help="Fine-tune EfficientNet-Lite0's last stages on the images (CPU, minutes): "
        "a whole new encoder, ingested and searched like any (see docs/guide/learning.md).",
    ),
]
FirstBlockOption = Annotated[
    int,
    typer.Option(
        "--first-block",
        min=1,
        max=15,
        help="With --finetune: the first of the 16 blocks trained (8: the last three stages).",
    ),
]
SizeOption = Annotated[
    int,
    typer.Option("--size", min=96, max=640, help="With --finetune: input side in pixels."),
]
RotationsFlag = Annotated[
    bool,
    typer.Option(
        "--rotations",
        help="With --finetune: also train on upside-down and 90°-turned views "
        "(images with no 'up': cells, microscopy, satellite).",
    ),
]
LrOption = Annotated[float, typer.Option("--lr", min=1e-6, max=1.0, help="With --finetune: learning rate.")]


def finetune_options(
    epochs: int | None, first_block: int, size: int, rotations: bool, lr: float, seed: int
) -> FinetuneOptions:
    from imgsearch.learning.finetune import FinetuneOptions

    o = FinetuneOptions(first_block=first_block, size=size, rotations=rotations, lr=lr, seed=seed)
    if epochs is not None:
        o.epochs = epochs
    return o


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
    epochs: Annotated[
        int | None, typer.Option("--epochs", min=1, max=1000, help="Default 60 (a head), 15 (--finetune).")
    ] = None,
    loss: Annotated[str, typer.Option("--loss", help="supcon or triplet (batch-hard).")] = "supcon",
    seed: Annotated[int, typer.Option("--seed", help="Seeds sampling and initialisation.")] = 0,
    labels: LabelsOption = None,
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
        int | None,
        typer.Option(
            "--copies", min=1, max=32, help="With --self-supervised: edits per image (8; 4 with --finetune)."
        ),
    ] = None,
    captions: Annotated[
        Path | None,
        typer.Option(
            "--captions",
            help="CSV with path,caption columns (paths relative to FOLDER): re-align a CLIP-style "
            "base's pictures and words on these captions (CPU, minutes).",
        ),
    ] = None,
    finetune: FinetuneFlag = False,
    first_block: FirstBlockOption = 8,
    size: SizeOption = 224,
    rotations: RotationsFlag = False,
    lr: LrOption = 1e-4,
    device: DeviceOption = None,
    backend: BackendOption = None,
) -> None:
    """Fit a derived encoder on stored vectors (no image is decoded again) and register it."""
    from imgsearch.cli.display import progress_display
    from imgsearch.learning.derive import Training
    from imgsearch.learning.train import TrainOptions

    index = open_index(base, device, backend)
    name = name or _default_name(folder, pca, whiten, self_supervised, finetune, captions is not None)
    options = TrainOptions(dim=dim, epochs=epochs or 60, loss=loss, seed=seed)
    if captions is not None and finetune:
        echo_err("--captions and --finetune are two different trainings: choose one.")
        raise typer.Exit(2)
    if captions is not None:
        options = TrainOptions(epochs=epochs or 30, lr=1e-3, seed=seed)
    tuning = finetune_options(epochs, first_block, size, rotations, lr, seed) if finetune else None
    if tuning is not None and copies is not None:
        tuning.edits = copies
    with progress_display() as show:
        training = Training(
            labels_csv=labels,
            pca=pca,
            whiten=whiten,
            self_supervised=self_supervised,
            copies=copies or 8,
            captions_csv=captions,
            options=options,
            finetune=tuning,
        )
        report = index.train(name, folder, training, base=base, progress=show)
    if tuning is not None:
        d = report.details
        typer.echo(
            f"{report.name}: {report.kind} {report.base} (blocks {tuning.first_block}-15, "
            f"{tuning.size} px), {report.images} images, {d['views']} views cached, "
            f"{tuning.epochs} epochs in {report.seconds:.0f} s on {d['threads']} threads"
        )
        typer.echo(
            f"  weights kept in the database (sha256 {d.get('sha256', '')[:12]}); "
            "vectors come from ingesting:"
        )
        typer.echo(
            f"  imgsearch ingest DIR --model {report.name}   then: imgsearch search IMG --model {report.name}"
        )
        return
    saved = 1 - report.bytes_per_vector / report.base_bytes_per_vector
    what = {"head": f"{report.classes} classes, ", "joint (captions)": f"{report.classes} captions, "}.get(
        report.kind, ""
    )
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


def _default_name(
    folder: Path | None,
    pca: int | None,
    whiten: bool,
    self_supervised: bool,
    finetune: bool = False,
    captions: bool = False,
) -> str:
    stem = folder.absolute().name if folder else "collection"
    if captions:
        return f"{stem}-captions"
    if finetune:
        return f"{stem}-{'ssl-' if self_supervised else ''}finetuned"
    if pca is not None:
        return f"{stem}-pca{pca}{'w' if whiten else ''}"
    return f"{stem}-{'ssl' if self_supervised else 'head'}"
