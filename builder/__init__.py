"""The envyard pipeline as a library: spec -> solve -> lock -> install -> pack.

No HTTP and no database live here, so a laptop runs exactly what the service runs.
"""
