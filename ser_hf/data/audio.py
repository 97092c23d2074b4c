"""Audio decoding, cropping, feature extraction and batch padding shared by training and evaluation.

Evaluation follows what `pipeline("audio-classification")` does with a file: decode at 16 kHz, run the
feature extractor on the whole clip, no padding. `SERTrainer` runs padding-sensitive models one clip at
a time during evaluation, so the metrics we report are the ones the pipeline gives.
"""

import numpy as np
import soundfile as sf

from ser_hf.corpora.files import SAMPLE_RATE

# wav2vec2 / HuBERT / WavLM conv front ends span 400 samples (25 ms at 16 kHz) for their first output frame;
# shorter input crashes them ("Kernel size can't be greater than actual input size"). The audio scan excludes
# such clips from training and inference refuses them, with this one threshold.
MIN_SAMPLES = 400


def decode_16k_mono(path):
    """Decode a file at 16 kHz and average its channels: what training has always read from `datasets.Audio`.

    The pipeline's ffmpeg `-ac 1` mixes stereo as (L+R)/sqrt(2) instead: the same signal up to a scale, which the
    feature extractor's normalisation removes (a model with do_normalize=False would see stereo files 0.7x as loud
    in training as in the pipeline).

    Args:
        path: an audio file torchcodec (ffmpeg) can decode.

    Returns:
        A 1-D float32 array.
    """
    from torchcodec.decoders import AudioDecoder  # imported here: the module imports without torchcodec

    data = AudioDecoder(str(path), sample_rate=SAMPLE_RATE).get_all_samples().data.numpy()
    return data.mean(axis=0, dtype=np.float32) if data.shape[0] > 1 else data[0].astype(np.float32, copy=False)


def crop(array, max_samples, random=False):
    """Crop to at most `max_samples`: a random window (training) or the start (evaluation).

    The window comes from torch's global RNG, which the Trainer seeds and stores in every checkpoint, so a
    resumed run draws the same crops as an uninterrupted one.

    Args:
        array: 1-D waveform.
        max_samples: maximum length; None keeps the whole clip.
        random: a random window when True, else the first `max_samples`.

    Returns:
        The cropped waveform (the array itself when it is short enough).
    """
    if max_samples is None or len(array) <= max_samples:
        return array
    import torch  # here, not at the top: inference and `--help` import this module without the training stack

    start = int(torch.randint(0, len(array) - max_samples + 1, (1,))) if random else 0
    return array[start : start + max_samples]


def audio_duration_seconds(path):
    """Duration from the file header, without decoding (soundfile first, torchcodec for other formats).

    Args:
        path: audio file.

    Returns:
        Seconds (0.0 when the header has no duration).
    """
    try:
        info = sf.info(path)
        return info.frames / info.samplerate
    except (RuntimeError, sf.LibsndfileError):
        from torchcodec.decoders import AudioDecoder

        metadata = AudioDecoder(path).metadata
        return float(metadata.duration_seconds_from_header or 0.0)


class AudioTransform:
    """On-the-fly `datasets` transform: load the 16 kHz clip, crop, feature-extract (per clip, no padding).

    Args:
        load_audio: path -> 1-D 16 kHz float32 array: `DecodedAudioCache.load` (decoded once, read every epoch) or
            `decode_16k_mono` (decoded every time).
        feature_extractor: the model's feature extractor (normalisation happens per clip, as in the pipeline).
        max_seconds: crop length; None keeps whole clips.
        train: random crops when True; a fixed crop from the start otherwise.
        augment: `augment(samples, sample_rate)` applied to training clips after cropping (see ser_hf.data.augment);
            never given to evaluation transforms.
    """

    def __init__(self, load_audio, feature_extractor, max_seconds, train, augment=None):
        if augment is not None and not train:
            raise ValueError("augmentation is for training data only")
        self.load_audio = load_audio
        self.feature_extractor = feature_extractor
        self.max_samples = None if max_seconds is None else int(max_seconds * SAMPLE_RATE)
        self.train = train
        self.augment = augment

    def __call__(self, batch):
        # Length grouping reads the "length" column through the transform: pass it through.
        if "path" not in batch:
            return batch
        # Only the window is copied out of a memory-mapped clip.
        arrays = [np.array(crop(self.load_audio(path), self.max_samples, random=self.train), dtype=np.float32)
                  for path in batch["path"]]
        if self.augment is not None:
            arrays = [self.augment(array, SAMPLE_RATE) for array in arrays]
        features = self.feature_extractor(arrays, sampling_rate=SAMPLE_RATE)
        input_name = self.feature_extractor.model_input_names[0]
        # Class ids, or (--task dimensional) each clip's [arousal, dominance, valence] in [0, 1].
        labels = batch["dimensions"] if "dimensions" in batch else batch["label"]
        output = {input_name: [np.asarray(x, dtype=np.float32) for x in features[input_name]], "labels": labels}
        if "length" in batch:
            output["length"] = batch["length"]
        if "intensity_label" in batch:  # --task multitask; -100 where a clip has no intensity
            output["intensity_labels"] = batch["intensity_label"]
        output["path"] = batch["path"]  # lets the trainer name the file behind a non-finite batch
        return output


