"""A probe's outputs: the per-layer table and plot, probe_results.json, and a card that says only the head trained."""

import json

from ser_hf.reporting.model_card import ModelCardInfo, render_model_card
from ser_hf.reporting.probe_report import layer_table_markdown, probe_card, write_probe_reports

ROWS = [{"layer": 0, "name": "feature projection (CNN)", "best_epoch": 3, "validation_ua": 0.40, "validation_wa": 0.41,
         "validation_macro_f1": 0.39},
        {"layer": 1, "name": "transformer layer 1", "best_epoch": 9, "validation_ua": 0.55, "validation_wa": 0.56,
         "validation_macro_f1": 0.54}]
SUMMARY = {
    "encoder": {"model": "facebook/wav2vec2-base"}, "settings": {
        "epochs": 300, "learning_rate": 1e-3, "batch_size": 32, "weight_decay": 0.0, "patience": 50, "metric": "ua"},
    "cache": {"dir": "/data/.ser_hf_probe_cache/x", "clips": 64, "computed": 0, "seconds": 0.0},
    "best_epoch": 12, "epochs_run": 62, "seconds_per_epoch": 0.004, "layers": ROWS,
    "agreement": {"validation": {"clips": 16, "same_prediction": 16}},
}


def _card():
    return ModelCardInfo(model_id="probe", base_model="facebook/wav2vec2-base", dataset_name="RAVDESS",
                         dataset_id=None, dataset_license="cc-by-nc-sa-4.0", label_names=["a", "b"],
                         metrics={"ua": 0.5, "wa": 0.5, "macro_f1": 0.5, "per_class_recall": [0.5, 0.5],
                                  "confusion_matrix": [[1, 1], [1, 1]]},
                         split_name="validation (fold 0)", split_description="Speaker-independent.", command="x",
                         hyperparameters={"learning_rate": 5e-5, "num_train_epochs": 30, "seed": 1},
                         num_train_examples=48, num_eval_examples=16)


def test_the_layer_table_marks_the_best_layer():
    table = layer_table_markdown(ROWS)
    assert table.splitlines()[0] == "| hidden state | what | validation UA | validation WA | best epoch |"
    assert "| 1 | transformer layer 1 | **55.0 %** | 56.0 % | 9 |" in table


def test_probe_files_are_written(tmp_path):
    written = write_probe_reports(tmp_path, SUMMARY, ["a", "b"])
    assert written == ["probe_results.json", "probe_layers.json", "probe_layers.md", "probe_layers.png"]
    assert json.loads((tmp_path / "probe_layers.json").read_text()) == ROWS
    assert (tmp_path / "probe_layers.png").stat().st_size > 1000


def test_the_card_says_it_is_a_linear_probe_of_a_frozen_encoder():
    card = probe_card(_card(), SUMMARY, {"validation": "validation (fold 0)"}, "validation")
    text = render_model_card(card)
    assert "trained as a linear probe of [facebook/wav2vec2-base]" in text and "the encoder is frozen" in text
    assert "## Linear probe" in text and "| 1 | transformer layer 1 | **55.0 %**" in text
    assert "predict the same label for 16 of 16 validation clips" in text
    assert "| probe_learning_rate | 0.001 |" in text and "num_train_epochs" not in text
    assert "best ua on validation (fold 0)" in text and "linear-probe" in text
