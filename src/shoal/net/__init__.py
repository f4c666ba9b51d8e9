"""Trio and socket code: the impure side of the sans-IO boundary."""
