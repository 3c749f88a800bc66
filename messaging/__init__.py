"""Secure messaging: care-team threads, encrypted messages and read state."""
