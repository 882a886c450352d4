"""Flood extents on an elevation model: the ``flood-extent`` process
(:mod:`spatial.flood.process`), its cells (:mod:`spatial.flood.engine`), what it covers
(:mod:`spatial.flood.affected`), its configuration (``layers/floods.yaml``,
:mod:`spatial.flood.config`) and the alarm triggers that run it (:mod:`spatial.flood.trigger`).
"""
