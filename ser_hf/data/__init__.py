"""Data: from corpus rows to datasets. Audio decoding, the audio scan, speaker folds and splits, the decoded-audio
cache, augmentation, the pseudo-label pool; `prepare.prepare_corpus` is the one entry."""
