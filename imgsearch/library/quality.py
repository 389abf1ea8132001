"""Quality and learning on the library object: retrieval quality on labelled images, copy
detection, both on held-out images (`--split`), and derived or fine-tuned encoders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgsearch.errors import ImgsearchError
from imgsearch.library.core import Core

if TYPE_CHECKING:
    from imgsearch.encoding.encoder import Encoder
    from imgsearch.evaluation.captions import CaptionEvaluation
    from imgsearch.evaluation.evaluate import Evaluation, EvaluationOptions
    from imgsearch.evaluation.near_duplicates import CopyDetectionOptions, NearDuplicateEvaluation
    from imgsearch.evaluation.split import SplitEvaluation, SplitOptions
    from imgsearch.learning.derive import Training, TrainReport
    from imgsearch.progress import ProgressCallback


class Quality(Core):
    """Evaluation and training (methods of `Index`)."""

    def evaluate(
        self,
        root: str | Path,
        options: EvaluationOptions | None = None,
        *,
        models: Sequence[str] = (),
        progress: ProgressCallback | None = None,
        **choices: Any,
    ) -> Evaluation:
        """Leave-one-out retrieval quality of `models` (default: this index's) on labelled
        images; `choices`: fields of EvaluationOptions to change, e.g.
        `index.evaluate("labelled", ks=(1, 10), exact=True)`."""
        from imgsearch.evaluation.evaluate import EvaluationOptions, evaluate

        chosen = replace(options or EvaluationOptions(), **choices)
        encoders = self._encoders_of(models)
        return evaluate(root, chosen, encoders=encoders, database=self.db, progress=progress)

    def evaluate_captions(
        self,
        root: str | Path,
        captions_csv: str | Path,
        *,
        model: str | None = None,
        ks: Sequence[int] = (1, 5, 10),
        progress: ProgressCallback | None = None,
    ) -> CaptionEvaluation:
        """Text->image and image->text recall@k of a CLIP-style model on a `path,caption` CSV."""
        from imgsearch.evaluation.captions import evaluate_captions

        return evaluate_captions(
            root, captions_csv, encoder=self.encoder(model), database=self.db, ks=ks, progress=progress
        )

    def near_duplicates(
        self,
        root: str | Path,
        options: CopyDetectionOptions | None = None,
        *,
        models: Sequence[str] = (),
        progress: ProgressCallback | None = None,
        **choices: Any,
    ) -> NearDuplicateEvaluation:
        """Copy detection: do edited copies find their original; `choices`: fields of
        CopyDetectionOptions to change, e.g. `index.near_duplicates("photos", sample=50)`."""
        from imgsearch.evaluation.near_duplicates import CopyDetectionOptions, near_duplicates

        chosen = replace(options or CopyDetectionOptions(), **choices)
        encoders = self._encoders_of(models)
        return near_duplicates(root, chosen, encoders=encoders, database=self.db, progress=progress)

    def _encoders_of(self, models: Sequence[str]) -> list[Encoder]:
        return [self.encoder(m) for m in models or [self.model]]

    def train(
        self,
        name: str,
        folder: str | Path | None = None,
        training: Training | None = None,
        *,
        base: str | None = None,
        progress: ProgressCallback | None = None,
        **choices: Any,
    ) -> TrainReport:
        """Fit and register a derived encoder of `base` (see learning.derive.train), or, with
        `finetune` options, a fine-tuned network (learning.derive.finetune_and_register);
        `choices`: fields of Training to change, e.g. `index.train("mine", folder, pca=64)`."""
        from imgsearch.learning.derive import Training, finetune_and_register, train

        chosen = replace(training or Training(), **choices)
        if chosen.finetune is not None:
            if folder is None:
                raise ImgsearchError("Fine-tuning needs a FOLDER of images.")
            return finetune_and_register(self.db, name, folder, chosen, progress)
        return train(self.db, self.encoder(base), name, folder, chosen, progress)

    def evaluate_split(
        self,
        root: str | Path,
        split: SplitOptions | None = None,
        *,
        model: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> SplitEvaluation:
        """Base vs a head fitted on one part vs PCA (vs a network fine-tuned on that part),
        scored on the held-out rest (the labelled images are ingested first, what is missing)."""
        from imgsearch.evaluation.split import Collected, SplitOptions, split_evaluate
        from imgsearch.learning.derive import labelled_vectors

        split = split or SplitOptions()
        encoder = self.encoder(model)
        paths, vectors, labels = labelled_vectors(root, encoder, self.db, split.labels_csv, progress)
        data = Collected(str(root), paths, vectors, labels)
        return split_evaluate(data, split, encoder=encoder, progress=progress)

    def near_duplicates_split(
        self,
        root: str | Path,
        split: SplitOptions | None = None,
        *,
        model: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> SplitEvaluation:
        """Copy detection on held-out images: base vs a self-supervised head fitted on the
        other part (and index augmentation, test-time augmentation); the images under `root`
        are ingested first, what is missing."""
        from imgsearch.evaluation.split import Collected, split_near_duplicates
        from imgsearch.learning.derive import unlabelled_vectors

        encoder = self.encoder(model)
        paths, vectors = unlabelled_vectors(root, encoder, self.db, progress)
        return split_near_duplicates(
            Collected(str(root), paths, vectors), split, encoder=encoder, progress=progress
        )
