"""Tests for ser_hf.reporting.model_card: Hub-parsable metadata and the facts stated in the body."""

import dataclasses

import yaml
from huggingface_hub import ModelCard

from ser_hf.labels import RAVDESS_EMOTIONS
from ser_hf.reporting.model_card import DEFAULT_TAGS, ModelCardInfo, render_model_card, write_model_card

COMMAND = "python recipes/finetune.py recipes/configs/ravdess.yaml --output_dir outputs/ravdess --fold 0 --seed 42"


def make_info(**overrides):
    names = list(RAVDESS_EMOTIONS)
    cm = [[6 if i == j else (1 if j == (i + 1) % 8 else 0) for j in range(8)] for i in range(8)]
    metrics = {
        "ua": 0.52345, "wa": 0.5107, "macro_f1": 0.4893,
        "per_class_recall": [6 / 7] * 7 + [None],
        "confusion_matrix": cm,
        "majority_baseline_wa": 0.1333, "chance_ua": 0.125,
    }
    info = ModelCardInfo(
        model_id="someone/wav2vec2-base-ravdess-ser",
        base_model="facebook/wav2vec2-base",
        dataset_name="RAVDESS",
        dataset_id="narad/ravdess",
        dataset_license="cc-by-nc-sa-4.0",
        label_names=names,
        metrics=metrics,
        split_name="validation (fold 0: Actor_01-Actor_04)",
        split_description="Actors 1-4 are held out for evaluation; the other 20 actors are used for training.",
        command=COMMAND,
        hyperparameters={"learning_rate": 3e-5, "per_device_train_batch_size": 8, "pattern": "a|b"},
        num_train_examples=1200,
        num_eval_examples=240,
        tags=["ravdess"],
        data_report="### Validation scan\n\n- 1440 files found, 0 excluded",
        notes=["Results are from a single seed."],
        plots=["confusion_matrix.png", "training_curves.png"],
        language="en",
    )
    return dataclasses.replace(info, **overrides)


def front_matter(text):
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_metadata_round_trips_through_huggingface_hub():
    text = render_model_card(make_info())
    card = ModelCard(text)
    data = card.data.to_dict()

    assert data["library_name"] == "transformers"
    assert data["pipeline_tag"] == "audio-classification"
    assert data["license"] == "cc-by-nc-sa-4.0"
    assert data["base_model"] == "facebook/wav2vec2-base"
    assert data["datasets"] == ["narad/ravdess"]
    assert data["metrics"] == ["accuracy", "recall", "f1"]
    assert data["tags"] == [*DEFAULT_TAGS, "ravdess"]

    results = {r.metric_type: r for r in card.data.eval_results}
    assert set(results) == {"accuracy", "recall", "f1"}
    assert card.data.model_name == "someone/wav2vec2-base-ravdess-ser"
    for r in results.values():
        assert r.task_type == "audio-classification"
        assert r.dataset_name == "RAVDESS"
        assert r.dataset_type == "narad/ravdess"
        assert r.dataset_split == "validation (fold 0: Actor_01-Actor_04)"
    assert results["accuracy"].metric_value == 0.5107
    assert results["accuracy"].metric_name == "Weighted accuracy (WA)"
    assert results["recall"].metric_value == 0.5234  # UA rounded to 4 decimals
    assert results["recall"].metric_name == "Unweighted accuracy (UA)"
    assert results["recall"].metric_args == {"average": "macro"}
    assert results["f1"].metric_value == 0.4893
    assert results["f1"].metric_args == {"average": "macro"}


def test_body_states_command_labels_results_and_plots():
    text = render_model_card(make_info())
    body = text.split("---\n", 2)[2]
    assert f"```bash\n{COMMAND}\n```" in body
    for name in RAVDESS_EMOTIONS:
        assert f"`{name}`" in body
    assert "| UA, unweighted accuracy (mean per-class recall) | 52.3 % |" in body
    assert "| WA, weighted accuracy (plain accuracy) | 51.1 % |" in body
    assert "13.3 %" in body and "12.5 %" in body  # majority baseline, chance
    assert "| surprised | n/a | 7 |" in body  # absent-class recall, clip count from the confusion matrix row
    assert 'pipeline("audio-classification", model="someone/wav2vec2-base-ravdess-ser")' in body
    assert "top_k=3" in body
    assert "Speaker-independent" in body
    assert "| pattern | a\\|b |" in body  # a pipe inside a value must not break the table
    assert "### Validation scan" in body
    assert "> **Note:** Results are from a single seed." in body
    assert "non-commercial" in body
    assert "![confusion matrix](confusion_matrix.png)" in body
    assert "![training curves](training_curves.png)" in body


def test_scratch_model_without_hub_dataset_omits_base_model_and_datasets():
    info = make_info(
        base_model=None, dataset_id=None, dataset_name="Synthetic demo corpus", dataset_license="mit",
        tags=[], plots=[], data_report=None, language=None,
        notes=["Trained from scratch on synthetic speech; not a real emotion model."],
    )
    text = render_model_card(info)
    meta = front_matter(text)
    assert "base_model" not in meta and "datasets" not in meta and "language" not in meta
    assert meta["tags"] == list(DEFAULT_TAGS)
    result = meta["model-index"][0]["results"][0]
    assert result["dataset"]["type"] == "synthetic-demo-corpus"
    assert "trained from scratch" in text
    assert "not a real emotion model" in text
    assert "non-commercial" not in text
    assert "## Plots" not in text


def test_local_base_model_path_stays_out_of_metadata():
    text = render_model_card(make_info(base_model="/models/wav2vec2-base"))
    assert "base_model" not in front_matter(text)
    assert "`/models/wav2vec2-base`" in text


def test_write_model_card(tmp_path):
    path = write_model_card(tmp_path / "out", make_info())
    assert path == tmp_path / "out" / "README.md"
    assert ModelCard.load(path).data.pipeline_tag == "audio-classification"


def test_protocol_section_says_what_the_split_is():
    independent = render_model_card(make_info())
    leaky = render_model_card(make_info(speaker_independent=False))
    assert "Speaker-independent: no speaker of the evaluation split" in independent
    assert "Not speaker-independent" not in independent
    # A stratified split must never also be called speaker-independent on the same page.
    assert "Not speaker-independent" in leaky and "Speaker-independent: no speaker" not in leaky


def test_limitations_describe_the_corpus_only_when_it_is_known():
    acted = "Acted emotions read from two fixed sentences by 24 North American actors."
    known = render_model_card(make_info(corpus_limitations=acted))
    own = render_model_card(make_info(corpus_limitations=None, dataset_license="other", dataset_name="my corpus"))
    assert acted in known
    limitations = own.split("## Limitations", 1)[1].split("##", 1)[0]
    assert "acted" not in limitations.lower() and "sentences" not in limitations
    assert "licence is not recorded" in limitations and "`other`" not in limitations


def test_usage_snippet_loads_what_the_user_has():
    # Unpushed: the output folder; pushed: the Hub id (model_id alone, e.g. "demo", is neither).
    local = render_model_card(make_info(model_id="demo", load_from="outputs/demo"))
    assert 'pipeline("audio-classification", model="outputs/demo")' in local
    assert 'model="someone/wav2vec2-base-ravdess-ser"' in render_model_card(make_info())


def test_card_says_which_split_chose_the_checkpoint():
    from types import SimpleNamespace

    from ser_hf.data.prepare import PreparedSplits
    from ser_hf.reporting.results import _selection

    args = SimpleNamespace(metric_for_best_model="ua", load_best_model_at_end=True, early_stopping_patience=None)
    prepared = PreparedSplits({}, [], {"validation": "validation (fold 1)", "test": "test (fold 2)"}, "", True)
    on_validation = _selection(args, prepared, "validation")
    assert "best ua on validation (fold 1)" in on_validation and "optimistic" in on_validation
    on_test = _selection(args, prepared, "test")
    assert "test (fold 2), which took no part" in on_test and "optimistic" not in on_test
    last = _selection(SimpleNamespace(metric_for_best_model="ua", load_best_model_at_end=False,
                                      early_stopping_patience=None), prepared, "validation")
    assert "last one of training" in last and "optimistic" not in last
