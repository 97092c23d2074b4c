"""Speech emotion recognition scores as an `evaluate` metric module.

Load it by path, which works offline (a bare name such as `evaluate.load("accuracy")` goes to the Hub):

    import evaluate
    metric = evaluate.load("ser_hf/evaluation/metrics/ser_metrics.py", keep_in_memory=True)
    metric.compute(predictions=[0, 1, 1], references=[0, 1, 2], num_labels=3)

`evaluate.load` copies this file into `$HF_MODULES_CACHE/evaluate_modules/metrics/ser_metrics/<hash>/` and
imports it from there, so this file must stay self-contained: no relative imports and no `ser_hf` imports
(evaluate would try to copy or pip-check them). The copy is made under a file lock, so several processes
(e.g. DDP ranks) may load it at once.
"""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import confusion_matrix, f1_score

_DESCRIPTION = """
Scores for single-label emotion classification as the speech emotion recognition (SER) literature reports them:

- `wa` (weighted accuracy): plain accuracy, the share of correctly classified examples.
- `ua` (unweighted accuracy, also called unweighted average recall): the mean of the per-class recalls. It is
  averaged over the classes PRESENT in `references` (or over `labels` when given), which is what
  `sklearn.metrics.balanced_accuracy_score` does. A class with no reference example has no defined recall;
  counting it as 0 would penalise a model for the make-up of the evaluation split rather than for its errors.
- `macro_f1`: the unweighted mean of per-class F1 over the SAME classes as `ua`, so that the two averages are
  comparable. Predictions of a class outside that set still count as errors (misses of the true class).
- `per_class_recall`: one entry per label id `0..num_labels-1`; `None` for a class absent from `references`.
- `confusion_matrix`: `num_labels x num_labels` counts, rows = reference (true) class, columns = prediction.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted label ids.
    references (`list` of `int`): reference (true) label ids.
    num_labels (`int`, *optional*): size of the label set, so that classes never seen in this batch still get a
        row in the confusion matrix and an entry in `per_class_recall`. Defaults to the largest id seen + 1.
    labels (`list` of `int`, *optional*): label ids to average `ua` and `macro_f1` over. Defaults to the ids
        present in `references`. Every id given must occur in `references` (recall is undefined otherwise).

Returns:
    wa (`float`), ua (`float`), macro_f1 (`float`), macro_f1_union (`float`: over the classes in references or
    predictions, sklearn's default and EmoBox's), per_class_recall (`list` of `float` or `None`),
    confusion_matrix (`list` of `list` of `int`).

Examples:
    >>> metric = evaluate.load("ser_hf/evaluation/metrics/ser_metrics.py")
    >>> r = metric.compute(predictions=[0, 0, 0, 1], references=[0, 0, 1, 1], num_labels=3)
    >>> r["wa"], r["ua"], r["per_class_recall"]
    (0.75, 0.75, [1.0, 0.5, None])
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SerMetrics(evaluate.Metric):
    """UA / WA / macro-F1 / per-class recall / confusion matrix for emotion classification."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
            ),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.balanced_accuracy_score.html"
            ],
        )

    def _compute(self, predictions, references, num_labels=None, labels=None):
        y_pred = np.asarray(predictions, dtype=np.int64)
        y_true = np.asarray(references, dtype=np.int64)
        if y_true.size == 0:
            raise ValueError("ser_metrics: no examples to score (empty predictions/references).")
        if num_labels is None:
            num_labels = int(max(y_true.max(), y_pred.max())) + 1
        for name, ids in (("references", y_true), ("predictions", y_pred)):
            if ids.min() < 0 or ids.max() >= num_labels:
                raise ValueError(f"ser_metrics: {name} hold ids outside 0..{num_labels - 1}.")

        all_ids = list(range(num_labels))
        cm = confusion_matrix(y_true, y_pred, labels=all_ids)
        support = cm.sum(axis=1)
        recalls = [float(cm[i, i] / support[i]) if support[i] > 0 else None for i in all_ids]

        if labels is None:
            labels = [i for i in all_ids if support[i] > 0]
        labels = [int(i) for i in labels]
        undefined = [i for i in labels if not 0 <= i < num_labels or support[i] == 0]
        if undefined:
            raise ValueError(f"ser_metrics: labels {undefined} have no reference example; their recall is undefined.")

        return {
            "wa": float(np.mean(y_true == y_pred)),
            "ua": float(np.mean([recalls[i] for i in labels])),
            # zero_division=0: a class that is never predicted has undefined precision; F1 0 is the usual choice.
            "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
            # sklearn's default, which EmoBox reports: the mean over every class in the references OR the
            # predictions (a class only predicted, never true, adds an F1 of 0).
            "macro_f1_union": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
            "per_class_recall": recalls,
            "confusion_matrix": cm.tolist(),
        }
