"""The shell around ``builder``: the ``envyard`` CLI now; HTTP, database and queue next."""
