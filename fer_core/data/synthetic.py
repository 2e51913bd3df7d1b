"""Drawn faces that OpenCV's Haar cascade accepts, for benchmarks, tests and fake cameras.

FER2013 images may not travel with the code, and noise frames are the wrong workload for a face
detector (Haar rejects most noise windows in odd ways); these drawings have the dark-eyes,
bright-cheeks, nose-bridge pattern the cascade looks for, so detection is exercised as on a camera.
"""

from __future__ import annotations

import numpy as np


def drawn_face(size: int = 160, seed: int = 0, mouth_open: float = 0.0) -> np.ndarray:
    """A (size, size) uint8 grayscale face: oval, hair, brows, eyes, nose shadow and mouth.

    `mouth_open` in [0, 1] varies the mouth so a sequence of faces is not one image repeated.
    """
    import cv2

    s = size / 100.0
    image = np.full((size, size), 70, np.float32)

    def ellipse(cx, cy, ax, ay, value):
        cv2.ellipse(
            image, (round(cx * s), round(cy * s)), (max(1, round(ax * s)), max(1, round(ay * s))), 0, 0, 360, value, -1
        )

    ellipse(50, 52, 36, 48, 185)  # face
    ellipse(50, 14, 38, 16, 50)  # hair
    for cx in (35, 65):
        ellipse(cx, 36, 10, 3, 60)  # brow
        ellipse(cx, 45, 8, 4, 40)  # eye
    ellipse(50, 60, 5, 10, 150)  # nose shadow
    ellipse(50, 76, 14, 4 + 6 * float(np.clip(mouth_open, 0, 1)), 60)  # mouth
    image = cv2.GaussianBlur(image, (0, 0), 2.5 * s)
    image += np.random.default_rng(seed).normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def face_frame(
    faces: list[tuple[int, int, int]], width: int = 640, height: int = 480, seed: int = 0, mouth_open: float = 0.0
) -> np.ndarray:
    """A (height, width, 3) uint8 BGR camera-like frame with drawn faces pasted at (x, y, size)."""
    rng = np.random.default_rng(seed)
    # A soft gradient with a little sensor noise, like a plain wall behind the subject.
    ramp = (
        np.linspace(95, 135, width, dtype=np.float32)[None, :] + np.linspace(-10, 10, height, dtype=np.float32)[:, None]
    )
    gray = np.clip(ramp + rng.normal(0, 3, (height, width)), 0, 255).astype(np.uint8)
    for index, (x, y, size) in enumerate(faces):
        patch = drawn_face(size, seed=seed + index, mouth_open=mouth_open)
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(width, x + size), min(height, y + size)
        gray[y0:y1, x0:x1] = patch[y0 - y : y1 - y, x0 - x : x1 - x]
    return np.repeat(gray[:, :, None], 3, axis=2)
