"""Audio constants and transforms shared by training, evaluation and inference."""

SAMPLE_RATE = 16_000
