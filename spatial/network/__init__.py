"""Road networks on pgRouting: built from a line collection, routed inside PostGIS.

- :mod:`spatial.network.speeds`: the travel speeds of road classes (a YAML file);
- :mod:`spatial.network.build`: a collection's lines noded, snapped and costed into the
  ``net`` schema's edges and vertices, with a report of what is not connected.

Routing itself is pgRouting's (``pgr_dijkstra`` and its family); this package only
prepares the graph it walks.
"""
