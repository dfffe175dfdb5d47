"""Text: batch tokenization with the Rust tokenizers, and CTC vocabulary decoding."""
