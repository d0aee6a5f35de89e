"""Decode, crop and resize face images (pure PIL + numpy; runs in worker processes).

Truncated files are errors, never padded: PIL's ``LOAD_TRUNCATED_IMAGES`` is forced off and
every image is fully loaded before use.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageFile

#: one job: (file or None, crop box or None, inline pixels or None)
Job = tuple[str | None, tuple[int, int, int, int] | None, np.ndarray | None]

_BAD_IMAGE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16/32-bit grey: scale into 8 bits
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() or 1.0
        img = Image.fromarray((arr * (255.0 / hi)).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def decode_one(job: Job, size: int) -> np.ndarray:
    """One face as uint8 [size, size, 3].

    Args:
        job: ``(file, bbox, pixels)``; ``pixels`` (uint8 [H, W] or [H, W, 3]) wins over ``file``.
        size: output side in pixels.

    Raises:
        OSError, ValueError, SyntaxError: the image is unreadable, truncated or the box is empty.
    """
    file, bbox, pixels = job
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    if pixels is not None:
        img = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))
    else:
        assert file is not None, "a job needs a file or pixels"
        with Image.open(file) as im:
            im.load()
            img = im.copy()
    img = _to_rgb(img)
    if bbox is not None:
        left, top, right, bottom = bbox
        left, top = max(0, left), max(0, top)
        right, bottom = min(img.width, right), min(img.height, bottom)
        if right <= left or bottom <= top:
            raise ValueError(f"crop box {bbox} lies outside the {img.width}x{img.height} image")
        img = img.crop((left, top, right, bottom))
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)
    out = np.asarray(img, dtype=np.uint8)
    assert out.shape == (size, size, 3), out.shape
    return out


def decode_chunk(
    jobs: Sequence[Job], size: int, encoding: str
) -> tuple[list[bytes | None], list[tuple[int, str]]]:
    """Decode a chunk of jobs; failures are returned, not raised.

    Returns:
        ``(images, errors)``: ``images[i]`` is the encoded face (raw HxWx3 bytes or PNG) or
        None when job ``i`` failed; ``errors`` holds ``(i, reason)`` for the failures.
    """
    images: list[bytes | None] = []
    errors: list[tuple[int, str]] = []
    for i, job in enumerate(jobs):
        try:
            arr = decode_one(job, size)
        except _BAD_IMAGE as e:
            images.append(None)
            errors.append((i, f"{type(e).__name__}: {e}"))
            continue
        images.append(encode(arr, encoding))
    return images, errors


def encode(arr: np.ndarray, encoding: str) -> bytes:
    """uint8 [H, W, 3] -> raw bytes or PNG bytes."""
    if encoding == "raw":
        return arr.tobytes()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes written by :func:`encode` -> uint8 [H, W, 3]."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)
