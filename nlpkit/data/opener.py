"""The one opener of user files: gzip (by its magic bytes), byte-order marks, encodings.

Every reader of a user's file gets its bytes or text from here, so a damaged gzip file, a byte that
is not the given encoding, or a file that is not text at all is the same one-line
:class:`~nlpkit.errors.DataError` whichever command reads it.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import zlib
from pathlib import Path

from nlpkit.errors import ConfigError, DataError

_GZIP_MAGIC = b"\x1f\x8b"
# Longest first: the UTF-32-LE mark starts with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# --encoding values (codecs.lookup names) that agree with each mark. "utf-8", the default, agrees
# with every mark: a file that starts with a UTF-16/32 mark cannot be UTF-8 (0xFF/0xFE never are).
_BOM_AGREES = {
    "utf-8": {"utf-8", "utf-8-sig"},
    "utf-16-le": {"utf-8", "utf-16", "utf-16-le"},
    "utf-16-be": {"utf-8", "utf-16", "utf-16-be"},
    "utf-32-le": {"utf-8", "utf-32", "utf-32-le"},
    "utf-32-be": {"utf-8", "utf-32", "utf-32-be"},
}
# Files that are not text, by their first bytes: named when they fail to decode, instead of the
# --encoding hint, which cannot help.
_NOT_TEXT = (
    (b"PK\x03\x04", "a ZIP archive (or an .xlsx/.docx file)", "extract it, or export the data as CSV"),
    (b"PAR1", "a Parquet file", "pass --format parquet"),
    (b"BZh", "bzip2-compressed", "decompress it (bunzip2) or recompress it with gzip, which is read directly"),
    (b"\xfd7zXZ\x00", "xz-compressed", "decompress it (unxz) or recompress it with gzip, which is read directly"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "decompress it (unzstd) or recompress it with gzip, which is read directly"),
)


def is_gzip(path) -> bool:
    """Whether ``path`` holds gzip data (by its magic bytes, whatever its name)."""
    with open(path, "rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def read_bytes(path) -> bytes:
    """The bytes of ``path``; gzip data (known by its magic bytes, whatever the name) is decompressed.

    A truncated or damaged gzip file is a DataError naming the file.
    """
    path = Path(path)
    raw = path.read_bytes()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise DataError(f"cannot read {path}: gzip data ends early: the file is truncated; copy it again") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"cannot read {path}: damaged gzip data ({exc}); copy it again") from None


def read_text_file(path, encoding: str = "utf-8") -> str:
    """The text of ``path`` as every reader of user files decodes it.

    gzip data is decompressed first (:func:`read_bytes`). A byte-order mark (UTF-8, UTF-16 or
    UTF-32, either byte order) sets the encoding and is dropped; an ``encoding`` that contradicts
    it is an error (``utf-8``, the default, never does). A byte that is not ``encoding`` is an
    error naming its offset and line, and what the file looks like when that is not another
    8-bit encoding (UTF-16 without a mark, a ZIP or Parquet file, other compression).
    """
    path = Path(path)
    raw = read_bytes(path)
    use, skip = text_encoding(path, raw, encoding)
    return _decode(path, raw, use, skip=skip)


def text_encoding(path, head: bytes, encoding: str = "utf-8") -> tuple[str, int]:
    """``(encoding to decode with, bytes of byte-order mark to skip)`` for a file whose first bytes
    are ``head``, as every reader of user files decides it (:func:`read_text_file`; streamed
    readers give the first few KB): a byte-order mark sets the encoding, an ``encoding`` that
    contradicts it is an error (``utf-8``, the default, never does), and with ``utf-8`` asked, text
    that looks like UTF-16/32 without a mark is an error naming the encoding to pass.
    """
    try:
        asked = codecs.lookup(encoding).name
    except LookupError:
        raise ConfigError(f"unknown encoding '{encoding}'; use e.g. utf-8 or latin-1") from None
    for bom, bom_encoding in _BOMS:
        if head.startswith(bom):
            if asked not in _BOM_AGREES[bom_encoding]:
                raise DataError(
                    f"{path} starts with a {bom_encoding.upper()} byte-order mark, but --encoding {encoding}"
                    f" was given; pass --encoding {bom_encoding} (or leave --encoding out)"
                )
            return bom_encoding, len(bom)
    if asked == "utf-8":
        guess = _utf16_guess(head)
        if guess:  # ASCII in UTF-16/32 decodes as "UTF-8" with a NUL after every character
            raise DataError(
                f"{path} looks like {guess.upper()} text without a byte-order mark (NUL bytes between"
                f" the characters); pass --encoding {guess}"
            )
    return encoding, 0


def _decode(path: Path, raw: bytes, encoding: str, skip: int = 0) -> str:
    try:
        text = raw[skip:].decode(encoding) if skip else raw.decode(encoding)
    except UnicodeDecodeError as exc:
        start = exc.start + skip
        line = raw[:start].decode(encoding, errors="replace").count("\n") + 1
        if skip:  # the byte-order mark named the encoding: the bytes after it are damaged
            raise DataError(
                f"cannot decode {path} as {encoding} (the encoding its byte-order mark names): bad bytes at"
                f" byte offset {start} (line {line}); the file is damaged: copy it again, or save it again as UTF-8"
            ) from None
        for magic, what, fix in _NOT_TEXT:
            if raw.startswith(magic):
                raise DataError(f"cannot read {path} as text: it is {what}; {fix}") from None
        bad = raw[start : start + 1].hex()
        raise DataError(
            f"cannot decode {path} as {encoding}: byte 0x{bad} at byte offset {start} (line {line});"
            f" pass the file's encoding, e.g. --encoding latin-1"
        ) from None
    return text.removeprefix("\ufeff")  # a UTF-8 byte-order mark is not part of the first column name


def _utf16_guess(raw: bytes) -> str | None:
    """'utf-16-le' etc. when the first bytes have the NULs of ASCII text in UTF-16/32 without a mark."""
    head = raw[:4096]
    n = len(head) // 4 * 4
    if n < 8 or b"\x00" not in head:
        return None
    share = [head[i:n:4].count(0) / (n // 4) for i in range(4)]  # NUL share at each position mod 4
    if min(share[1:]) > 0.9 and share[0] < 0.5:
        return "utf-32-le"
    if min(share[:3]) > 0.9 and share[3] < 0.5:
        return "utf-32-be"
    if share[1] + share[3] > 0.8 and share[0] + share[2] < 0.2:
        return "utf-16-le"
    if share[0] + share[2] > 0.8 and share[1] + share[3] < 0.2:
        return "utf-16-be"
    return None


def file_sha256(path) -> str:
    """sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
