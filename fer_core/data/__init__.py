"""The data wing: FER2013 in its folder and CSV forms, loaded into one in-memory `Dataset`.

`load_dataset(path)` is the only loader. It accepts:
- the image-folder layout `ROOT/<split>/<class>/*.jpg` (or `ROOT/<class>/*.jpg`): the split is told
  by the file-name prefixes `Training_`, `PublicTest_`, `PrivateTest_` when present, else by the
  split folder's name;
- the Kaggle CSV `emotion,pixels,Usage` (also with ` pixels`/` Usage` headers, a BOM or CRLF).

Decoded arrays are cached as `.npz`, keyed by the source's paths, sizes and mtimes, so a second
load of the full dataset is a file read.

Modules: `dataset` (types, split conventions), `folder` and `kaggle_csv` (the two loaders), `cache`,
`loading` (`load_dataset`, `split_counts`), `images` (safe decoding of user images), `stats`,
`synthetic` (drawn faces for tests and benchmarks), `labelled_csv` (a CSV of labelled faces with
the dataset's own classes), `groups` (subjects from file names or a column), `corrections` (a
corrected copy from the label review), `store` (datasets brought as zips), `archives` (zips read
safely, for datasets and batch corpora). This face re-exports
what callers use.
"""

from fer_core.data.dataset import Dataset, LoadReport, default_evaluation_split, default_training_split
from fer_core.data.loading import load_dataset, split_counts

__all__ = [
    "Dataset",
    "LoadReport",
    "default_evaluation_split",
    "default_training_split",
    "load_dataset",
    "split_counts",
]
