"""Trio and socket code: the impure side of the sans-IO boundary.

Nothing is re-exported here: import the module you need (``shoal.net.mse_stream``,
``shoal.net.dht_service``...), so that ``import shoal.net`` stays free of side effects.
"""

__all__: list[str] = []
