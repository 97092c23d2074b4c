"""Run an exported ONNX classifier with onnxruntime through the audio-classification pipeline's own code.

`load_onnx_classifier` returns transformers' `AudioClassificationPipeline` whose model is an onnxruntime session
standing in for the PyTorch module: file decoding (ffmpeg), feature extraction, the softmax and top-k are the
pipeline's, so everything `ser_hf.inference.classify` does with a pipeline (long-file windows, error rows,
`batched_scores`) works unchanged and its scores are the pipeline's softmax of the ONNX logits.

    classifier = load_onnx_classifier("outputs/demo/onnx")            # model.onnx beside config.json
    rows = classify_files(classifier, collect_audio_files(["clips/"]), batch_size=16)

An export folder (`ser-hf export`) holds model.onnx (and model.int8.onnx), config.json (labels) and
preprocessor_config.json (sampling rate, normalisation, attention mask).
"""

from pathlib import Path

import numpy as np
import torch
from transformers import AudioClassificationPipeline, AutoConfig, AutoFeatureExtractor
from transformers.modeling_outputs import SequenceClassifierOutput

from ser_hf.errors import UsageError
from ser_hf.inference.onnx_files import EXPORT_SUBDIR, INT8_FILE, ONNX_FILE


def resolve_onnx_model(path, int8=False):
    """The .onnx file meant by `path`: the file itself, an export folder, or a training run holding onnx/.

    Args:
        path: an .onnx file (its folder must hold config.json), an export folder, or a training output dir that
            `ser-hf export` wrote its default onnx/ subfolder into.
        int8: pick model.int8.onnx instead of model.onnx (ignored when `path` is a file).

    Returns:
        Path of the .onnx file.

    Raises:
        FileNotFoundError: nothing to load there, with the command that exports it.
    """
    path = Path(path)
    if path.is_file():
        return path
    name = INT8_FILE if int8 else ONNX_FILE
    for candidate in (path / name, path / EXPORT_SUBDIR / name):
        if candidate.is_file():
            return candidate
    export = f"ser-hf export {path} --onnx {path / EXPORT_SUBDIR}" + (" --int8" if int8 else "")
    raise FileNotFoundError(f"{path}: no {name} here nor in {path / EXPORT_SUBDIR} (export it first: `{export}`)")


def _providers(device):
    import onnxruntime

    if device is None or str(device).startswith("cpu"):
        return ["CPUExecutionProvider"]
    if str(device).startswith("cuda") and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        index = str(device).partition(":")[2] or "0"
        return [("CUDAExecutionProvider", {"device_id": int(index)}), "CPUExecutionProvider"]
    raise UsageError(f"device {device!r}: this onnxruntime offers {onnxruntime.get_available_providers()} "
                     "(install onnxruntime-gpu for cuda, or use --device cpu)")


_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
                "tensor(bool)": np.bool_}


class OnnxAudioClassifier:
    """An onnxruntime session with the attributes the pipeline and `batched_scores` use of a PyTorch model.

    Called with the feature extractor's tensors, it returns `SequenceClassifierOutput(logits=...)` on the CPU.
    """

    dtype = torch.float32
    device = torch.device("cpu")  # tensors go in and come out on the CPU whatever provider runs the graph
    hf_device_map = None

    def __init__(self, onnx_path, config, device=None):
        import onnxruntime

        self.path = Path(onnx_path)
        self.config = config
        self.session = onnxruntime.InferenceSession(str(self.path), providers=_providers(device))
        self.input_names = [i.name for i in self.session.get_inputs()]
        # The graph's own input types (an extractor's mask is int32, `batched_scores` builds an int64 one).
        self._types = {i.name: _NUMPY_TYPES[i.type] for i in self.session.get_inputs()}

    def to(self, *args, **kwargs):  # the pipeline moves its model to its device; a session stays where it is
        return self

    def eval(self):
        return self

    def can_generate(self):
        return False

    def __call__(self, **inputs):
        feed = {}
        for name in self.input_names:
            if name not in inputs:
                raise ValueError(f"{self.path}: the model needs input {name!r}, got {sorted(inputs)}")
            feed[name] = inputs[name].detach().cpu().numpy().astype(self._types[name], copy=False)
        logits = self.session.run(["logits"], feed)[0]
        return SequenceClassifierOutput(logits=torch.from_numpy(logits))


class OnnxAudioClassificationPipeline(AudioClassificationPipeline):
    """transformers' audio-classification pipeline around an `OnnxAudioClassifier`."""

    def check_model_type(self, supported_models):
        # The session stands in for the exported *ForSequenceClassification / *ForAudioClassification class:
        # nothing to check (the base class would log an error for an unknown class name).
        return


def load_onnx_classifier(path, device=None, int8=False):
    """`pipeline("audio-classification")` with an ONNX model run by onnxruntime.

    Args:
        path: an export folder, a training output dir holding onnx/, or an .onnx file (see `resolve_onnx_model`).
        device: None or "cpu" (CPUExecutionProvider), "cuda[:N]" (needs onnxruntime-gpu).
        int8: load model.int8.onnx (dynamic int8 quantization) instead of model.onnx.

    Returns:
        An `AudioClassificationPipeline`; its `.model` is the `OnnxAudioClassifier`.
    """
    onnx_path = resolve_onnx_model(path, int8)
    folder = onnx_path.parent
    config = AutoConfig.from_pretrained(folder)
    extractor = AutoFeatureExtractor.from_pretrained(folder)
    model = OnnxAudioClassifier(onnx_path, config, device)
    return OnnxAudioClassificationPipeline(model=model, feature_extractor=extractor, device="cpu",
                                           task="audio-classification")


def clip_logits(model, extractor, clips, batched=False):
    """Logits of `model` (PyTorch or `OnnxAudioClassifier`) for clips feature-extracted as the pipeline does.

    Args:
        model: called with the extractor's tensors, returns `.logits`.
        extractor: the model's feature extractor.
        clips: 1-D float32 arrays at the extractor's sampling rate.
        batched: one padded batch of every clip (with an attention mask) instead of one clip at a time; for models
            whose extractor returns a mask (others see the padding).

    Returns:
        float32 array (clips, labels).
    """
    rate = extractor.sampling_rate
    with torch.inference_mode():
        if batched:
            features = extractor(clips, sampling_rate=rate, return_tensors="pt", padding=True)
            return model(**features).logits.float().numpy()
        return np.concatenate([model(**extractor(clip, sampling_rate=rate, return_tensors="pt")).logits.float().numpy()
                               for clip in clips])


def compare_logits(reference, other, names):
    """How far two models' logits are apart, and whether their top labels agree.

    Args:
        reference, other: (clips, labels) arrays.
        names: {id: label}.

    Returns:
        {"clips", "max_abs_logit_diff", "labels_agree" (share of clips with the same top label), "reference_labels",
         "labels"}
    """
    top_ref, top = reference.argmax(axis=1), other.argmax(axis=1)
    return {"clips": len(reference), "max_abs_logit_diff": float(np.abs(reference - other).max()),
            "labels_agree": float((top_ref == top).mean()), "reference_labels": [names[int(i)] for i in top_ref],
            "labels": [names[int(i)] for i in top]}
