"""Checks on the ``hub`` command line: a bad argument is one line on stderr and exit status 2.

The ``type=`` functions below check an argument when it is parsed, before any
work starts, so each message names the option (argparse adds it) and the problem.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

from hub.errors import HubError

N = TypeVar("N", int, float)


class UsageError(HubError, ValueError):
    """A command line the hub cannot act on; the message names the option or file."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose complaint is one line (argparse prints the usage too)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind: type[N], allowed: Callable[[N], bool], what: str) -> Callable[[str], N]:
    def parse(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}") from None
        if not (math.isfinite(value) and allowed(value)):
            raise argparse.ArgumentTypeError(f"must be {what}, not {text}")
        return value

    parse.__name__ = what  # argparse's fallback messages use the type's name
    return parse


positive = _number(float, lambda v: v > 0.0, "a number above 0")
at_least_one = _number(float, lambda v: v >= 1.0, "a number of at least 1")
port = _number(int, lambda v: 1 <= v <= 65535, "a TCP port from 1 to 65535")


def input_file(text: str) -> Path:
    """An existing regular file this process can read."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a directory, not a file")
    try:
        with path.open("rb") as file:
            file.read(1)  # some files open but cannot be read (EIO, FUSE, /proc)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{text}: cannot read: {exc.strerror}") from exc
    return path


def text_file(text: str) -> Path:
    """An existing, readable UTF-8 text file (a credentials file, say)."""
    path = input_file(text)
    try:
        path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"{text}: not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"{text}: cannot read: {exc.strerror}") from exc
    return path


def output_file(text: str) -> Path:
    """A file to create or replace, in a folder that exists and that this process can write."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a directory, not a file")
    folder = path.parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: no folder {folder}")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise argparse.ArgumentTypeError(f"{text}: not writable")
    return path


def output_dir(text: str) -> Path:
    """A folder to write into: one that exists, or one that can be made where it is named."""
    path = Path(text)
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        where = "" if existing == path else f" {existing}"
        raise argparse.ArgumentTypeError(f"{text}:{where} is a file, not a folder")
    if not os.access(existing, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text}: cannot write in {existing}")
    return path
