"""Decoding user images safely: size and pixel limits first, then grayscale uint8.

Everything that turns bytes into pixels (dataset loading, predict, uploads) goes through
`decode_grayscale`, so a hostile or odd file is handled the same way everywhere.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fer_core.errors import FerError

# Limits for files that come from users (uploads, predict). A 48x48 face is ~2 KB; a phone photo
# is a few MB and ~12-50 Mpx, so these admit real photos and refuse bombs.
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 50_000_000

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".pgm")


def decode_grayscale(
    data: bytes,
    name: str = "image",
    max_bytes: int = MAX_FILE_BYTES,
    max_pixels: int = MAX_PIXELS,
    colour: bool = False,
) -> np.ndarray:
    """Decode image bytes to a 2-D uint8 grayscale array.

    Honours EXIF orientation; takes the first frame of animations; converts 16-bit, palette,
    CMYK and alpha images. The declared size is checked before any pixel is decoded.

    Args:
        data: the file's bytes.
        name: how to name the file in an error message.
        max_bytes: refuse larger files.
        max_pixels: refuse images declaring more pixels (decompression bombs).

    Returns:
        An (H, W) uint8 array; with `colour`, (H, W, 3) uint8 RGB (a grayscale file as three equal
        channels).

    Raises:
        FerError: empty, too large, not an image, truncated or corrupt.
    """
    if len(data) == 0:
        raise FerError(f"{name}: the file is empty (0 bytes)")
    if len(data) > max_bytes:
        raise FerError(f"{name}: the file is {len(data) / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit")
    try:
        with warnings.catch_warnings():
            # PIL warns (not raises) between MAX_IMAGE_PIXELS and 2x; we check ourselves below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise FerError(
                    f"{name}: the image declares {width}x{height} pixels, over the {max_pixels / 1e6:.0f} Mpx limit"
                )
            image.seek(0)  # first frame of an animated GIF/WebP
            image = ImageOps.exif_transpose(image)
            pixels = _to_rgb(image) if colour else _to_gray(image)
    except FerError:
        raise
    except UnidentifiedImageError:
        raise FerError(f"{name}: not an image, or a format that cannot be read") from None
    except Image.DecompressionBombError as exc:
        raise FerError(f"{name}: refused as a decompression bomb ({_short(exc)})") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as exc:
        # Truncated and corrupt files surface from PIL as any of these.
        raise FerError(f"{name}: the image is truncated or corrupt ({_short(exc)})") from None
    if pixels.ndim != (3 if colour else 2) or pixels.size == 0:
        raise FerError(f"{name}: the image has no pixels")
    return pixels


def decode_image(data: bytes, name: str = "image", **limits) -> np.ndarray:
    """Decode image bytes to (H, W, 3) uint8 RGB, with `decode_grayscale`'s checks."""
    return decode_grayscale(data, name=name, colour=True, **limits)


def read_grayscale(path: str | Path, **limits) -> np.ndarray:
    """Read and decode an image file; see `decode_grayscale` (`colour=True` for RGB)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FerError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise FerError(f"{path}: is a folder, not an image file") from None
    except OSError as exc:
        raise FerError(f"{path}: cannot be read ({exc.strerror})") from None
    return decode_grayscale(data, name=str(path), **limits)


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F", "L", "LA"):
        return np.repeat(_to_gray(image)[..., None], 3, axis=2)  # the grayscale path's range handling
    if image.mode in ("RGBA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _to_gray(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit grayscale: scale the full range down rather than clip it.
        wide = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or wide.max(initial=0) > 255 else 255.0
        return np.clip(wide / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if mode == "F":
        wide = np.asarray(image, dtype=np.float64)
        return np.clip(wide, 0, 255).astype(np.uint8)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        # Composite on white so transparent regions do not become black blobs.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("L"), dtype=np.uint8)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


# Zip archives from uploads are read in memory, entry by entry: nothing is extracted to disk, so
# no entry name (absolute, "../", symlink) can write anywhere.
MAX_ZIP_ENTRIES = 500
MAX_ZIP_TOTAL_BYTES = 200 * 1024 * 1024


def expand_uploads(files: list[tuple[str, bytes]]) -> list[tuple[str, bytes | None, str | None]]:
    """Uploaded (name, bytes) with zips expanded to their image entries.

    Returns:
        (name, data, error) per image: `data` None and `error` set for what cannot be used.
    """
    import zipfile

    expanded: list[tuple[str, bytes | None, str | None]] = []
    for name, data in files:
        if not name.lower().endswith(".zip"):
            expanded.append((name, data, None))
            continue
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            entries = [e for e in archive.infolist() if not e.is_dir()]
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            expanded.append((name, None, f"{name}: not a readable zip archive ({_short(exc)})"))
            continue
        images = [
            e for e in entries if e.filename.lower().endswith(IMAGE_EXTENSIONS) and not unsafe_archive_path(e.filename)
        ]
        skipped = [e.filename for e in entries if unsafe_archive_path(e.filename)]
        for entry_name in skipped[:3]:
            expanded.append(
                (f"{name}/{entry_name}", None, f"{name}/{entry_name}: refused: the path escapes the archive")
            )
        if len(images) > MAX_ZIP_ENTRIES:
            expanded.append((name, None, f"{name}: holds {len(images)} images, over the {MAX_ZIP_ENTRIES} limit"))
            continue
        total = 0
        for entry in images:
            label = f"{name}/{entry.filename}"
            if entry.file_size > MAX_FILE_BYTES:
                expanded.append(
                    (
                        label,
                        None,
                        f"{label}: {entry.file_size / 1e6:.1f} MB uncompressed, over the {MAX_FILE_BYTES / 1e6:.0f} MB limit",
                    )
                )
                continue
            total += entry.file_size
            if total > MAX_ZIP_TOTAL_BYTES:
                expanded.append(
                    (
                        label,
                        None,
                        f"{name}: over {MAX_ZIP_TOTAL_BYTES / 1e6:.0f} MB uncompressed in all; the rest is skipped",
                    )
                )
                break
            try:
                expanded.append((label, archive.read(entry), None))
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError) as exc:
                expanded.append((label, None, f"{label}: cannot be read from the archive ({_short(exc)})"))
        if not images and not skipped:
            expanded.append(
                (name, None, f"{name}: the archive holds no images ({', '.join(IMAGE_EXTENSIONS[:5])}, ...)")
            )
    return expanded


def unsafe_archive_path(filename: str) -> bool:
    parts = filename.replace("\\", "/").split("/")
    return filename.startswith(("/", "\\")) or ".." in parts or (len(filename) > 1 and filename[1] == ":")
