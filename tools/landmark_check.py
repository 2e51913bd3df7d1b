"""Which landmark arrangements are faces: the geometry (`face_geometry`) of every RetinaFace
candidate on the detection benchmark's scenes, true faces against phantoms.

    .venv/bin/python tools/landmark_check.py [--data ../shared/fer2013] [--min-score 0.3]

The candidates are taken at `--min-score` (below the detector's own 0.8), so the phantoms a lower
threshold would let through are there to measure: each is matched to the scenes' true faces by the
benchmark's rule (`fer_core.detection_bench.match`). Prints, per kind (true faces at the
detector's score, phantoms at any score), the range and the 1st and 99th percentile of each
measure, and which phantoms of a score at least the detector's each rule would drop.
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def blazeface_geometry(faces) -> dict:
    """The same measures for BlazeFace's merged detections (eyes, nose tip, mouth centre) at its
    own scores, true faces and phantoms: the rule lifted while measuring, so all are seen."""
    from fer_core.detection_bench import build_scenes, crowd_scenes, match
    from fer_core.inference.detectors import blazeface

    rows = {"face": [], "phantom": []}
    rule, nms = blazeface.face_like, blazeface._weighted_nms
    merged = []

    def recording(candidates, overlap):
        kept = nms(candidates, overlap)
        means = list(_cluster_means(candidates, overlap))
        for detection in kept:  # each detection's points: its cluster's mean, found by its eyes
            points = next(p for p in means if np.allclose(p[2:4], detection.eyes))
            merged.append((detection, blazeface.keypoint_geometry(points)))
        return kept

    blazeface.face_like, blazeface._weighted_nms = (lambda geometry: True), recording
    try:
        detector = blazeface.BlazeFaceDetector()
        for scene in build_scenes(faces) + crowd_scenes(faces):
            merged.clear()
            for detection in detector.detect(scene.image, min_face=20):  # each with its merged points
                geometry = next(g for d, g in merged if d.eyes == detection.eyes)
                hit, _ = match([detection.box], scene.faces)
                rows["face" if hit else "phantom"].append(geometry.__dict__)
    finally:
        blazeface.face_like, blazeface._weighted_nms = rule, nms
    return _ranges(rows)


def _cluster_means(candidates, overlap):
    """The points `_weighted_nms` makes of each cluster, in its order."""
    from fer_core.inference.detectors.blazeface import _iou

    remaining = sorted(candidates, key=lambda c: c[1], reverse=True)
    while remaining:
        best = remaining[0][0][:2].ravel()
        cluster = [c for c in remaining if _iou(best, c[0][:2].ravel()) > overlap]
        remaining = [c for c in remaining if _iou(best, c[0][:2].ravel()) <= overlap]
        weights = np.array([score for _points, score in cluster])
        yield np.tensordot(weights / weights.sum(), np.stack([p for p, _s in cluster]), axes=1)


def _ranges(rows: dict) -> dict:
    """Per kind: the count and, per measure, min, 1st and 99th percentile, max."""
    report = {}
    for kind, found in rows.items():
        report[kind] = {"count": len(found)}
        for measure in ("eye_gap", "eyes_to_mouth", "nose_at", "tilt"):
            values = np.array([r[measure] for r in found], np.float64)
            values = values[np.isfinite(values)]
            if len(values):
                report[kind][measure] = [
                    round(float(v), 3) for v in (values.min(), *np.percentile(values, [1, 99]), values.max())
                ]
    return report


def main() -> int:
    from fer_core.detection_bench import benchmark_faces, build_scenes, crowd_scenes, match
    from fer_core.inference.detectors import RetinaFaceDetector
    from fer_core.inference.detectors.common import Detection, inside, square_box
    from fer_core.inference.detectors.retinaface import RETINAFACE_MIN_SCORE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data")
    parser.add_argument("--min-score", type=float, default=0.3)
    args = parser.parse_args()
    faces, described = benchmark_faces(args.data)
    detector = RetinaFaceDetector(min_score=args.min_score)
    rows = {"face": [], "phantom": []}
    for scene in build_scenes(faces) + crowd_scenes(faces):
        height, width = scene.image.shape[:2]
        for candidate in detector.candidates(scene.image, min_face=20):
            box = inside(Detection(square_box(candidate.corners), candidate.score), width, height)
            if box is None or min(box.box[2:]) < 20:
                continue
            hit, _ = match([box.box], scene.faces)
            geometry = candidate.geometry
            kind = "face" if hit else "phantom"
            if kind == "face" and candidate.score < RETINAFACE_MIN_SCORE:
                continue
            rows[kind].append({"scene": scene.name, "score": round(candidate.score, 3), **geometry.__dict__})
    report = {"faces_pasted": described, "min_score": args.min_score, "retinaface": _ranges(rows)}
    report["blazeface"] = blazeface_geometry(faces)
    report["phantoms_at_the_detectors_score"] = [r for r in rows["phantom"] if r["score"] >= RETINAFACE_MIN_SCORE]
    report["phantoms"] = sorted(rows["phantom"], key=lambda r: -r["score"])[:40]
    print(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
