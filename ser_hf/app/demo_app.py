"""The demo app: upload or record speech, see the top emotions, the waveform and, for a long file, a timeline.

What the app shows is what `predict.py` gives: the label and scores come from `classify_file` (the pipeline on
the file, windows of 10 s for longer files), and a file it cannot classify shows the same one-line reason as
predict's ERROR row (with the server's upload folder left out of the path). A file longer than one timeline
window also gets its emotion timeline (`emotion_timeline`, drawn under the waveform) and a table of its windows.
A `--task dimensional` model's file shows its arousal, dominance and valence as three bars (and no timeline).

    demo = build_app(load_classifier("outputs/demo"), examples=demo_examples("outputs/demo"))
    demo.launch(server_name="127.0.0.1")
"""

import atexit
import shutil
import tempfile
import time
from pathlib import Path

from ser_hf.app.examples import example_label
from ser_hf.data.audio import decode_16k_mono
from ser_hf.inference.classify import classify_file, regression_outputs
from ser_hf.inference.timeline import OVERLAP_SECONDS, SILENCE_DBFS, WINDOW_SECONDS, emotion_timeline
from ser_hf.reporting.plots import plot_waveform
from ser_hf.reporting.timeline_report import save_timeline

# elem_id of the result line: what a user reads first, and what the browser tests read.
RESULT_ID = "ser-result"
TABLE_HEADERS = ["start (s)", "end (s)", "emotion", "score"]
# The figure the app draws per request, and Gradio's own copies of uploads and outputs, are deleted once this old:
# an app left running for weeks must not fill the disk.
CACHE_SECONDS = 3600


def prune_old_results(work_dir, max_age_seconds=CACHE_SECONDS):
    """Delete the request folders under `work_dir` last modified more than `max_age_seconds` ago."""
    cutoff = time.time() - max_age_seconds
    for folder in Path(work_dir).iterdir():
        if folder.is_dir() and folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)


def analyse_file(classifier, path, work_dir, top_k=3, window_seconds=WINDOW_SECONDS,
                 overlap_seconds=OVERLAP_SECONDS, silence_dbfs=SILENCE_DBFS):
    """Everything the app shows for one file.

    Args:
        classifier: an audio-classification pipeline (`load_classifier`).
        path: the uploaded or recorded file.
        work_dir: folder for the figure.
        top_k: emotions listed with their scores.
        window_seconds, overlap_seconds, silence_dbfs: the timeline's windows and energy gate (`emotion_timeline`).

    Returns:
        dict: message (Markdown: the top emotion, or why the file cannot be classified), scores ({label: score}
        of the top_k, or None), image (PNG path: waveform, with the timeline under it for a long file; None on
        error), windows (timeline rows for the table; [] without a timeline), row (`classify_file`'s row).
        A `--task dimensional` model's message gives its three values, `scores` holds them held to [0, 1] (the
        bars), and there is no timeline.
    """
    path, name = str(path), Path(path).name
    row = classify_file(classifier, path, top_k=top_k)
    if row["error"]:
        # The reason predict.py prints, naming the file as the user knows it rather than the upload folder.
        error = row["error"].replace(path, name)
        return {"message": f"**Cannot classify {name}**: {error}", "scores": None, "image": None, "windows": [],
                "row": row}
    over = f" (mean over {row['chunks']} windows of 10 s)" if row["chunks"] > 1 else ""
    work_dir = Path(work_dir)
    if row.get("dimensions"):  # a --task dimensional model: its three values, no classes (and no timeline)
        return _dimensional_result(row, path, name, work_dir, over)
    message = f"Top emotion: **{row['label']}** {row['score']:.3f}{over}"
    windows = []
    if row["seconds"] > window_seconds:
        timeline = emotion_timeline(classifier, path, window_seconds, overlap_seconds, silence_dbfs)
        if not timeline["error"]:
            image = save_timeline(timeline, work_dir, stem=f"{Path(name).stem}_timeline")["png"]
            windows = [[w["start"], w["end"], w["label"], None if w["score"] is None else round(w["score"], 3)]
                       for w in timeline["windows"]]
    if not windows:
        image = plot_waveform(decode_16k_mono(path), work_dir / f"{Path(name).stem}_waveform.png", title=name)
    scores = {label: score for label, score in row["top_k"]}
    return {"message": message, "scores": scores, "image": str(image), "windows": windows, "row": row}


def _dimensional_result(row, path, name, work_dir, over):
    """What the app shows for a regression model's file: each value in the message, as bars, and the waveform.

    The bars (gr.Label's confidences) are the values held to [0, 1]; the message gives them as the model does.
    """
    values = row["dimensions"]
    message = " · ".join(f"{dim} **{value:.2f}**" for dim, value in values.items()) + f" (0-1 scale{over})"
    image = plot_waveform(decode_16k_mono(path), work_dir / f"{Path(name).stem}_waveform.png", title=name)
    scores = {dim: min(1.0, max(0.0, value)) for dim, value in values.items()}
    return {"message": message, "scores": scores, "image": str(image), "windows": [], "row": row}


def build_app(classifier, examples=(), top_k=3, window_seconds=WINDOW_SECONDS, overlap_seconds=OVERLAP_SECONDS,
              silence_dbfs=SILENCE_DBFS, title="Speech emotion recognition"):
    """The Gradio Blocks of the demo app (not launched).

    Args:
        classifier: an audio-classification pipeline (`load_classifier`).
        examples: audio files offered as one-click examples (`demo_examples`, `long_example`).
        top_k, window_seconds, overlap_seconds, silence_dbfs: as in `analyse_file`.
        title: page title and heading.

    Returns:
        gr.Blocks, with analytics off (no request leaves the machine) and files older than `CACHE_SECONDS` deleted.
    """
    import gradio as gr

    outputs = regression_outputs(classifier)  # a --task dimensional model: its values as bars, no timeline
    work = Path(tempfile.mkdtemp(prefix="ser_hf_app_"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)

    def run(path):
        if not path:  # cleared
            return "", None, None, gr.update(value=None, visible=False)
        prune_old_results(work)
        shown = analyse_file(classifier, path, tempfile.mkdtemp(dir=work), top_k, window_seconds, overlap_seconds,
                             silence_dbfs)
        return shown["message"], shown["scores"], shown["image"], gr.update(value=shown["windows"] or None,
                                                                            visible=bool(shown["windows"]))

    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(CACHE_SECONDS, CACHE_SECONDS)) as demo:
        if outputs:
            gr.Markdown(f"# {title}\nUpload or record speech: the model's {', '.join(outputs)} (each on a 0-1 scale; a "
                        "long file's mean over 10 s windows) and the waveform.")
        else:
            gr.Markdown(f"# {title}\nUpload or record speech: the model's top emotions, the waveform and, for a file "
                        f"longer than {window_seconds:g} s, an emotion timeline ({window_seconds:g} s windows every "
                        f"{window_seconds - overlap_seconds:g} s; quiet windows are marked silence).")
        with gr.Row():
            with gr.Column():
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Speech")
                if examples:
                    gr.Examples([[str(p)] for p in examples], inputs=audio, label="Examples",
                                example_labels=[example_label(p) for p in examples])
            with gr.Column():
                message = gr.Markdown(elem_id=RESULT_ID)
                scores = gr.Label(num_top_classes=len(outputs) if outputs else top_k,
                                  label=f"{', '.join(outputs)} (0-1)" if outputs else "Top emotions")
        image = gr.Image(type="filepath", label="Waveform and emotion timeline", interactive=False)
        table = gr.Dataframe(headers=TABLE_HEADERS, label="Timeline windows", visible=False, interactive=False)
        audio.change(run, inputs=audio, outputs=[message, scores, image, table])
    return demo
