"""ser_hf: speech emotion recognition recipes on the Hugging Face stack."""

__version__ = "0.1.0"
