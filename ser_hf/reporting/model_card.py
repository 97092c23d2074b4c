"""Model card (README.md) for a trained SER checkpoint.

The YAML front matter is built with `huggingface_hub.ModelCardData` / `EvalResult`, so the Hub shows the
task, licence, base model, datasets and a `model-index` with UA / WA / macro-F1 (a `--task dimensional` model: CCC
per dimension and their mean); the body says how the numbers were obtained (speaker-independent split, exact
command, hyperparameters) and what they are worth (majority-class and chance baselines, or the training mean's
error; limitations).
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ser_hf.storage import write_text_atomic

DEFAULT_TAGS = ("audio-classification", "speech-emotion-recognition", "ser_hf")


@dataclass
class ModelCardInfo:
    """Everything the model card states. Fields are filled by the recipe that trained the model.

    Attributes:
        model_id: Hub repo id or output folder name; used as title, `model-index` name and in the usage snippet.
        base_model: Hub id of the pretrained checkpoint fine-tuned, or None when trained from random init.
        dataset_name: human-readable corpus name, e.g. "RAVDESS".
        dataset_id: Hub dataset id if the data is on the Hub, else None (e.g. the synthetic demo corpus).
        dataset_license: licence id of the corpus, e.g. "cc-by-nc-sa-4.0"; the model card inherits it.
        label_names: class names in id order.
        metrics: output of `ser_hf.evaluation.metrics.compute_ser_metrics` on the evaluation split.
        split_name: evaluation split, e.g. "validation (fold 0: Actor_01-Actor_04)".
        split_description: how the split was made (which speakers are held out, etc.).
        command: exact command line that produced the model.
        hyperparameters: name -> value, shown as a table.
        num_train_examples: clips used for training.
        num_eval_examples: clips in the evaluation split.
        tags: extra Hub tags; the defaults in `DEFAULT_TAGS` are always included.
        data_report: markdown (e.g. the validation scan report), included as is.
        notes: caveats shown prominently near the top.
        plots: PNG file names relative to the output folder, embedded as images.
        language: ISO 639 code of the speech (e.g. "en"), or None when not stated (metadata only).
        selection: which split chose the checkpoint and whether the reported split took part in that choice.
        load_from: what a user passes to `pipeline(model=...)`: the Hub id when pushed, else the output folder.
        corpus_limitations: what the corpus itself limits (acted speech, fixed sentences, one language, ...), from
            the corpus registry; None for a user's corpus, about which the card claims nothing.
        speaker_independent: no speaker of the evaluation split is in training (False: say that scores may be
            optimistic).
        frozen_encoder: only the head was trained (a linear probe): the card says so instead of "fine-tuned".
        sections: extra markdown sections (each with its own heading) shown after the results.
        task: "emotion" (a classifier), or "dimensional": a regression of `label_names` (arousal, dominance,
            valence); `metrics` are then `ser_hf.evaluation.dimensional.compute_dimensional_metrics`'.
        dimension_scaling: for "dimensional", the sentence saying how the ratings were scaled to [0, 1].
    """

    model_id: str
    base_model: str | None
    dataset_name: str
    dataset_id: str | None
    dataset_license: str
    label_names: list[str]
    metrics: dict
    split_name: str
    split_description: str
    command: str
    hyperparameters: dict
    num_train_examples: int
    num_eval_examples: int
    tags: list[str] = field(default_factory=lambda: list(DEFAULT_TAGS))
    data_report: str | None = None
    notes: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    language: str | None = None
    speaker_independent: bool = True
    load_from: str | None = None
    selection: str | None = None
    corpus_limitations: str | None = None
    frozen_encoder: bool = False
    sections: list[str] = field(default_factory=list)
    task: str = "emotion"
    dimension_scaling: str | None = None

    @property
    def dimensional(self):
        """Whether the card is a `--task dimensional` regression model's."""
        return self.task == "dimensional"


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _is_hub_id(name):
    # A local path (absolute, ./relative, or with more than one slash) is not a valid `base_model` value.
    return bool(name) and bool(_HUB_ID.match(name)) and ".." not in name


def _slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _pct(value):
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _cell(value):
    # A pipe would end the markdown table cell early.
    return str(value).replace("|", "\\|").replace("\n", " ")


def _eval_results(info):
    m = info.metrics
    common = dict(
        task_type="audio-classification",
        task_name="Speech emotion recognition" + (" (arousal, dominance, valence)" if info.dimensional else ""),
        dataset_type=info.dataset_id or _slug(info.dataset_name),
        dataset_name=info.dataset_name,
        dataset_split=info.split_name,
    )
    if info.dimensional:  # CCC per dimension, then their mean: the field's headline for dimensional SER
        return [EvalResult(metric_type="ccc", metric_value=round(float(m[f"ccc_{name}"]), 4),
                           metric_name=f"CCC {name}", **common) for name in info.label_names] + [
            EvalResult(metric_type="ccc", metric_value=round(float(m["ccc"]), 4),
                       metric_name="CCC (mean over the dimensions)", **common)]
    return [
        EvalResult(metric_type="accuracy", metric_value=round(float(m["wa"]), 4),
                   metric_name="Weighted accuracy (WA)", **common),
        EvalResult(metric_type="recall", metric_value=round(float(m["ua"]), 4),
                   metric_name="Unweighted accuracy (UA)", metric_args={"average": "macro"}, **common),
        EvalResult(metric_type="f1", metric_value=round(float(m["macro_f1"]), 4),
                   metric_name="Macro F1", metric_args={"average": "macro"}, **common),
    ]


def _card_data(info):
    eval_results = _eval_results(info)
    return ModelCardData(
        base_model=info.base_model if info.base_model and _is_hub_id(info.base_model) else None,
        datasets=[info.dataset_id] if info.dataset_id else None,
        language=info.language,
        library_name="transformers",
        pipeline_tag="audio-classification",
        # The weights derive from the corpus, so its licence terms (often non-commercial) carry over.
        license=info.dataset_license,
        metrics=["ccc", "pearsonr", "mse"] if info.dimensional else ["accuracy", "recall", "f1"],
        tags=list(DEFAULT_TAGS) + list(info.tags),
        model_name=info.model_id,
        eval_results=eval_results,
    )


def _intro(info):
    n = len(info.label_names)
    if info.base_model:
        origin = (f"fine-tuned from [{info.base_model}](https://huggingface.co/{info.base_model})"
                  if _is_hub_id(info.base_model) else f"fine-tuned from `{info.base_model}`")
    else:
        origin = "trained from scratch (random initialisation, no pretrained weights)"
    if info.frozen_encoder:
        encoder = origin.removeprefix("fine-tuned from ") if info.base_model else \
            "a randomly initialised encoder (no pretrained weights)"
        origin = (f"trained as a linear probe of {encoder}: the encoder is frozen (its weights are unchanged) and "
                  "only the classification head (layer weights, projector, classifier) was trained")
    what = (f"it rates a speech clip's {', '.join(info.label_names)} on a 0-1 scale (a regression, "
            "`problem_type: regression`)" if info.dimensional else
            f"it classifies a speech clip into one of {n} emotion classes")
    lines = [f"# {info.model_id}", "",
             f"A speech emotion recognition model: {what}. "
             f"It was {origin} on {info.dataset_name} with the `ser_hf` recipes.", ""]
    if info.dimensional and info.dimension_scaling:
        lines += [info.dimension_scaling, ""]
    lines += [f"> **Note:** {note}" for note in info.notes]
    return lines + ([""] if info.notes else [])


def _usage(info):
    regression = ["# A regression: each 'score' is the predicted value of its 'label' (no softmax), best first.",
                  'values = {s["label"]: s["score"] for s in classifier("speech.wav", top_k=3)}'] \
        if info.dimensional else ['print(classifier("speech.wav", top_k=3))']
    return [
        "## How to use", "",
        "```python",
        "from transformers import pipeline",
        "",
        f'classifier = pipeline("audio-classification", model="{info.load_from or info.model_id}")',
        "# Pass top_k when calling: given to pipeline() it is ignored.",
        *regression,
        "```", "",
        "A file path is decoded and resampled to 16 kHz by ffmpeg. A bare array must already be 16 kHz mono; "
        'a `{"array": array, "sampling_rate": rate}` dict at another rate is resampled only when torchaudio '
        "is installed.", "",
        "## Outputs" if info.dimensional else "## Labels", "",
        *(f"- {i}: `{name}`" for i, name in enumerate(info.label_names)), "",
    ]


def _number(value):
    return "n/a" if value is None else f"{value:.3f}"


def _dimensional_results(info):
    m = info.metrics
    baseline = "baseline_mse" in m
    lines = ["## Results", "", f"On {info.split_name} ({info.num_eval_examples} clips), targets on a 0-1 scale:", "",
             "| dimension | CCC | Pearson r | MSE |" + (" MSE of the training mean |" if baseline else ""),
             "|---|---|---|---|" + ("---|" if baseline else "")]
    for name in info.label_names:
        base = f" {_number(m[f'baseline_mse_{name}'])} |" if baseline else ""
        lines.append(f"| {_cell(name)} | {_number(m[f'ccc_{name}'])} | {_number(m.get(f'pearson_{name}'))} | "
                     f"{_number(m[f'mse_{name}'])} |" + base)
    lines.append(f"| **mean** | **{_number(m['ccc'])}** | {_number(m.get('pearson'))} | {_number(m['mse'])} |"
                 + (f" {_number(m['baseline_mse'])} |" if baseline else ""))
    lines += ["", *([info.selection, ""] if info.selection else []),
              "CCC (Lin's concordance correlation coefficient) is the headline: 1 is perfect agreement, and unlike "
              "Pearson's r it drops when predictions are shifted or squeezed towards the mean. Predicting one "
              "constant, e.g. the training mean, scores CCC 0; the last column is that constant's MSE, the error "
              "to beat.", ""]
    return lines


def _results(info):
    if info.dimensional:
        return _dimensional_results(info)
    m, n = info.metrics, len(info.label_names)
    lines = [
        "## Results", "",
        f"On {info.split_name} ({info.num_eval_examples} clips):", "",
        "| metric | value |",
        "|---|---|",
        f"| UA, unweighted accuracy (mean per-class recall) | {_pct(m['ua'])} |",
        f"| WA, weighted accuracy (plain accuracy) | {_pct(m['wa'])} |",
        f"| macro-F1 | {_pct(m['macro_f1'])} |",
        f"| majority-class baseline (WA of always predicting the most frequent class) | "
        f"{_pct(m.get('majority_baseline_wa'))} |",
        f"| chance level (UA of any constant or random predictor) | {_pct(m.get('chance_ua'))} |",
        *([f"| ECE, expected calibration error of the top score (0 = calibrated; see Calibration) | {_pct(m['ece'])} |"]
          if m.get("ece") is not None else []), "",
        *([info.selection, ""] if info.selection else []),
        "UA and macro-F1 average over the classes present in the evaluation split, as "
        "`sklearn.metrics.balanced_accuracy_score` does. UA is the headline number: unlike WA it does not "
        "reward favouring frequent classes.", "",
        "Per-class recall:", "",
        "| label | recall | clips |",
        "|---|---|---|",
    ]
    recalls = m.get("per_class_recall") or [None] * n
    cm = m.get("confusion_matrix")
    for i, name in enumerate(info.label_names):
        lines.append(f"| {_cell(name)} | {_pct(recalls[i])} | {sum(cm[i]) if cm else '?'} |")
    lines.append("")
    if cm:
        lines += ["<details><summary>Confusion matrix (rows: true class, columns: predicted)</summary>", "",
                  "| true \\ predicted | " + " | ".join(_cell(x) for x in info.label_names) + " |",
                  "|---" * (n + 1) + "|"]
        lines += [f"| {_cell(name)} | " + " | ".join(str(v) for v in row) + " |"
                  for name, row in zip(info.label_names, cm)]
        lines += ["", "</details>", ""]
    return lines


def _protocol_and_training(info):
    if info.speaker_independent:
        protocol = ("Speaker-independent: no speaker of the evaluation split is heard in training, so the scores "
                    "measure generalisation to new voices rather than recognition of known actors.")
    else:
        protocol = ("**Not speaker-independent**: speakers are unknown or shared between training and evaluation, "
                    "so the same voices may be in both and the scores may be optimistic.")
    lines = [
        "## Evaluation protocol", "", protocol, "",
        f"- Split: {info.split_name}",
        f"- {info.split_description}",
        f"- Training clips: {info.num_train_examples}; evaluation clips: {info.num_eval_examples}", "",
        "## Training", "",
        "Command that produced this model:", "",
        "```bash", info.command, "```", "",
    ]
    if info.hyperparameters:
        lines += ["| hyperparameter | value |", "|---|---|"]
        lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in info.hyperparameters.items()]
        lines.append("")
    if info.data_report:
        lines += ["## Data", "", info.data_report.strip(), ""]
    return lines


def _limitations(info):
    licence_line = f"The training data is licensed `{info.dataset_license}` and this model inherits its terms"
    if "nc" in info.dataset_license.lower().split("-"):
        licence_line += ": non-commercial use only"
    if info.dataset_license == "other":
        licence_line = "The training data's licence is not recorded here: check it before sharing this model"
    # What is known about the corpus itself (acted speech, fixed sentences, ...) comes from the corpus registry;
    # for a user's own corpus nothing is claimed.
    corpus = [f"- {info.corpus_limitations}"] if info.corpus_limitations else []
    fixed = (f"- The outputs are {', '.join(info.label_names)} on the training ratings' scale (0-1), as the "
             "corpus's raters perceived them; values outside 0-1 can occur and mean the model is extrapolating."
             if info.dimensional else
             f"- The label set is fixed to these {len(info.label_names)} classes; anything else is forced into one "
             "of them.")
    return [
        "## Limitations", "", *corpus,
        fixed,
        f"- {licence_line}.",
        "- Perceived emotion is not felt emotion. Do not use the output to make decisions about people.", "",
    ]


def _extra_sections(info):
    return [line for section in info.sections for line in (section.strip(), "")]


def _plots(info):
    lines = ["## Plots", ""] if info.plots else []
    for plot in info.plots:
        lines += [f"![{Path(plot).stem.replace('_', ' ')}]({plot})", ""]
    return lines


def _body(info):
    sections = (_intro, _usage, _results, _extra_sections, _protocol_and_training, _limitations, _plots)
    return "\n".join(line for section in sections for line in section(info))


def render_model_card(info: ModelCardInfo) -> str:
    """Render the README.md text: YAML metadata for the Hub, then the markdown body.

    Args:
        info: what to state; see `ModelCardInfo`.

    Returns:
        The card text. Its front matter has been parsed back with `huggingface_hub.ModelCard` (including the
        `model-index`), so a card that the Hub would reject raises here instead of at upload time.
    """
    text = f"---\n{_card_data(info).to_yaml()}\n---\n\n{_body(info)}"
    parsed = ModelCard(text)  # raises ValueError on an unparsable model-index
    expected = len(info.label_names) + 1 if info.dimensional else 3
    if len(parsed.data.eval_results or []) != expected:
        raise ValueError(f"model card metadata did not round-trip: expected {expected} eval results")
    return text


def write_model_card(output_dir, info: ModelCardInfo) -> Path:
    """Write `README.md` into the output folder (the file the Hub and `from_pretrained` users see).

    Args:
        output_dir: the model's output folder; created if missing.
        info: what to state; see `ModelCardInfo`.

    Returns:
        Path of the README.md written.
    """
    path = Path(output_dir) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, render_model_card(info))
    return path
