"""`ser-hf search`: mistakes are refused in one line before any data work."""

from pathlib import Path

import yaml

from ser_hf.commands.search import main as search_main

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "recipes/configs/demo.yaml"


def test_a_config_without_a_search_space_is_refused(tmp_path, capsys):
    values = {k: v for k, v in yaml.safe_load(DEMO.read_text()).items() if not k.endswith("search_space")}
    config = tmp_path / "plain.yaml"
    config.write_text(yaml.safe_dump(values))
    assert search_main([str(config), "--output_dir", str(tmp_path / "out")], prog="ser-hf search") == 2
    assert "has no search_space: add one" in capsys.readouterr().err
    assert search_main([str(config), "--probe", "true"], prog="ser-hf search") == 2
    assert "has no probe_search_space" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_fold_arguments_that_contradict_the_search_are_refused(tmp_path, capsys):
    out = ["--output_dir", str(tmp_path / "out")]
    assert search_main([str(DEMO), "--fold", "2", *out], prog="ser-hf search") == 2
    assert "--fold does not apply to a search" in capsys.readouterr().err
    assert search_main([str(DEMO), "--test_fold", "5", "--folds", "0,5", *out], prog="ser-hf search") == 2
    assert "without the test fold 5" in capsys.readouterr().err
    assert search_main([str(DEMO), "--n_trials", "0", *out], prog="ser-hf search") == 2
    assert not (tmp_path / "out").exists()
