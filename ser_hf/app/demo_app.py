"""The demo app: upload or record speech, see the top emotions, the waveform and, for a long file, a timeline.

What the app shows is what `predict.py` gives: the label and scores come from `classify_file` (the pipeline on
the file, windows of 10 s for longer files), and a file it cannot classify shows the same one-line reason as
predict's ERROR row (with the server's upload folder left out of the path). A file longer than one timeline
window also gets its emotion timeline (`emotion_timeline`, drawn under the waveform) and a table of its windows.
A `--task dimensional` model's file shows its arousal, dominance and valence as three bars (and no timeline).

Anyone may upload anything to a public Space, so the app bounds what a request costs (`ser_hf.app.limits`): a
recording longer than `max_duration_s` is refused from its header before it is decoded, a file without speech
(silero-vad; `vad=False` turns the check off) reads "no speech detected" instead of an emotion, the queue holds
`queue_size` waiting requests and runs `concurrency` at once (the next client is told the queue is full), the figure
drawn for a request and the upload are deleted when the request ends, Gradio's other copies after `cache_seconds`. The
upload size limit is a `launch` setting: `demo.launch(max_file_size=upload_bytes(MAX_UPLOAD_MB))`.

    demo = build_app(load_classifier("outputs/demo"), examples=demo_examples("outputs/demo"))
    demo.launch(server_name="127.0.0.1", max_file_size=upload_bytes(MAX_UPLOAD_MB))
"""

import contextlib
import shutil
import tempfile
from pathlib import Path

from ser_hf.app.examples import example_label
from ser_hf.app.limits import CACHE_SECONDS, CONCURRENCY, MAX_DURATION_S, QUEUE_SIZE, cache_schedule, duration_refusal
from ser_hf.data.audio import decode_16k_mono
from ser_hf.inference.classify import classify_file, is_no_speech, regression_outputs
from ser_hf.inference.timeline import OVERLAP_SECONDS, SILENCE_DBFS, WINDOW_SECONDS, emotion_timeline
from ser_hf.reporting.plots import plot_waveform
from ser_hf.reporting.timeline_report import save_timeline

# elem_id of the result line: what a user reads first, and what the browser tests read.
RESULT_ID = "ser-result"
TABLE_HEADERS = ["start (s)", "end (s)", "emotion", "score"]


def analyse_file(classifier, path, work_dir, top_k=3, window_seconds=WINDOW_SECONDS,
                 overlap_seconds=OVERLAP_SECONDS, silence_dbfs=SILENCE_DBFS, vad=True, max_duration_s=None):
    """Everything the app shows for one file.

    Args:
        classifier: an audio-classification pipeline (`load_classifier`).
        path: the uploaded or recorded file.
        work_dir: folder for the figure.
        top_k: emotions listed with their scores.
        window_seconds, overlap_seconds, silence_dbfs: the timeline's windows and energy gate (`emotion_timeline`).
        vad: ask the voice-activity detector first: a file without speech gets "no speech detected", no emotion;
            the timeline's windows follow the speech.
        max_duration_s: a longer recording is refused (from its header) without being decoded; None takes any.

    Returns:
        dict: message (Markdown: the top emotion, "no speech detected", or why the file cannot be classified),
        scores ({label: score} of the top_k, or None), image (PNG path: waveform, with the timeline under it for a
        long file; None on error), windows (timeline rows for the table; [] without a timeline), row
        (`classify_file`'s row; None for a refused recording).
        A `--task dimensional` model's message gives its three values, `scores` holds them held to [0, 1] (the
        bars), and there is no timeline.
    """
    path, name = str(path), Path(path).name
    refusal = duration_refusal(path, max_duration_s) if max_duration_s else None
    if refusal:
        return {"message": refusal, "scores": None, "image": None, "windows": [], "row": None}
    row = classify_file(classifier, path, top_k=top_k, vad=vad)
    if row["error"]:
        # The reason predict.py prints, naming the file as the user knows it rather than the upload folder.
        error = row["error"].replace(path, name)
        return {"message": f"**Cannot classify {name}**: {error}", "scores": None, "image": None, "windows": [],
                "row": row}
    over = f" (mean over {row['chunks']} windows of 10 s)" if row["chunks"] > 1 else ""
    work_dir = Path(work_dir)
    if is_no_speech(row):
        image = plot_waveform(decode_16k_mono(path), work_dir / f"{Path(name).stem}_waveform.png", title=name)
        return {"message": f"**No speech detected** in {name}: the voice-activity detector found none, so no emotion "
                           "is given (the model would name one for any sound)",
                "scores": None, "image": str(image), "windows": [], "row": row}
    if row.get("dimensions"):  # a --task dimensional model: its three values, no classes (and no timeline)
        return _dimensional_result(row, path, name, work_dir, over)
    message = f"Top emotion: **{row['label']}** {row['score']:.3f}{over}"
    windows = []
    if row["seconds"] > window_seconds:
        timeline = emotion_timeline(classifier, path, window_seconds, overlap_seconds, silence_dbfs, vad=vad)
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


def _delete_upload(path, keep_names):
    """Delete an answered upload (and its folder, once empty): a stranger's recording is not kept after its request.

    Only files in Gradio's upload folder, and never its copy of an example (`keep_names`: the examples' file names).
    The browser has the recording already; Gradio's `delete_cache` removes what no request answered (a client told
    the queue is full, a closed tab).
    """
    from gradio.utils import get_upload_folder

    path, root = Path(path).resolve(), Path(get_upload_folder()).resolve()
    if root in path.parents and path.name not in keep_names:
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # not empty: another upload of the same content
            path.parent.rmdir()


def build_app(classifier, examples=(), top_k=3, window_seconds=WINDOW_SECONDS, overlap_seconds=OVERLAP_SECONDS,
              silence_dbfs=SILENCE_DBFS, title="Speech emotion recognition", vad=True, max_duration_s=MAX_DURATION_S,
              queue_size=QUEUE_SIZE, concurrency=CONCURRENCY, cache_seconds=CACHE_SECONDS):
    """The Gradio Blocks of the demo app (not launched), its queue set.

    Args:
        classifier: an audio-classification pipeline (`load_classifier`).
        examples: audio files offered as one-click examples (`demo_examples`, `long_example`).
        top_k, window_seconds, overlap_seconds, silence_dbfs, vad, max_duration_s: as in `analyse_file`.
        title: page title and heading.
        queue_size: requests that may wait; one more is told the queue is full (None: no limit).
        concurrency: requests run at once.
        cache_seconds: Gradio's copies of uploads no request answered, and of results, are deleted this long after
            they were made (longer than a request may wait in the queue: `queue_size` x the slowest request).

    Returns:
        gr.Blocks, with analytics off (no request leaves the machine).
    """
    import gradio as gr
    from PIL import Image

    outputs = regression_outputs(classifier)  # a --task dimensional model: its values as bars, no timeline

    keep = {Path(p).name for p in examples}  # Gradio's copies of the examples serve every visitor

    def run(path):
        if not path:  # cleared
            return "", None, None, gr.update(value=None, visible=False)
        if not Path(path).is_file():  # Gradio's cache deleted it while it waited in the queue
            return (f"**{Path(path).name}** is no longer on the server (it waited longer than the app keeps uploads): "
                    "upload it again", None, None, gr.update(value=None, visible=False))
        work = tempfile.mkdtemp(prefix="ser_hf_app_")
        try:
            shown = analyse_file(classifier, path, work, top_k, window_seconds, overlap_seconds, silence_dbfs, vad,
                                 max_duration_s)
            # In memory, so that the request's folder can go now: Gradio writes its own copy to its cache.
            image = None
            if shown["image"]:
                with Image.open(shown["image"]) as drawn:
                    image = drawn.copy()
        finally:
            shutil.rmtree(work, ignore_errors=True)
            _delete_upload(path, keep)
        return shown["message"], shown["scores"], image, gr.update(value=shown["windows"] or None,
                                                                   visible=bool(shown["windows"]))

    limit = f" Recordings of up to {max_duration_s:g} s." if max_duration_s else ""
    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=cache_schedule(cache_seconds)) as demo:
        if outputs:
            gr.Markdown(f"# {title}\nUpload or record speech: the model's {', '.join(outputs)} (each on a 0-1 scale; a "
                        f"long file's mean over 10 s windows) and the waveform.{limit}")
        else:
            gr.Markdown(f"# {title}\nUpload or record speech: the model's top emotions, the waveform and, for a file "
                        f"longer than {window_seconds:g} s, an emotion timeline ({window_seconds:g} s windows every "
                        f"{window_seconds - overlap_seconds:g} s{' over the speech' if vad else ''}; quiet windows are "
                        f"marked silence).{limit}")
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
    return demo.queue(max_size=queue_size, default_concurrency_limit=concurrency)
