"""automatic-speech-recognition with Whisper: prompt, decoding loop, timestamps, text."""
