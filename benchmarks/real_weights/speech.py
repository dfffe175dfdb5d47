"""English speech made offline with espeak-ng, as 16 kHz mono 16-bit WAV files: a fixed list of sentences (numbers,
names, dates, punctuation, questions; about 2 to 25 s each) for measuring speech recognition on real weights.
Needs `apt-get install -y espeak-ng sox` (sox resamples; without it numpy does, band-limited through the FFT)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from .cache import DEFAULT_WORK

INSTALL = "apt-get install -y espeak-ng sox"
SAMPLE_RATE = 16000
VOICE = "en-us"
SPEED = 160  # words per minute (espeak-ng's default is 175)

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Good morning, everyone, and welcome.",
    "Where is the nearest train station?",
    "Please call me back after five o'clock.",
    "My name is Alice Johnson, and I live in Boston.",
    "The meeting was moved to Tuesday, March the fourteenth.",
    "Can you tell me how much this costs?",
    "We sold three hundred and twenty books last week.",
    "Doctor Smith arrived at the hospital at half past nine.",
    "It is raining in London, but the sun is shining in Paris.",
    "The children played in the garden until it got dark, and then they went inside for dinner.",
    "How many people live in New York City?",
    "She was born on the second of July, nineteen ninety eight.",
    "Turn left at the second traffic light, then drive straight for about two miles.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "Peter, Paul and Mary went to the market to buy apples, bread and cheese.",
    "Is it true that the library closes early on Sundays?",
    "The train to Chicago leaves at seven fifteen from platform number four.",
    "In the year two thousand and ten, the company opened its first office in Tokyo, and within five years it had "
    "more than six hundred employees across Asia.",
    "Thank you very much for your help yesterday; I could not have finished the report without you.",
    "The weather forecast says that tomorrow will be cloudy in the morning, with strong winds and heavy rain expected "
    "in the afternoon, so remember to take an umbrella when you leave the house.",
    "Mount Everest is the highest mountain on Earth, rising almost nine thousand metres above sea level.",
    "Why did the old man walk all the way to the village when he could have taken the bus?",
    "Our history teacher, Mister Brown, told us that the Roman Empire lasted for many centuries, and that its roads, "
    "laws and language still shape much of Europe today. He asked us to read two chapters before Friday and to write "
    "a short essay about the city of Rome.",
    "One, two, three, four, five, six, seven, eight, nine, ten.",
    "Emma bought a red bicycle for her son's birthday on the twenty first of May.",
    "The museum is open from Monday to Saturday, between ten in the morning and six in the evening, and tickets cost "
    "twelve dollars for adults.",
    "Last summer my cousin Daniel and I drove from Seattle to San Francisco. We left on a Friday at six in the "
    "morning, stopped for coffee in Portland, and spent the night in a small town near the Oregon coast. The next day "
    "we walked along the beach, watched the fishing boats come in, and ate fresh crab for lunch. By Sunday evening we "
    "had driven more than eight hundred miles, and we were tired but very happy.",
]


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"{tool} is not installed; speech clips need `{INSTALL}` (as root)")
    return path


def resample(audio: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling of a mono float signal through the FFT (what sox does better; used without sox)."""
    if rate == target:
        return audio.astype(np.float32)
    n = int(round(len(audio) * target / rate))
    spectrum = np.fft.rfft(audio.astype(np.float64))
    keep = min(len(spectrum), n // 2 + 1)
    out = np.fft.irfft(spectrum[:keep], n) * (n / len(audio))
    return out.astype(np.float32)


def load_wav(path: Path) -> np.ndarray:
    """A 16-bit PCM WAV file as float32 in [-1, 1], mono, at 16 kHz (the format `speak` writes)."""
    with wave.open(str(path), "rb") as f:
        if f.getsampwidth() != 2:
            raise ValueError(f"{path}: {8 * f.getsampwidth()}-bit samples; only 16-bit PCM WAV is read here")
        rate, channels = f.getframerate(), f.getnchannels()
        pcm = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    audio = pcm.reshape(-1, channels).mean(axis=1)
    return resample(audio, rate) if rate != SAMPLE_RATE else audio


def _write_wav(path: Path, audio: np.ndarray) -> None:
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes(pcm.tobytes())


def speak(text: str, path: Path, voice: str = VOICE, speed: int = SPEED) -> Path:
    """Speak `text` with espeak-ng into `path` (16 kHz mono 16-bit WAV); an existing file is kept as it is."""
    path = Path(path)
    if path.is_file():
        return path
    if not text.strip():
        raise ValueError("speak() needs some text; got an empty string")
    espeak = _require("espeak-ng")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "out.wav"
        subprocess.run([espeak, "-v", voice, "-s", str(speed), "-w", str(raw), "--", text], check=True, capture_output=True)
        sox = shutil.which("sox")
        if sox:
            subprocess.run([sox, str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(out)], check=True, capture_output=True)
        else:
            _write_wav(out, load_wav(raw))
        os.replace(out, path)
    return path


def clip_name(index: int, text: str, voice: str = VOICE, speed: int = SPEED) -> str:
    """The cache file name of one sentence: its index and a hash of what was spoken and how."""
    digest = hashlib.sha256(f"{voice}|{speed}|{text}".encode()).hexdigest()[:10]
    return f"{index:02d}-{digest}.wav"


def speech_clips(work: Path = DEFAULT_WORK, sentences: list[str] = SENTENCES) -> list[tuple[str, Path]]:
    """(text, wav path) for every sentence, spoken once into `work`/speech and reused afterwards."""
    folder = Path(work) / "speech"
    return [(text, speak(text, folder / clip_name(i, text))) for i, text in enumerate(sentences)]


def duration(path: Path) -> float:
    """Seconds of audio in a WAV file."""
    with wave.open(str(path), "rb") as f:
        return f.getnframes() / f.getframerate()
