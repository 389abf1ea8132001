"""`imgsearch evaluate`: retrieval quality on labelled images, copy detection, and both on
held-out images against encoders fitted on the rest (`--split`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from imgsearch.cli.app import (
    BackendOption,
    DeviceOption,
    JsonFlag,
    LabelsOption,
    app,
    echo_err,
    open_index,
)
from imgsearch.cli.learning import (
    FinetuneFlag,
    FirstBlockOption,
    LrOption,
    RotationsFlag,
    SizeOption,
    finetune_options,
)


@app.command("evaluate")
def evaluate_command(
    folder: Annotated[
        Path,
        typer.Argument(help="One sub-folder per class (or any folder with --labels / --near-duplicates)."),
    ],
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Encoder to evaluate; repeat to compare several."),
    ] = None,
    k: Annotated[str, typer.Option("--k", help="Cut-offs, comma-separated.")] = "1,5,10",
    labels: LabelsOption = None,
    captions: Annotated[
        Path | None,
        typer.Option(
            "--captions",
            help="CSV with path,caption columns (paths relative to FOLDER): search by words measured "
            "both ways, text->image and image->text recall@k (a CLIP-style model).",
        ),
    ] = None,
    near_duplicates: Annotated[
        bool,
        typer.Option(
            "--near-duplicates",
            help="Copy detection instead: edited copies must find their original (no labels needed).",
        ),
    ] = False,
    exact: Annotated[
        bool, typer.Option("--exact", help="Skip the ANN index check (quality is always ranked exactly).")
    ] = False,
    sample: Annotated[
        int | None,
        typer.Option("--sample", min=1, help="Query with a seeded random subset of this many images."),
    ] = None,
    as_json: JsonFlag = False,
    split: Annotated[
        float | None,
        typer.Option(
            "--split",
            min=0.05,
            max=0.95,
            help="Hold out this fraction (class-stratified), fit a "
            "head and PCA on the rest, score base vs fitted on the held-out images only, with "
            "bootstrap 95% intervals (with --near-duplicates: a self-supervised head).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="With --split: the split and training seed.")] = 0,
    loss: Annotated[str, typer.Option("--loss", help="With --split: supcon or triplet.")] = "supcon",
    epochs: Annotated[int, typer.Option("--epochs", min=1, max=1000, help="With --split.")] = 60,
    pca: Annotated[
        list[int] | None,
        typer.Option(
            "--pca",
            min=1,
            max=4096,
            help="With --split: PCA dimensions to compare (repeatable; default 64, or fewer than "
            "the training images).",
        ),
    ] = None,
    tta: Annotated[
        bool,
        typer.Option("--tta", help="With --split --near-duplicates: also query with test-time augmentation."),
    ] = False,
    augment: Annotated[
        int,
        typer.Option(
            "--augment",
            min=0,
            max=16,
            help="With --split --near-duplicates: also score with N "
            "index-augmentation vectors per original (as `ingest --augment N` stores).",
        ),
    ] = 0,
    copies: Annotated[
        int,
        typer.Option(
            "--copies",
            min=1,
            max=32,
            help="With --split --near-duplicates: edits per training image for the self-supervised head.",
        ),
    ] = 8,
    finetune: FinetuneFlag = False,
    finetune_epochs: Annotated[
        int, typer.Option("--finetune-epochs", min=1, max=1000, help="With --split --finetune.")
    ] = 15,
    first_block: FirstBlockOption = 8,
    size: SizeOption = 224,
    rotations: RotationsFlag = False,
    lr: LrOption = 1e-4,
    device: DeviceOption = None,
    backend: BackendOption = None,
) -> None:
    """Measure retrieval quality on your own images: leave-one-out P@k, R@k, mAP, MRR."""
    from imgsearch.cli.display import progress_display

    try:
        ks = [int(v) for v in k.split(",") if v.strip()]
    except ValueError:
        echo_err(f"--k {k!r}: expected comma-separated integers such as 1,5,10")
        raise typer.Exit(2) from None
    from imgsearch.cli.evaluation_tables import evaluation_table, near_duplicates_table

    index = open_index(device=device, backend=backend)
    models = model or [index.model]
    for name in models:
        index.encoder(name)  # every model loads before any work, so a missing one fails early
    with progress_display() as show:
        if captions is not None:
            from imgsearch.cli.evaluation_tables import captions_table

            result = index.evaluate_captions(folder, captions, model=models[0], ks=ks, progress=show)
            text = captions_table(result)
        elif split is not None:
            from imgsearch.cli.evaluation_tables import split_table
            from imgsearch.evaluation.split import SplitOptions
            from imgsearch.learning.train import TrainOptions

            tuning = (
                finetune_options(finetune_epochs, first_block, size, rotations, lr, seed)
                if finetune
                else None
            )
            chosen = SplitOptions(
                test_fraction=split,
                seed=seed,
                ks=ks,
                labels_csv=labels,
                train=TrainOptions(loss=loss, epochs=epochs, seed=seed),
                pca=pca or None,
                copies=copies,
                tta=tta,
                augment=augment,
                finetune=tuning,
            )
            run = index.near_duplicates_split if near_duplicates else index.evaluate_split
            result = run(folder, chosen, model=models[0], progress=show)
            text = split_table(result)
        elif near_duplicates:
            from imgsearch.evaluation.near_duplicates import CopyDetectionOptions

            copying = CopyDetectionOptions(ks=ks, sample=sample)
            result = index.near_duplicates(folder, copying, models=models, progress=show)
            text = near_duplicates_table(result)
        else:
            from imgsearch.evaluation.evaluate import EvaluationOptions

            scoring = EvaluationOptions(ks=ks, labels_csv=labels, exact=exact, sample=sample)
            result = index.evaluate(folder, scoring, models=models, progress=show)
            text = evaluation_table(result)
    typer.echo(json.dumps(result.to_json(), ensure_ascii=False) if as_json else text)
