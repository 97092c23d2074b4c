"""Corpus loaders: each turns a folder of audio (or a manifest, or a Hub dataset) into metadata rows (path,
label, speaker, ...). The registry says which corpora exist and how each is loaded and described."""

from ser_hf.corpora.registry import CORPORA, CorpusSpec, corpus_names, get_corpus

__all__ = ["CORPORA", "CorpusSpec", "corpus_names", "get_corpus"]
