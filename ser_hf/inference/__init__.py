"""Inference: from audio files to scores, as `pipeline("audio-classification")` gives them.

The pipeline on short files, windows over long ones (`windows`: the one windowed decode), batches, the ONNX
backend and its export, emotion timelines and a multitask model's intensity per file.
"""
