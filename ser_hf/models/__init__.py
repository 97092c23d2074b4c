"""Models: building and freezing the encoders, the heads on top of them (probe, intensity), probe features.

Below training: nothing here knows about a Trainer, a run or an output dir's layout beyond a head's own files.
"""
