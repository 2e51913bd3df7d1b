"""The in-memory dataset every loader returns, the load report, and FER2013's split conventions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from fer_core import CLASS_NAMES, FER_SPLITS
from fer_core.errors import FerError

SPLIT_PREFIX = re.compile(r"^(Training|PublicTest|PrivateTest)_", re.IGNORECASE)
CANONICAL_SPLIT = {s.lower(): s for s in FER_SPLITS}

# Other names for FER2013's emotions, as FER2013 re-distributions and other datasets (CK+, JAFFE,
# RAF-DB, AffectNet) spell them: what matching a model's classes to a dataset's reads
# (`canonical_class`), and the source of the FER2013 folder loader's aliases.
SYNONYMS: dict[str, str] = {
    "anger": "angry",
    "disgusted": "disgust",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happiness": "happy",
    "joy": "happy",
    "sadness": "sad",
    "surprised": "surprise",
    "neutrality": "neutral",
}
# Folder names seen in FER2013 re-distributions, mapped onto FER2013's label order: the names and
# the synonyms those re-distributions use (a folder set of only these is read as FER2013).
FER2013_FOLDER_SYNONYMS = ("anger", "disgusted", "fearful", "happiness", "sadness", "surprised")
CLASS_ALIASES: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}
CLASS_ALIASES.update({other: CLASS_NAMES.index(SYNONYMS[other]) for other in FER2013_FOLDER_SYNONYMS})


def canonical_class(name: str) -> str:
    """A class name as matching compares it: lower case, trimmed, a synonym read as its FER2013 name."""
    key = str(name).strip().lower()
    return SYNONYMS.get(key, key)


ProgressCallback = Callable[[int, int], None]


@dataclass
class LoadReport:
    """What the loader had to convert or skip, told so a user can find the files or rows."""

    converted: dict[str, int] = field(default_factory=dict)  # e.g. {"colour to grayscale": 3}
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> files/rows
    warnings: list[str] = field(default_factory=list)

    def skip(self, reason: str, where: str) -> None:
        self.skipped.setdefault(reason, []).append(where)

    def convert(self, what: str) -> None:
        self.converted[what] = self.converted.get(what, 0) + 1

    def messages(self, show: int = 3) -> list[str]:
        """One line per kind of problem, naming at most `show` files or rows, then a count."""
        lines = list(self.warnings)
        for reason, where in self.skipped.items():
            named = ", ".join(where[:show])
            more = f" and {len(where) - show} more" if len(where) > show else ""
            lines.append(f"skipped {len(where)} {reason}: {named}{more}")
        for what, count in self.converted.items():
            lines.append(f"converted {count} images ({what})")
        return lines

    def to_dict(self) -> dict:
        return {"converted": self.converted, "skipped": self.skipped, "warnings": self.warnings}

    @classmethod
    def from_dict(cls, d: dict) -> "LoadReport":
        return cls(dict(d["converted"]), {k: list(v) for k, v in d["skipped"].items()}, list(d["warnings"]))


@dataclass
class Dataset:
    """Face images in a fixed order: `images[i]` (48x48 uint8), `labels[i]` (an index into
    `classes`), `splits[i]`, `sources[i]`. The class names belong to the dataset: FER2013's seven
    for FER2013, the folder names (or CSV labels) for any other."""

    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) int64, indices into classes
    splits: np.ndarray  # (N,) str
    sources: np.ndarray  # (N,) str: relative file path or "csv row K"
    classes: tuple[str, ...]  # the loader's: FER2013's seven only where the data is FER2013
    root: str = ""
    report: LoadReport = field(default_factory=LoadReport)
    groups: np.ndarray | None = None  # (N,) str: who or what each image shows (a CSV's group column)

    @property
    def is_fer2013(self) -> bool:
        """Whether the classes are FER2013's, in its order."""
        return tuple(self.classes) == CLASS_NAMES

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def split_names(self) -> list[str]:
        present = set(self.splits.tolist())
        ordered = [s for s in FER_SPLITS if s in present]
        return ordered + sorted(present - set(ordered))

    def subset(self, mask_or_index: np.ndarray) -> "Dataset":
        return Dataset(
            images=self.images[mask_or_index],
            labels=self.labels[mask_or_index],
            splits=self.splits[mask_or_index],
            sources=self.sources[mask_or_index],
            classes=self.classes,
            root=self.root,
            report=self.report,
            groups=None if self.groups is None else self.groups[mask_or_index],
        )

    def split_name(self, name: str) -> str:
        """The split as this dataset spells it, matched without regard to case (`publictest` is
        PublicTest); refuses an unknown name with the valid ones."""
        if name in self.split_names:
            return name
        matches = [s for s in self.split_names if s.lower() == str(name).strip().lower()]
        if len(matches) != 1:
            raise FerError(f"no split named {name!r} in {self.root}; splits: {', '.join(self.split_names)}")
        return matches[0]

    def split(self, name: str) -> "Dataset":
        """The images of one split (see split_name)."""
        return self.subset(self.splits == self.split_name(name))

    def head(self, n: int | None) -> "Dataset":
        """The first `n` images of each split (all when n is None): for quick trials."""
        if n is None:
            return self
        if n <= 0:
            raise FerError(f"limit must be a positive number of images per split. Received: limit={n}")
        keep = np.zeros(len(self), dtype=bool)
        for name in self.split_names:
            keep[np.flatnonzero(self.splits == name)[:n]] = True
        return self.subset(keep)


def default_training_split(dataset: Dataset) -> str | None:
    """Training, else train, else None (meaning: all images)."""
    for name in ("Training", "train"):
        if name in dataset.split_names:
            return name
    return None


def default_evaluation_split(dataset: Dataset) -> str | None:
    """PrivateTest if present, else PublicTest, else test, else None (all images)."""
    for name in ("PrivateTest", "PublicTest", "test"):
        if name in dataset.split_names:
            return name
    return None
