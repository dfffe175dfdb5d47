"""Build every real-weight folder and the speech clips, then print where they are:
`python -m benchmarks.real_weights [WORK]` from the repository root."""

from __future__ import annotations

import sys
from pathlib import Path

from .cache import DEFAULT_WORK
from .smollm2 import smollm2_folder
from .speech import speech_clips
from .whisper_base import whisper_base_folder


def main(argv: list[str]) -> int:
    """Build (or find cached) SmolLM2, Whisper base and the speech clips under argv[0] or the default folder."""
    work = Path(argv[0]) if argv else DEFAULT_WORK
    print(f"smollm2: {smollm2_folder(work)}")
    print(f"whisper-base: {whisper_base_folder(work)}")
    clips = speech_clips(work)
    print(f"speech: {len(clips)} clips in {clips[0][1].parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
