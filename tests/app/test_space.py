"""`--export_space`: a Space folder whose app.py runs the same app, from the ser_hf source it carries.

That the exported app.py serves the app from its own copy is checked in a browser (test_app_browser.py).
"""

from pathlib import Path

import pytest
import soundfile as sf
import yaml

from ser_hf.app import demo_app
from ser_hf.app.space import space_requirements
from ser_hf.commands import app as app_command
from ser_hf.data.audio import SAMPLE_RATE
from tests.conftest import emotion_tone

MODEL_ID = "someone/ser-demo"


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    """A Space exported for MODEL_ID, with one example clip."""
    out = tmp_path_factory.mktemp("space") / "space"
    clip = out.parent / "03-01-05-01-01-01-24.wav"
    sf.write(clip, emotion_tone("angry", 1.0, seed=31), SAMPLE_RATE, subtype="PCM_16")
    from ser_hf.app.space import export_space

    export_space(out, MODEL_ID, examples=[clip], top_k=2)
    return out


def test_the_space_folder_is_complete(space):
    import gradio

    front = yaml.safe_load((space / "README.md").read_text().split("---")[1])
    assert front["sdk"] == "gradio" and front["sdk_version"] == gradio.__version__
    assert front["app_file"] == "app.py" and front["models"] == [MODEL_ID]
    assert (space / "ser_hf" / "app" / "demo_app.py").read_text() == Path(demo_app.__file__).read_text()
    assert not list(space.rglob("__pycache__"))
    requirements = (space / "requirements.txt").read_text().split()
    assert requirements == space_requirements()
    assert any(r.startswith("torch==") for r in requirements) and not any(r.startswith("gradio") for r in requirements)
    assert (space / "packages.txt").read_text().split() == ["ffmpeg"]
    assert [p.name for p in (space / "examples").iterdir()] == ["00_03-01-05-01-01-01-24.wav"]


def test_the_command_exports_for_a_hub_id(tone_model, tmp_path, capsys):
    assert app_command.main([str(tone_model), "--export_space", str(tmp_path / "s"), "--space_model_id", MODEL_ID,
                             "--examples", "none"]) == 0
    assert f"models:\n  - {MODEL_ID}" in (tmp_path / "s" / "README.md").read_text()
    assert not (tmp_path / "s" / "examples").exists()
