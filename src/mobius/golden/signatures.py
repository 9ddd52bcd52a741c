"""The golden's signatures file (format 2): every frame's thumbnails and the soundtrack's band energies.

    <slug>/signatures.npz   numpy's compressed archive (zip of .npy arrays, readable by any numpy):
      y (frames, 36, 64) u, v (frames, 18, 32)  uint8 block means (mobius.measure.thumbnails)
      times (frames,)                           float64 seconds of each frame from the first
      audio (hops, 24)                          float16 dB of band power every 10 ms (mobius.measure.soundprint)

About 0.3 MB for a 30 s preview. Written under a temp name, fsynced and renamed (safety.atomic).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mobius.errors import InputError
from mobius.measure.decode import FrameSignatures
from mobius.safety.atomic import atomic_write_bytes

FILE = "signatures.npz"
ARRAYS = ("y", "u", "v", "times", "audio")


@dataclass
class Signatures:
    frames: FrameSignatures
    audio: object  # (hops, 24) float16 dB, or an empty array when the video has no audio

    def write(self, path: Path) -> Path:
        import numpy as np

        buffer = io.BytesIO()
        np.savez_compressed(buffer, y=_u8(self.frames.y), u=_u8(self.frames.u), v=_u8(self.frames.v),
                            times=np.asarray(self.frames.times, dtype=np.float64),
                            audio=np.asarray(self.audio, dtype=np.float16))
        atomic_write_bytes(path, buffer.getvalue())
        return path


def _u8(array):
    import numpy as np

    return np.clip(np.rint(np.asarray(array, dtype=np.float32)), 0, 255).astype(np.uint8)


def compute(sample, frames: FrameSignatures) -> Signatures:
    """The signatures of a decoded video (`media.read_every_frame`)."""
    import numpy as np

    from mobius.measure.soundprint import BANDS, band_energies

    audio = (band_energies(sample.audio, sample.sample_rate) if sample.audio is not None
             else np.zeros((0, BANDS), dtype=np.float16))
    return Signatures(FrameSignatures(_u8(frames.y), _u8(frames.u), _u8(frames.v), frames.times), audio)


def read_signatures(folder: Path) -> Signatures | None:
    """The stored signatures, None when the golden predates them; InputError (exit 1) when damaged."""
    import numpy as np

    path = Path(folder) / FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in ARRAYS}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"golden file {path} is damaged: {exc}",
                         hint="restore it (`mobius golden restore`) or rebuild it (`mobius golden upgrade`)") from None
    frames = FrameSignatures(arrays["y"], arrays["u"], arrays["v"], arrays["times"])
    if not (len(frames.y) == len(frames.u) == len(frames.v) == len(frames.times)):
        raise InputError(f"golden file {path} is damaged: its arrays disagree on the number of frames",
                         hint="restore it (`mobius golden restore`) or rebuild it (`mobius golden upgrade`)")
    return Signatures(frames, arrays["audio"])
