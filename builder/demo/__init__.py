"""A channel of real conda packages built offline: the fixture for tests, benchmarks and the demo.

conda-forge cannot be reached from the machines envyard is developed on, so envyard makes its
own channel: a relocatable ``python`` from the running interpreter, ``python_abi``, and conda
packages converted from pinned PyPI wheels. ``synthetic`` makes metadata-only channels of any
size for solver benchmarks.
"""
