"""End-to-end --task multitask on a tiny generated CREMA-D-shaped corpus: XX clips masked, intensity metrics in the
results and on the card, a plain emotion checkpoint with the head beside it (temperature scaling folded into the
emotion classifier only), `ser-hf evaluate` scoring the head as training did, predict's intensity column."""

import csv
import json
from pathlib import Path

import pytest
from safetensors import safe_open

from ser_hf.commands.predict import main as predict_main
from tests.conftest import evaluate, tiny_run_args, train, write_tone

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
EMOTIONS = {"ANG": 200, "DIS": 260, "FEA": 320, "HAP": 380, "NEU": 440, "SAD": 500}
LEVELS = {"LO": 0.9, "MD": 1.0, "HI": 1.1}


@pytest.fixture(scope="module")
def small_cremad(tmp_path_factory):
    """6 actors: IEO at LO/MD/HI (neutral at XX), DFA at XX, every clip 0.4 s."""
    audio = tmp_path_factory.mktemp("cremad_mt") / "AudioWAV"
    for actor in range(1001, 1007):
        for code, freq in EMOTIONS.items():
            for level, scale in ({"XX": 1.0} if code == "NEU" else LEVELS).items():
                write_tone(audio / f"{actor}_IEO_{code}_{level}.wav", 0.4, freq * scale, seed=actor + freq)
            write_tone(audio / f"{actor}_DFA_{code}_XX.wav", 0.4, freq * 1.2, seed=actor + freq + 1)
    return audio


def test_multitask_run_masks_xx_and_reports_intensity(small_cremad, tmp_path, capsys):
    out = tmp_path / "out"
    results = train(tiny_run_args(
        small_cremad, out, corpus=None, config=ROOT / "recipes/configs/cremad6.yaml", labels=6, task="multitask",
        intensity_loss_weight=0.5, download=None, n_folds=3, fold=None, eval_strategy="no", save_strategy="no",
        load_best_model_at_end=False, early_stopping_patience=0, auto_mixed_precision=False, max_duration_seconds=0.5,
        scan_workers=1, temperature_scaling=True))
    intensity = results["validation"]["intensity"]
    # 2 held-out actors: 5 emotions x 3 levels scored; each actor's 6 DFA XX clips and neutral IEO XX left out.
    assert intensity["num_examples"] == 30 and intensity["num_without_intensity"] == 14
    assert intensity["label_names"] == ["low", "medium", "high"] and intensity["chance_ua"] == pytest.approx(1 / 3)
    assert results["validation"]["num_examples"] == 44  # the emotion head is scored on every clip
    assert json.loads((out / "ser_results.json").read_text())["validation"]["intensity"]["ua"] == intensity["ua"]
    card = (out / "README.md").read_text()
    assert "## Intensity head" in card and f"{100 * intensity['ua']:.1f} %" in card
    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        assert not [key for key in weights.keys() if "intensity" in key]  # the emotion checkpoint stays plain
    assert (out / "intensity_head.safetensors").is_file() and (out / "intensity_config.json").is_file()
    assert json.loads((out / "config.json").read_text())["calibration_temperature"] > 0

    # The saved model and head, evaluated afresh, give the scores training reported (emotion and intensity).
    evaluated = evaluate(["--model", str(out), "--output_dir", str(tmp_path / "evaluation")])
    assert evaluated["validation"]["ua"] == pytest.approx(results["validation"]["ua"])
    assert evaluated["validation"]["intensity"]["ua"] == pytest.approx(intensity["ua"])
    assert evaluated["validation"]["intensity"]["confusion_matrix"] == intensity["confusion_matrix"]
    assert "intensity (validation): UA" in capsys.readouterr().out

    capsys.readouterr()
    files = [small_cremad / "1001_IEO_ANG_HI.wav", small_cremad / "1002_DFA_SAD_XX.wav"]
    # Tones: without --vad false the voice-activity check would answer "no speech detected" for each.
    assert predict_main([str(out), *map(str, files), "--vad", "false", "--output", str(tmp_path / "p.csv")]) == 0
    assert "intensity:" in capsys.readouterr().out
    with open(tmp_path / "p.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["intensity"] in ("low", "medium", "high") for row in rows] == [True, True]
    assert all(0 < float(row["intensity_score"]) <= 1 for row in rows)
