"""report.html in a real browser: headless Chromium renders it at laptop width and the screenshot is
not blank. Skipped when no Chromium is installed (CI installs Debian's ``chromium``)."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from test_report import add_run, make_split, noisy, y_test

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WIDTH, HEIGHT = 1366, 2400


def find_browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


# --- a tiny PNG reader (8-bit, non-interlaced), enough for a browser screenshot ----------------

_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # grey, RGB, grey+alpha, RGBA


def read_png(path: Path) -> np.ndarray:
    """Decode a PNG into a (height, width, channels) uint8 array with zlib, struct and numpy.

    PNG filters make each byte depend on its left, upper and upper-left neighbours, so rows cannot
    be decoded independently; pixels on one anti-diagonal (row + column = d) only depend on earlier
    diagonals, so the image is decoded one diagonal at a time, vectorised along it.
    """
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat.append(chunk)
        elif kind == b"IEND":
            break
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or interlace != 0 or colour not in _CHANNELS:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}")
    ch = _CHANNELS[colour]
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8).reshape(height, 1 + width * ch)
    filters = raw[:, 0].astype(np.int16)
    filtered = raw[:, 1:].reshape(height, width, ch).astype(np.int16)
    out = np.zeros((height + 1, width + 1, ch), dtype=np.int16)  # zero row above, zero column left
    for d in range(height + width - 1):
        r = np.arange(max(0, d - width + 1), min(height, d + 1))
        c = d - r
        left, up, up_left = out[r + 1, c], out[r, c + 1], out[r, c]
        p = left + up - up_left
        pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - up_left)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
        f = filters[r][:, None]
        pred = np.select([f == 1, f == 2, f == 3, f == 4], [left, up, (left + up) // 2, paeth], 0)
        out[r + 1, c + 1] = (filtered[r, c] + pred) & 255
    return out[1:, 1:].astype(np.uint8)


def test_png_reader_decodes_every_filter(tmp_path):
    """Encode a known image with each PNG filter type and decode it back."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(7, 5, 3), dtype=np.int16)
    padded = np.zeros((8, 6, 3), dtype=np.int16)
    padded[1:, 1:] = image
    rows = []
    for y in range(7):
        f = y % 5
        left, up, up_left = padded[y + 1, :-1], padded[y, 1:], padded[y, :-1]
        p = left + up - up_left
        pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - up_left)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
        pred = [0, left, up, (left + up) // 2, paeth][f]
        rows.append(bytes([f]) + ((image[y] - pred) & 255).astype(np.uint8).tobytes())

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 5, 7, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))
    path = tmp_path / "t.png"
    path.write_bytes(png)
    np.testing.assert_array_equal(read_png(path), image.astype(np.uint8))


@pytest.mark.slow  # starting a browser takes several seconds
@pytest.mark.skipif(find_browser() is None, reason="no Chromium/Chrome installed")
def test_report_html_renders_in_chromium(tmp_path):
    split = make_split(tmp_path / "split", n_labels=8)
    y = y_test(split)
    rng = np.random.default_rng(1)
    for i, (kind, model, rate, dps) in enumerate([("baseline", "majority", 0.4, 1e6), ("baseline", "tfidf-lr", 0.12, 8000),
                                                  ("finetune", "transformer", 0.05, 90)]):
        scores = np.clip(np.where(noisy(y, rate, seed=i), 0.8, 0.2) + rng.normal(0, 0.15, y.shape), 0, 1)
        add_run(split, scores >= 0.5, scores=scores.astype(np.float32), kind=kind, model=model, docs_per_s=dps)
    out = tmp_path / "report"
    from nlpkit.report import build_report, write_report

    html_path = write_report(build_report(split.path, n_boot=200, n_perm=500), out)["html"]
    png = tmp_path / "shot.png"
    cmd = [find_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={WIDTH},{HEIGHT}",
           f"--screenshot={png}", html_path.resolve().as_uri()]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=180)
    assert png.is_file(), f"no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"

    pixels = read_png(png)[..., :3].astype(np.int16)
    assert pixels.shape[:2] == (HEIGHT, WIDTH)
    non_white = (pixels < 235).any(axis=-1)
    assert non_white.mean() > 0.03, f"only {non_white.mean():.1%} of the page is not white"
    colours = np.unique(pixels.reshape(-1, 3) // 8, axis=0)  # bucketed: ignore anti-aliasing noise
    assert len(colours) > 50
    # the charts are drawn: saturated pixels (bars, curves, heatmap cells), not just black text
    saturated = (pixels.max(axis=-1) - pixels.min(axis=-1)) > 80
    assert saturated.mean() > 0.005
    # and laid out at laptop width: something drawn in the right half of the page, below the table
    assert saturated[HEIGHT // 4:, WIDTH // 2:].mean() > 0.002
