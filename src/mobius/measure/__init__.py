"""What judges media, shared by render, golden and fingerprint so none imports another's internals.

- `thumbnails`: the per-frame signature (block means of Y, U and V) and the differences between two.
- `soundprint`: the time-aligned audio signature (band energies every 10 ms) and its comparisons.
- `alignment`: matching a video's frames to a golden's (dropped, duplicated, frozen frames).
"""
