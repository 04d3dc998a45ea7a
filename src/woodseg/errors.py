"""The errors woodseg raises on bad input: each names what is wrong, where, and how to fix it."""

from __future__ import annotations

from pathlib import Path


class WoodsegError(Exception):
    """Base class: a message, optionally the file at fault and a fix the user can apply."""

    def __init__(self, message: str, *, path: str | Path | None = None, fix: str | None = None) -> None:
        self.message = message
        self.path = Path(path) if path is not None else None
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        text = self.message
        if self.path is not None and str(self.path) not in text:
            text = f"{self.path}: {text}"
        if self.fix:
            text = f"{text}\n  fix: {self.fix}"
        return text


class ConfigError(WoodsegError):
    """A config file or override is invalid or inconsistent with the data."""


class DataError(WoodsegError):
    """A dataset, label file, split list or OoD list is missing, malformed or disagrees with the class list."""


class ImageError(DataError):
    """An image file is missing, empty, truncated or not an image."""


class TrainingError(WoodsegError):
    """Training cannot go on (a non-finite loss, a checkpoint from a different run)."""


class CheckpointError(WoodsegError):
    """A checkpoint is missing, empty, truncated, a folder, or holds pickled code that woodseg will not run."""


class OutputError(WoodsegError):
    """An output cannot be written: read-only folder, full disk, or a path component that is a file."""


def check_file(path: str | Path, what: str, fix: str, error: type[WoodsegError] = DataError) -> Path:
    """``path`` if it is a regular file; else ``error`` saying whether it is missing or a folder.

    A folder where a file is expected is a different mistake from a missing file (a path one level too
    short, an unpacked archive): the message says which it is.
    """
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        raise error(f"{what} is a folder, not a file", path=path,
                    fix=f"point at the file itself, not a folder ({fix})")
    if path.exists():
        raise error(f"{what} is not a regular file", path=path, fix=fix)
    raise error(f"{what} does not exist", path=path, fix=fix)


def check_folder(path: str | Path, what: str, fix: str, error: type[WoodsegError] = DataError) -> Path:
    """``path`` if it is a folder; else ``error`` saying whether it is missing or a file."""
    path = Path(path)
    if path.is_dir():
        return path
    if path.exists():
        raise error(f"{what} is a file, not a folder", path=path, fix=fix)
    raise error(f"{what} does not exist", path=path, fix=fix)


def decode_utf8(raw: bytes, where: str | Path, error: type[WoodsegError] = DataError) -> str:
    """``raw`` as UTF-8 text; another encoding (Latin-1 from an old editor) is ``error`` with the fix."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise error(f"{where} is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line})",
                    fix="re-save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8 old.txt > new.txt`)") from None


def read_text(path: str | Path, what: str, fix: str, error: type[WoodsegError] = DataError) -> str:
    """The UTF-8 text of the file ``path``, after :func:`check_file`; a decoding failure names the file."""
    path = check_file(path, what, fix, error)
    return decode_utf8(path.read_bytes(), path, error)
