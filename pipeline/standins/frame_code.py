"""A machine-readable frame index stamped into each synthetic frame, readable after H.264 and resizing.

The code is a row of 16 square-ish blocks along the top edge, starting at the left: a white and a black guard
block (the decoder's brightness references), 13 data bits (most significant first, white = 1) and an even-parity
block. Block sizes are fractions of the frame width and height, so the code scales with the frame: 48x49 px
blocks at 1920x1080, 6x6 px at 256x144, still ~3x3 px at 128x72. Only luma matters (black/white survive yuv420p).
"""

from __future__ import annotations

import numpy as np

DATA_BITS = 13
MAX_FRAME_INDEX = (1 << DATA_BITS) - 1  # 8191 frames: 4.5 min at 30 fps
N_BLOCKS = 2 + DATA_BITS + 1  # guards + data + parity
BLOCK_WIDTH_FRACTION = 0.025  # of the frame width (16 blocks span 40 % of it)
BLOCK_HEIGHT_FRACTION = 0.045  # of the frame height
_WHITE, _BLACK = 255, 0


def code_region(width: int, height: int) -> tuple[int, int, int, int]:
    """Pixel box `(x0, y0, x1, y1)` (exclusive ends) the code covers in a `width` x `height` frame."""
    return 0, 0, int(np.ceil(N_BLOCKS * BLOCK_WIDTH_FRACTION * width)), int(np.ceil(BLOCK_HEIGHT_FRACTION * height))


def _bits(index: int) -> list[int]:
    data = [(index >> (DATA_BITS - 1 - i)) & 1 for i in range(DATA_BITS)]
    return [1, 0, *data, sum(data) & 1]


def stamp_frame_index(frame: np.ndarray, index: int) -> np.ndarray:
    """Draw the code for `index` (0..MAX_FRAME_INDEX) into `frame` ((H, W, 3) uint8 RGB) in place; returns it."""
    if not 0 <= index <= MAX_FRAME_INDEX:
        raise ValueError(f"frame index {index} outside 0..{MAX_FRAME_INDEX}")
    height, width = frame.shape[:2]
    y1 = int(np.ceil(BLOCK_HEIGHT_FRACTION * height))
    for k, bit in enumerate(_bits(index)):
        x0 = int(round(k * BLOCK_WIDTH_FRACTION * width))
        x1 = int(round((k + 1) * BLOCK_WIDTH_FRACTION * width))
        frame[:y1, x0:x1] = _WHITE if bit else _BLACK
    return frame


def decode_frame_index(frame: np.ndarray) -> int:
    """Read the frame index from a stamped frame ((H, W, 3) uint8 RGB, any size >= 128 px wide).

    Averages the luma of the central part of each block, thresholds halfway between the two guard blocks, and
    checks the parity. Raises `ValueError` when the frame carries no readable code.
    """
    if frame.ndim != 3 or frame.shape[2] < 3:
        raise ValueError(f"expected an (H, W, 3) frame, got shape {frame.shape}")
    height, width = frame.shape[:2]
    if width < 64 or height < 36:
        raise ValueError(f"frame {width}x{height} is too small to carry a frame code")
    luma = frame[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    bw, bh = BLOCK_WIDTH_FRACTION * width, BLOCK_HEIGHT_FRACTION * height
    y0, y1 = int(np.floor(0.25 * bh)), max(int(np.ceil(0.75 * bh)), int(np.floor(0.25 * bh)) + 1)
    means = []
    for k in range(N_BLOCKS):
        x0 = int(np.floor((k + 0.25) * bw))
        x1 = max(int(np.ceil((k + 0.75) * bw)), x0 + 1)
        means.append(float(luma[y0:y1, x0:x1].mean()))
    white, black = means[0], means[1]
    if white - black < 64:
        raise ValueError(f"no frame code: guard blocks too similar (white {white:.0f}, black {black:.0f})")
    threshold = 0.5 * (white + black)
    bits = [int(m > threshold) for m in means[2:]]
    data, parity = bits[:DATA_BITS], bits[DATA_BITS]
    if sum(data) & 1 != parity:
        raise ValueError("frame code parity check failed")
    return int("".join(map(str, data)), 2)
