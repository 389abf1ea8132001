"""The evaluation results as text tables for people (scripts use `to_json()`)."""

from __future__ import annotations

from imgsearch.cli.tables import render, table
from imgsearch.evaluation.captions import CaptionEvaluation
from imgsearch.evaluation.evaluate import Evaluation
from imgsearch.evaluation.near_duplicates import NearDuplicateEvaluation
from imgsearch.evaluation.split import SplitEvaluation


def evaluation_table(e: Evaluation) -> str:
    """One row per model, then chance level, then notes."""
    classes = ", ".join(f"{name} {count:,}" for name, count in list(e.classes.items())[:8])
    more = f" and {len(e.classes) - 8} more" if len(e.classes) > 8 else ""
    head = [
        f"{e.root}: {sum(e.classes.values()):,} labelled images in {len(e.classes)} classes "
        f"({classes}{more}); labels from {e.labels_from}"
    ]
    if e.missing:
        head.append(f"{e.missing} CSV rows name files that do not exist (left out)")
    if e.rejected:
        head.append(f"{e.rejected} CSV rows cannot be used (no label, or a bad cell; left out)")
    if e.unlabelled:
        head.append(f"{e.unlabelled} images directly in the folder have no class (left out)")
    last = e.ks[-1]
    columns = ["model", *(f"P@{k}" for k in e.ks), *(f"R@{k}" for k in e.ks), f"mAP@{last}", "mAP", "MRR"]
    with_index = any(m.index for m in e.models)
    if with_index:
        columns.append(f"index R@{last}")
    rows = []
    for m in e.models:
        s = m.scores
        values = [*(s.precision[k] for k in e.ks), *(s.recall[k] for k in e.ks), s.map_at[last], s.map, s.mrr]
        row = [m.model, *(f"{v:.3f}" for v in values)]
        if with_index:
            row.append(f"{m.index.recall[last]:.3f}" if m.index else "-")
        rows.append(row)
    if e.models:
        chance = e.models[0].scores.chance_precision
        rows.append(
            [
                "chance (random ranking)",
                *(f"{chance:.3f}" for _ in e.ks),
                *([""] * (len(columns) - 1 - len(e.ks))),
            ]
        )
    notes = []
    for m in e.models:
        s = m.scores
        note = f"{m.model}: {s.queries:,} queries ranked exactly (leave-one-out)"
        if s.without_relevant:
            note += f", {s.without_relevant} left out (no other image of their class)"
        if m.not_ingested:
            note += f", {m.not_ingested} images could not be ingested"
        note += f"; ingest {m.ingest_seconds:.1f}s, evaluation {m.evaluate_seconds:.1f}s"
        if m.index:
            note += (
                f"; {m.index.kind} index {m.index.name}: recall@k vs exact scan over "
                f"{m.index.queries:,} queries"
            )
        elif not e.exact:
            note += "; no ANN index (searches are exact)"
        notes.append(note)
    return render("\n".join(head), "", table(columns, rows, right=columns[1:]), "", "\n".join(notes))


def near_duplicates_table(e: NearDuplicateEvaluation) -> str:
    """recall@k per edit (rows) and model (columns)."""
    head = (
        f"near-duplicates in {e.root}: each image's edited copies searched among the "
        f"{e.models[0].originals:,} originals"
        if e.models
        else e.root
    )
    if e.unreadable:
        head += f"\n({e.unreadable} originals could not be decoded again; left out)"
    columns = ["copy", *(f"{m.model} R@{k}" for m in e.models for k in e.ks)]
    rows = []
    for t in [*e.transforms, "all"]:
        cells = [f"{(m.overall if t == 'all' else m.recall[t])[k]:.3f}" for m in e.models for k in e.ks]
        rows.append([t, *cells])
    notes = "\n".join(
        f"{m.model}: {m.copies:,} copies of {m.queried:,} images in {m.seconds:.1f}s" for m in e.models
    )
    return render(head, "", table(columns, rows, right=columns[1:]), "", notes)


def split_table(e: SplitEvaluation) -> str:
    """One row per encoder: each metric's mean and bootstrap 95% interval, then chance."""
    what = (
        f"{e.classes} classes, stratified"
        if e.mode == "labels"
        else "copies of held-out images among held-out originals"
    )
    head = (
        f"{e.root}: fitted on {e.train_images:,} images, scored on the {e.test_images:,} "
        f"held out ({e.test_fraction:.0%}, seed {e.seed}; {what})"
    )
    metrics = list(e.rows[0].scores) if e.rows else []
    columns = ["encoder", "dim", *metrics, "fit"]
    rows = [
        [
            r.encoder,
            str(r.dimension),
            *(f"{r.scores[m].mean:.3f} [{r.scores[m].low:.3f}, {r.scores[m].high:.3f}]" for m in metrics),
            "-" if r.fit_seconds is None else f"{r.fit_seconds:.1f}s",
        ]
        for r in e.rows
    ]
    rows.append(
        ["chance (random ranking)", "", *(f"{e.chance[m]:.3f}" if m in e.chance else "" for m in metrics), ""]
    )
    return render(
        head,
        "",
        table(columns, rows, right=columns[1:]),
        "",
        "[low, high]: bootstrap 95% interval over the held-out queries",
    )


def captions_table(e: CaptionEvaluation) -> str:
    """Recall@k both ways, then notes."""
    ks = list(e.text_to_image)
    head = [f"{e.model}: {e.captions:,} captions of {e.images:,} pictures ({e.seconds:.1f}s)"]
    if e.missing:
        head.append(f"{e.missing} CSV rows name files that do not exist (left out)")
    if e.rejected:
        head.append(f"{e.rejected} CSV rows cannot be used (no caption, or a bad cell; left out)")
    if e.failed:
        head.append(f"{len(e.failed)} pictures could not be read (left out)")
    rows = [
        ("text -> image", *(f"{e.text_to_image[k]:.3f}" for k in ks)),
        ("image -> text", *(f"{e.image_to_text[k]:.3f}" for k in ks)),
    ]
    body = render(table(["direction", *(f"R@{k}" for k in ks)], rows, right=[f"R@{k}" for k in ks]))
    return "\n".join([*head, body])
