"""How far an optimised render is from the plain one: PSNR of decoded frames, relative error of latents."""

from __future__ import annotations

import math
from typing import Any


def psnr(reference: Any, candidate: Any, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB of `candidate` against `reference` (inf when identical)."""
    import numpy as np

    ref = np.asarray(reference, dtype=np.float64)
    got = np.asarray(candidate, dtype=np.float64)
    if ref.shape != got.shape:
        raise ValueError(f"shapes differ: {ref.shape} vs {got.shape}")
    mse = float(np.mean((ref - got) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def relative_error(reference: Any, candidate: Any) -> float:
    """‖candidate − reference‖ / ‖reference‖ in float64 (0.0 when identical)."""
    import numpy as np

    ref = np.asarray(reference, dtype=np.float64)
    got = np.asarray(candidate, dtype=np.float64)
    if ref.shape != got.shape:
        raise ValueError(f"shapes differ: {ref.shape} vs {got.shape}")
    norm = float(np.linalg.norm(ref))
    diff = float(np.linalg.norm(got - ref))
    return 0.0 if diff == 0 else (diff / norm if norm else math.inf)


def frames_uint8(video: Any) -> Any:
    """Decoded frames in [0, 1] as the 8-bit pixels an MP4 gets (what PSNR is measured on)."""
    import numpy as np

    return np.clip(np.rint(np.asarray(video) * 255.0), 0, 255).astype(np.uint8)
