"""The op-info table: one ``OpInfo`` per public op, run against torch on every backend.

Each family module (``math.py``, ``shape.py``, ...) defines ``OPS: list[OpInfo]``;
``tests/test_opinfo.py`` collects them all. See ``spec.py`` for the format.
"""
