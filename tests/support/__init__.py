"""What the tests build and compare with: tiny checkpoints made offline, torch references, parity checks."""
