"""`fer-core` (also `python -m fer_core`): stats, train, evaluate, predict, video, batch, runs, stop,
promote, compact, serve, export.

User errors exit with code 2 and one line on stderr, never a traceback (FER_DEBUG=1 shows one).
Keras is imported only by the commands that need it, so `stats` starts fast.

Each command group is a module owning its flags and handlers (`add_parsers`): data_commands,
train_commands, evaluate_commands, predict_commands, batch_commands, model_commands, serve_commands;
`common` holds what they share (JSON output, load-report warnings, model lists).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from fer_core import __version__
from fer_core.cli import (
    batch_commands,
    data_commands,
    evaluate_commands,
    model_commands,
    predict_commands,
    serve_commands,
    train_commands,
)
from fer_core.cli.train_commands import train_config_from_args
from fer_core.errors import FerError

# Keep TensorFlow's C++ start-up chatter out of the CLI's output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__all__ = ["build_parser", "main", "train_config_from_args"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except FerError as exc:
        print(f"fer-core: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fer-core: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not a user error: still one line unless debugging
        if os.environ.get("FER_DEBUG"):
            traceback.print_exc()
        print(f"fer-core: internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fer-core", description="FER2013 data, models, training and evaluation.")
    parser.add_argument("--version", action="version", version=f"fer-core {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # The order of `fer-core --help`.
    data_commands.add_parsers(sub)
    train_commands.add_parsers(sub)
    evaluate_commands.add_parsers(sub)
    predict_commands.add_parsers(sub)
    batch_commands.add_parsers(sub)
    model_commands.add_parsers(sub)
    serve_commands.add_parsers(sub)
    return parser
