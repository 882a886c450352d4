"""Emergency command: incidents, the units sent to them, and the dispatch between.

An incident is a feature of the ``incidents`` collection (migration 0015): reported,
dispatched, on scene, closed. A unit is a GPS device made dispatchable
(:mod:`spatial.command.units`). :mod:`spatial.command.dispatch` ranks the available units
by their road travel time to an incident (pgRouting, :mod:`spatial.network.routing`),
assigns the chosen ones with their routes and ETAs, turns them on scene when their fixes
reach the incident, and frees them when it closes.
"""
