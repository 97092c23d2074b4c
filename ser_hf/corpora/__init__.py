"""Corpus loaders: each turns a folder of audio into metadata rows (path, speaker, emotion, ...)."""
