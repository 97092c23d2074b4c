"""Export the demo app as a Hugging Face Space (Gradio SDK) that runs this very app code.

A Space installs its `requirements.txt` from PyPI, where ser_hf is not published, so the exported folder carries
the `ser_hf` package source beside `app.py` (Python puts the app's folder first on the import path): the Space
runs exactly the app that was tested here, and `requirements.txt` lists ser_hf's own dependencies (torch and
torchcodec pinned to the pair this environment runs, the rest as pyproject.toml declares them). `packages.txt`
asks the Space for ffmpeg, which torchcodec decodes with. The model is loaded from the Hub by its id (the README
front matter links it); `SER_HF_MODEL=DIR python app.py` serves a local folder instead.

    DIR/README.md  app.py  requirements.txt  packages.txt  ser_hf/  examples/*.wav (when there are examples)
"""

import importlib.metadata
import shutil
from pathlib import Path

import ser_hf
from ser_hf.app.limits import CACHE_SECONDS, CONCURRENCY, MAX_DURATION_S, MAX_UPLOAD_MB, QUEUE_SIZE

# The pair datasets/torchcodec decode audio with (requirements.txt): newer torchcodec wheels need CUDA libraries.
PINNED = ("torch", "torchcodec")

_APP_TEMPLATE = '''"""Hugging Face Space: speech emotion recognition with {model_id}.

Exported by `ser-hf app {model_id} --export_space`: the ser_hf folder beside this file is the package the app
was exported from. SER_HF_MODEL=<folder or Hub id> serves another model.
"""

import os
from pathlib import Path

from ser_hf.app.demo_app import build_app
from ser_hf.app.limits import upload_bytes
from ser_hf.inference.classify import load_classifier

MODEL = os.environ.get("SER_HF_MODEL", {model_id!r})
EXAMPLES = sorted((Path(__file__).parent / "examples").glob("*.wav"))

# Anyone can upload to a public Space: what one request may cost is bounded (ser_hf/app/limits.py).
demo = build_app(load_classifier(MODEL), examples=EXAMPLES, top_k={top_k!r}, window_seconds={window_seconds!r},
                 overlap_seconds={overlap_seconds!r}, silence_dbfs={silence_dbfs!r}, title={title!r}, vad={vad!r},
                 max_duration_s={max_duration_s!r}, queue_size={queue_size!r}, concurrency={concurrency!r},
                 cache_seconds={cache_seconds!r})

if __name__ == "__main__":
    demo.launch(max_file_size=upload_bytes({max_upload_mb!r}))
'''

_README_TEMPLATE = """---
title: {title}
emoji: 🗣️
colorFrom: blue
colorTo: indigo
sdk: gradio
sdk_version: {gradio_version}
app_file: app.py
pinned: false
models:
  - {model_id}
---

# {title}

Upload or record speech and see the emotions [{model_id}](https://huggingface.co/{model_id}) recognises in it,
with the waveform and, for a file longer than {window_seconds:g} s, an emotion timeline.
Exported with `ser-hf app {model_id} --export_space DIR` from ser_hf (the `ser_hf/` folder is its source).
"""


def space_requirements():
    """ser_hf's runtime dependencies as requirement lines, torch and torchcodec pinned to the installed versions.

    Returns:
        list of str (gradio is left out: the Space's `sdk_version` installs it).
    """
    lines = []
    for requirement in importlib.metadata.requires("ser_hf") or []:
        if "extra ==" in requirement:
            continue
        name = requirement.split(";")[0].strip()
        bare = name.split("[")[0].split("=")[0].split(">")[0].split("<")[0].split("!")[0].split("~")[0].strip()
        if bare.lower() in PINNED:
            name = f"{bare}=={importlib.metadata.version(bare)}"
        lines.append(name)
    return lines


def export_space(out_dir, model_id, examples=(), top_k=3, window_seconds=2.0, overlap_seconds=1.0,
                 silence_dbfs=-50.0, title="Speech emotion recognition", vad=True, max_duration_s=MAX_DURATION_S,
                 max_upload_mb=MAX_UPLOAD_MB, queue_size=QUEUE_SIZE, concurrency=CONCURRENCY,
                 cache_seconds=CACHE_SECONDS):
    """Write a ready Hugging Face Space folder for `model_id`.

    Args:
        out_dir: the Space folder (created; files the export writes are replaced, others left alone).
        model_id: the model's Hub id (owner/name) the Space loads.
        examples: audio files copied into `examples/` and offered in the app.
        top_k, window_seconds, overlap_seconds, silence_dbfs, title, vad, max_duration_s, queue_size, concurrency,
            cache_seconds: the app's settings (`build_app`).
        max_upload_mb: the largest upload the Space takes (`launch(max_file_size=...)`).

    Returns:
        list of Path written (files, and the `ser_hf` folder).
    """
    import gradio

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = dict(model_id=model_id, top_k=top_k, window_seconds=window_seconds, overlap_seconds=overlap_seconds,
                    silence_dbfs=silence_dbfs, title=title, vad=vad, max_duration_s=max_duration_s,
                    max_upload_mb=max_upload_mb, queue_size=queue_size, concurrency=concurrency,
                    cache_seconds=cache_seconds)
    written = [out / "app.py", out / "README.md", out / "requirements.txt", out / "packages.txt", out / "ser_hf"]
    written[0].write_text(_APP_TEMPLATE.format(**settings))
    written[1].write_text(_README_TEMPLATE.format(gradio_version=gradio.__version__, **settings))
    written[2].write_text("\n".join(space_requirements()) + "\n")
    written[3].write_text("ffmpeg\n")
    package = Path(ser_hf.__file__).parent
    shutil.rmtree(written[4], ignore_errors=True)
    shutil.copytree(package, written[4], ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if examples:
        shutil.rmtree(out / "examples", ignore_errors=True)
        (out / "examples").mkdir()
        for i, clip in enumerate(examples):
            # Numbered so the app lists them in the order given; the name keeps the emotion code readable.
            written.append(Path(shutil.copy2(clip, out / "examples" / f"{i:02d}_{Path(clip).name}")))
    return written
