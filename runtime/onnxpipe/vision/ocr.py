"""Words and boxes of a document picture from the `tesseract` binary, as transformers gets them through pytesseract.

transformers' document-question-answering pipeline (and LayoutLMv3's image processor with apply_ocr) call
`pytesseract.image_to_data`, which saves the picture as PNG, runs
`tesseract IN OUT [-l LANG] -c tessedit_create_tsv=1 CONFIG...` and reads OUT.tsv. This module does the same
with subprocess, parses the TSV as pytesseract's `file_to_dict` does, drops empty words and normalizes each box to
0-1000 as transformers' `normalize_box` does. No pytesseract needed: only the binary (Debian: tesseract-ocr).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Optional, Union

from onnxpipe.errors import InvalidInputError, InvalidOptionError

INSTALL_HINT = (
    "install Tesseract (Debian/Ubuntu: apt-get install tesseract-ocr; macOS: brew install tesseract), "
    "or pass the words with word_boxes=[(word, [x0, y0, x1, y1]), ...] (boxes normalized to 0-1000)"
)


class TesseractMissingError(InvalidInputError):
    """The image needs OCR and no `tesseract` binary is on PATH."""


def tesseract_binary() -> Optional[str]:
    """The path of the `tesseract` binary on PATH, or None."""
    return shutil.which("tesseract")


def normalize_box(box: list[int], width: int, height: int) -> list[int]:
    """A pixel box (x0, y0, x1, y1) on a 0-1000 scale, truncated to ints (transformers' normalize_box)."""
    return [
        int(1000 * (box[0] / width)),
        int(1000 * (box[1] / height)),
        int(1000 * (box[2] / width)),
        int(1000 * (box[3] / height)),
    ]


def parse_tsv(tsv: str) -> dict[str, list[Union[int, str]]]:
    """Tesseract's TSV as columns (pytesseract's `file_to_dict`): numbers as ints, the last column (text) as text."""
    rows = [row.split("\t") for row in tsv.strip().split("\n")]
    if len(rows) < 2:
        return {}
    header = rows.pop(0)
    if len(rows[-1]) < len(header):  # the last row lacks its cell when its text is empty
        rows[-1].append("")
    text_column = len(header) - 1
    columns: dict[str, list[Union[int, str]]] = {}
    for i, name in enumerate(header):
        values: list[Union[int, str]] = []
        for row in rows:
            if len(row) <= i:
                continue
            if i == text_column:
                values.append(row[i])
                continue
            try:
                values.append(int(float(row[i])))
            except ValueError:
                values.append(row[i])
        columns[name] = values
    return columns


def words_and_boxes(columns: dict[str, list[Union[int, str]]], width: int, height: int) -> tuple[list[str], list[list[int]]]:
    """The non-empty words of parsed TSV columns and their boxes normalized to 0-1000 (transformers' apply_tesseract)."""
    if not columns:
        return [], []
    words, boxes = [], []
    for word, x, y, w, h in zip(columns["text"], columns["left"], columns["top"], columns["width"], columns["height"]):
        if not str(word).strip():
            continue
        words.append(str(word))
        boxes.append(normalize_box([int(x), int(y), int(x) + int(w), int(y) + int(h)], width, height))
    return words, boxes


def run_tesseract(image: Any, lang: Optional[str], config: str, timeout: Optional[float] = None) -> str:
    """Tesseract's TSV output for one picture (saved as PNG, as pytesseract saves a picture without a format)."""
    binary = tesseract_binary()
    if binary is None:
        raise TesseractMissingError(f"Reading words from the image needs the `tesseract` binary, which is not on PATH: {INSTALL_HINT}.")
    try:
        extra = shlex.split(config or "")
    except ValueError as exc:
        raise InvalidOptionError(f"tesseract_config {config!r} is not a valid command line ({exc}).") from exc
    with tempfile.TemporaryDirectory(prefix="onnxpipe-ocr-") as folder:
        source, base = Path(folder) / "input.png", Path(folder) / "output"
        image.save(source, format="PNG")
        command = [binary, str(source), str(base)] + (["-l", lang] if lang is not None else [])
        command += ["-c", "tessedit_create_tsv=1", *extra]
        try:
            result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise InvalidInputError(f"tesseract took more than {timeout} s on a {image.width}x{image.height} image.") from exc
        output = base.with_suffix(".tsv")
        if result.returncode != 0 or not output.is_file():
            message = " ".join(result.stderr.decode("utf-8", "replace").split())[:300]
            raise InvalidOptionError(
                f"tesseract failed (exit status {result.returncode}) with lang={lang!r}, tesseract_config={config!r}: "
                f"{message or 'no message'}. Check the language is installed (tesseract --list-langs) and the config."
            )
        return output.read_text(encoding="utf-8")


def ocr_words(image: Any, lang: Optional[str] = None, config: str = "") -> tuple[list[str], list[list[int]]]:
    """The words tesseract reads in `image` and their boxes normalized to 0-1000, as transformers' apply_tesseract."""
    return words_and_boxes(parse_tsv(run_tesseract(image, lang, config)), image.width, image.height)
