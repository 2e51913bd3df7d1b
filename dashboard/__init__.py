"""What the dashboard's pages share, kept outside app_pages/ so that folder holds only pages:
`shared` (data and model loading, pickers), `charts` (figures), `text` (messages, Markdown-safe),
and the larger widget groups of one page each: `home_models` for Home, `dataset_store` for
Dataset, `train_form`, `run_list`, `run_views` and `crossval_views` for Train,
`evaluation_runs`, `comparison`, `gallery` and `label_review` for Evaluate, `explain_faces` for
Explain, `video_jobs` for Video, `batch_views` for Batch, `camera` and `live_views` for Live.

Importing this package makes the Live page safe to open after any other.

Loading pylibsrtp (streamlit-webrtc's SRTP binding) after TensorFlow segfaults the process, while
the other order works. One Streamlit server runs every page in one process, so opening Train
(TensorFlow) and then Live (streamlit-webrtc) would kill the server for every user. app.py imports
this package before anything else, and every page imports `dashboard.shared`, so pylibsrtp is
always loaded first. It costs ~7 ms; streamlit-webrtc itself (~0.4 s) stays with the Live page.
"""

import sys

if "tensorflow" in sys.modules and "pylibsrtp" not in sys.modules:
    # Only reachable when something imports TensorFlow before the dashboard (a test harness, a
    # custom entrypoint): fail with a message rather than a segfault on the Live page.
    raise ImportError(
        "TensorFlow was imported before dashboard: import dashboard (or pylibsrtp) first, "
        "or the Live page's streamlit-webrtc would crash the process"
    )

import pylibsrtp  # noqa: E402,F401  (see above: must precede TensorFlow)
