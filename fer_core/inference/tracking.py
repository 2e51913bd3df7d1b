"""Following faces across frames, so each keeps its id (and Live its smoothing and its map):
Live's `FaceTracker` (the detector every few frames, template matching between, on a small copy of
the frame) and Video's `FaceTracks` (the detector on every sampled frame, boxes joined by overlap)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fer_core.inference.detectors.common import Detection, inside

# The detector runs on a copy downscaled to this longest side: its cost grows with the pixel count, and
# faces at webcam distance stay well above its minimum size.
LIVE_DETECTION_SIDE = 320
# Below this normalised correlation a tracked face is taken as lost; its box then stays put until
# the next detection decides.
_TRACK_MIN_SCORE = 0.4
# A track Haar misses in this many detections in a row is dropped (one miss is usually flicker).
_MAX_MISSES = 2

# A face unseen in this many sampled frames in a row ends its track; one seen again later gets a
# new id (an id never jumps between people who cross paths: boxes must overlap to continue).
MAX_MISSED_SAMPLES = 3
MIN_OVERLAP = 0.3


@dataclass
class Track:
    track_id: int
    # The detector's last word on this face in camera-frame pixels (box, eyes, whole box of a cut
    # face), moved with the face between detections: Live crops it as every other path does.
    detection: Detection
    template: np.ndarray  # the face as last detected, on the downscaled frame
    misses: int = 0

    @property
    def box(self) -> tuple[int, int, int, int]:  # x, y, w, h in camera-frame pixels
        return self.detection.box


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


class FaceTracker:
    """The detector's boxes when asked to detect; in between, each box follows its face by template
    matching around its last place on the downscaled frame (a millisecond or two, several times
    cheaper than detecting).

    Detections are matched to tracks by overlap, so a face keeps its id (and its smoothing) while
    it moves. Used by one thread at a time.
    """

    def __init__(self, detector, max_side: int = LIVE_DETECTION_SIDE):
        self.detector = detector
        self.max_side = max_side
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, gray: np.ndarray, detect: bool, min_face: int, colour: np.ndarray | None = None) -> list[Track]:
        """The tracks on this frame, largest face first; `colour`: the same frame in RGB, for a
        detector that reads colour (the tracker itself works on grayscale)."""
        import cv2

        height, width = gray.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        small = (
            cv2.resize(gray, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
            if scale < 1
            else gray
        )
        if detect:
            seen = small
            if colour is not None:
                seen = (
                    cv2.resize(colour, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
                    if scale < 1
                    else colour
                )
            found = self.detector.detect(seen, min_face=max(12, round(min_face * scale)), max_side=max(small.shape))
            self._match([d.scaled(1 / scale) for d in found], small, scale)
        else:
            for track in self.tracks:
                self._follow(track, small, scale)
        self.tracks.sort(key=lambda t: t.box[2] * t.box[3], reverse=True)
        return list(self.tracks)

    def _match(self, found: list[Detection], small: np.ndarray, scale: float) -> None:
        pairs = sorted(
            ((iou(t.box, d.box), ti, di) for ti, t in enumerate(self.tracks) for di, d in enumerate(found)),
            reverse=True,
        )
        matched_tracks, matched_found = set(), set()
        for overlap, ti, di in pairs:
            if overlap < 0.3 or ti in matched_tracks or di in matched_found:
                continue
            matched_tracks.add(ti)
            matched_found.add(di)
            track = self.tracks[ti]
            track.detection, track.template, track.misses = found[di], _patch(small, found[di].box, scale), 0
        kept = []
        for ti, track in enumerate(self.tracks):
            if ti not in matched_tracks:
                track.misses += 1
                if track.misses >= _MAX_MISSES:
                    continue
                self._follow(track, small, scale)
            kept.append(track)
        for di, detection in enumerate(found):
            if di not in matched_found:
                kept.append(Track(self._next_id, detection, _patch(small, detection.box, scale)))
                self._next_id += 1
        self.tracks = kept

    @staticmethod
    def _follow(track: Track, small: np.ndarray, scale: float) -> None:
        """The track moved to where its template matches best around its last place (left where
        it was when nothing matches well enough)."""
        import cv2

        th, tw = track.template.shape[:2]
        x, y, w, h = (round(v * scale) for v in track.box)
        margin_x, margin_y = max(4, w // 2), max(4, h // 2)
        x0, y0 = max(0, x - margin_x), max(0, y - margin_y)
        x1, y1 = min(small.shape[1], x + w + margin_x), min(small.shape[0], y + h + margin_y)
        window = small[y0:y1, x0:x1]
        if th < 4 or tw < 4 or window.shape[0] < th or window.shape[1] < tw:
            return
        scores = cv2.matchTemplate(window, track.template, cv2.TM_CCOEFF_NORMED)
        _, best, _, (bx, by) = cv2.minMaxLoc(scores)
        if best < _TRACK_MIN_SCORE:
            return
        to_x, to_y = round((x0 + bx) / scale), round((y0 + by) / scale)
        moved = track.detection.moved(to_x - track.box[0], to_y - track.box[1])
        # Clipped to the picture again and marked cut or not by the detectors' own rule.
        height, width = round(small.shape[0] / scale), round(small.shape[1] / scale)
        whole = Detection(moved.full_box or moved.box, moved.score, moved.eyes)
        track.detection = inside(whole, width, height) or track.detection


def _patch(small: np.ndarray, box: tuple[int, int, int, int], scale: float) -> np.ndarray:
    x, y, w, h = (round(v * scale) for v in box)
    x0, y0 = max(0, x), max(0, y)
    return small[y0 : min(small.shape[0], y + h), x0 : min(small.shape[1], x + w)].copy()


@dataclass
class _Track:
    face_id: int
    box: tuple[int, int, int, int]
    missed: int = 0


class FaceTracks:
    """Stable face ids across sampled frames: each detection continues the track whose last box it
    overlaps most (IoU above MIN_OVERLAP), else starts a new one."""

    def __init__(self):
        self.tracks: list[_Track] = []
        self._next_id = 1

    def update(self, boxes: list[tuple[int, int, int, int]]) -> list[int]:
        """The face id of each box, in the boxes' order."""
        pairs = sorted(
            ((iou(t.box, b), ti, bi) for ti, t in enumerate(self.tracks) for bi, b in enumerate(boxes)), reverse=True
        )
        ids: dict[int, int] = {}
        used: set[int] = set()
        for overlap, ti, bi in pairs:
            if overlap < MIN_OVERLAP or ti in used or bi in ids:
                continue
            used.add(ti)
            ids[bi] = self.tracks[ti].face_id
            self.tracks[ti].box, self.tracks[ti].missed = boxes[bi], 0
        for ti, track in enumerate(self.tracks):
            if ti not in used:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed < MAX_MISSED_SAMPLES]
        for bi, box in enumerate(boxes):
            if bi not in ids:
                ids[bi] = self._next_id
                self.tracks.append(_Track(self._next_id, box))
                self._next_id += 1
        return [ids[bi] for bi in range(len(boxes))]
