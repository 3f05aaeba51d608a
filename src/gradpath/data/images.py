"""Reading an image file and letterboxing it: the one implementation used by training, validation, prediction
and export, so the same checkpoint sees the same input tensor in every command.

- ``read_image`` decodes with PIL, applies the EXIF orientation (a phone photo stored sideways is read upright,
  as OpenCV's ``imread`` does for YOLOv5) and returns (H, W, 3) uint8 RGB. 16-bit greyscale is reduced to its
  high byte (OpenCV's 16->8 bit rule), alpha is dropped, CMYK/palette/greyscale are converted to RGB.
- ``letterbox`` scales the long side to the canvas (PIL bilinear, which widens its filter when shrinking) and
  places the image at the integer offset ``(size - new) // 2``; the offset it reports is the one it used, so
  ``original = (canvas - pad) / gain`` holds exactly.

NOTE: PIL rather than ``torchvision.io``, whose decoders are deprecated since torchvision 0.29 and which ignores
EXIF orientation.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gradpath.errors import DataError

__all__ = ["FILL", "IMAGE_SUFFIXES", "list_images", "read_image", "image_size", "letterbox_params", "resize_long_side",
           "place_on_canvas", "letterbox"]

FILL = 114  # letterbox / border grey, as in YOLOv5
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

# EXIF orientations 5-8 are transposed: width and height swap when the orientation is applied
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED = {5, 6, 7, 8}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


def list_images(source: str | os.PathLike) -> list[Path]:
    """The image files of ``source`` (one file, or a folder searched non-recursively), sorted: what ``predict``
    runs on. A missing source or a folder without images is a one-line error."""
    src = Path(source)
    if src.is_file():
        return [src]
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {src}")
        return files
    raise DataError(f"--source {src} does not exist")


def _open_error(path: Path, e: BaseException) -> DataError:
    if isinstance(e, FileNotFoundError):
        return DataError(f"{path}: image file not found")
    if isinstance(e, IsADirectoryError):
        return DataError(f"{path}: is a folder, not an image file")
    if isinstance(e, Image.DecompressionBombError):
        size = str(e).split(",")[0]  # "Image size (N pixels) exceeds limit of M pixels"
        return DataError(f"{path}: image too large, refused as a possible decompression bomb ({size})")
    if isinstance(e, OSError) and Path(path).is_file() and Path(path).stat().st_size == 0:
        return DataError(f"{path}: empty image file (0 bytes)")
    if isinstance(e, UnidentifiedImageError):  # PIL's message repeats the path
        return DataError(f"{path}: corrupt or unreadable image (not a format PIL can identify)")
    detail = str(e).splitlines()[0][:100] if str(e) else type(e).__name__
    return DataError(f"{path}: corrupt or unreadable image ({detail})")


def _to_rgb(im: Image.Image) -> np.ndarray:
    if im.mode in _SIXTEEN_BIT_MODES:
        # convert("RGB") would clip 16-bit values at 255 (a white image); keep the high byte instead
        g = (np.clip(np.asarray(im, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2))
    if im.mode == "F":
        g = np.clip(np.asarray(im, dtype=np.float64), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2))
    return np.array(im.convert("RGB"))


def read_image(path: str | os.PathLike) -> np.ndarray:
    """(H, W, 3) uint8 RGB with the EXIF orientation applied; a missing, empty, corrupt, truncated or
    over-large file is a one-line ``DataError`` naming it."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # between 1x and 2x PIL's pixel limit PIL only warns; the file is read (it is a real image)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                ImageOps.exif_transpose(im, in_place=True)  # in place: a copy costs ~10% of a 640 px decode
                return _to_rgb(im)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError,
            EOFError) as e:
        raise _open_error(path, e) from None


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) as ``read_image`` will return it (EXIF orientation applied), from the header only."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if im.getexif().get(_EXIF_ORIENTATION) in _TRANSPOSED:
                    w, h = h, w
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError,
            EOFError) as e:
        raise _open_error(path, e) from None
    return h, w


def letterbox_params(h0: int, w0: int, size: int) -> tuple[float, int, int, int, int]:
    """(gain, new_h, new_w, pad_left, pad_top): the long side scaled to ``size``, centred on a square canvas."""
    r = size / max(h0, w0)
    nh, nw = max(1, round(h0 * r)), max(1, round(w0 * r))
    return r, nh, nw, (size - nw) // 2, (size - nh) // 2


def resize_long_side(img: np.ndarray, nh: int, nw: int) -> np.ndarray:
    """(H, W, 3) uint8 resized to (nh, nw) with PIL bilinear (antialiased when shrinking); unchanged if equal."""
    if img.shape[:2] == (nh, nw):
        return img
    return np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))


def place_on_canvas(img: np.ndarray, size: int | tuple[int, int], left: int, top: int,
                    fill: int = FILL) -> np.ndarray:
    """A (size, size, 3) — or (H, W, 3) for ``size = (H, W)`` — ``fill``-grey canvas with ``img`` at (left, top)."""
    H, W = (size, size) if isinstance(size, int) else size
    canvas = np.full((H, W, 3), fill, dtype=np.uint8)
    h, w = img.shape[:2]
    canvas[top:top + h, left:left + w] = img
    return canvas


def letterbox(img: np.ndarray, size: int, fill: int = FILL):
    """(H, W, 3) uint8 -> ``(canvas (size, size, 3) uint8, ratio_pad)`` with
    ``ratio_pad = ((gain, gain), (pad_left, pad_top))`` so that ``original = (canvas - pad) / gain``."""
    r, nh, nw, left, top = letterbox_params(img.shape[0], img.shape[1], size)
    canvas = place_on_canvas(resize_long_side(img, nh, nw), size, left, top, fill)
    return canvas, ((r, r), (float(left), float(top)))
