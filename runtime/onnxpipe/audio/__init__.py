"""Audio: decoding (WAV, ffmpeg), resampling, and the feature extractors of audio models."""
