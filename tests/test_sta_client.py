"""A SensorThings client the platform did not write, used as it is: ``frost-sta-client``
(Fraunhofer IOSB) against the live server, signed in with HTTP Basic (an API key as the
password). It creates a Thing with its Location, a Sensor, an ObservedProperty and a
Datastream, Observations one by one and as a DataArray, then reads them back filtered,
ordered and expanded, pages through them with next links, patches and deletes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import frost_sta_client as fsc
import geojson
import pytest
import requests
from support import TESTS, LiveServer, until

from spatial import accounts
from spatial.db import engine

pytestmark = pytest.mark.filterwarnings(
    "ignore:furl.pathstr is deprecated:DeprecationWarning"  # the client's own use of furl
)
OM = "http://www.opengis.net/def/observationType/OGC-OM/2.0/"
T0 = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def service(live_api: LiveServer, database_url: str) -> fsc.SensorThingsService:
    """The client, as an editor of ``sc_dept`` (its key the Basic password)."""
    with engine(database_url) as eng, eng.begin() as conn:
        accounts.add_department(conn, TESTS, "sc_dept", "Client")
        accounts.add_user(conn, TESTS, "sc_editor", roles=("editor",), department="sc_dept",
                          service=True)  # fmt: skip
        key = accounts.create_key(conn, TESTS, "sc_editor", name="tests")
    made = fsc.SensorThingsService(f"{live_api.url}/sta/v1.1",
                                   auth_handler=fsc.AuthHandler(username="sc_editor",
                                                                password=key))  # fmt: skip
    until(lambda: _signed_in(made), what="sc_editor's key on the server", seconds=15)
    return made


def _signed_in(service: fsc.SensorThingsService) -> bool:
    try:
        service.things().query().top(1).list()
    except requests.HTTPError:
        return False
    return True


def _datastream(service: fsc.SensorThingsService) -> Any:
    """A Thing (with its Location), a Sensor, an ObservedProperty and a Datastream, each
    created by the client; the Datastream."""
    location = fsc.Location(name="sc bank", description="left bank",
                            encoding_type="application/geo+json",
                            location=geojson.Point((112.45, 22.61)))  # fmt: skip
    thing = fsc.Thing(name="sc gauge", description="a client's gauge",
                      properties={"river": "Xi"}, locations=[location])  # fmt: skip
    service.create(thing)
    sensor = fsc.Sensor(
        name="sc radar",
        description="radar level sensor",
        encoding_type="text/html",
        metadata="https://example.org/radar",
    )
    service.create(sensor)
    prop = fsc.ObservedProperty(
        name="sc water level",
        description="height of the water",
        definition="https://example.org/water-level",
    )
    service.create(prop)
    unit = fsc.UnitOfMeasurement(name="metre", symbol="m",
                                 definition="http://qudt.org/vocab/unit/M")  # fmt: skip
    stream = fsc.Datastream(name="sc level", description="water level",
                            observation_type=OM + "OM_Measurement", unit_of_measurement=unit,
                            thing=thing, sensor=sensor, observed_property=prop)  # fmt: skip
    service.create(stream)
    assert isinstance(thing.id, int) and isinstance(stream.id, int)
    return stream


def test_frost_sta_client_creates_and_reads_back(service: fsc.SensorThingsService) -> None:
    stream = _datastream(service)
    for hour in range(3):
        service.create(fsc.Observation(phenomenon_time=(T0 + dt.timedelta(hours=hour)).isoformat(),
                                       result=1.0 + hour, datastream=stream))  # fmt: skip
    batch = fsc.DataArrayValue()
    batch.datastream = stream
    batch.components = {fsc.DataArrayValue.Property.PHENOMENON_TIME,
                        fsc.DataArrayValue.Property.RESULT}  # fmt: skip
    for hour in range(3, 50):
        batch.add_observation(fsc.Observation(
            phenomenon_time=(T0 + dt.timedelta(hours=hour)).isoformat(), result=hour / 2,
            datastream=stream))  # fmt: skip
    document = fsc.DataArrayDocument()
    document.add_data_array_value(batch)
    created = service.observations().create(document)
    assert len(created) == 47 and all("/Observations(" in o.self_link for o in created)
    found = service.things().query().filter("name eq 'sc gauge'").expand(
        "Locations,Datastreams($expand=Sensor,ObservedProperty)").list()  # fmt: skip
    [thing] = list(found)
    assert thing.properties == {"river": "Xi"}
    assert thing.locations.entities[0].location["coordinates"] == [112.45, 22.61]
    [read] = thing.datastreams.entities
    assert read.id == stream.id and read.unit_of_measurement.symbol == "m"
    assert read.sensor.name == "sc radar" and read.observed_property.name == "sc water level"
    high = (
        stream.get_observations()
        .query()
        .filter("result ge 10")
        .orderby("phenomenonTime")
        .top(10)
        .list()
    )  # fmt: skip (the client's default order: DESC)
    assert high.next_link is not None
    results = [o.result for o in high]  # the client follows the next links: 10 a page
    assert results == [h / 2 for h in range(49, 19, -1)]
    first = (
        service.observations()
        .query()
        .filter(f"Datastream/id eq {stream.id}")
        .orderby("phenomenonTime", "asc")
        .expand("FeatureOfInterest")
        .top(1)
        .list()
        .entities[0]
    )
    assert first.result == 1.0
    assert first.feature_of_interest.feature["coordinates"] == [112.45, 22.61]
    area = service.datastreams().find(stream.id)
    assert area.observed_area["type"] == "Point"  # one place: a Point, never a MultiPoint


def test_frost_sta_client_patches_updates_and_deletes(service: fsc.SensorThingsService) -> None:
    sensor = fsc.Sensor(
        name="sc spare",
        description="a spare",
        encoding_type="text/html",
        metadata="https://example.org/spare",
    )
    service.create(sensor)
    service.patch(
        sensor,
        [
            {"op": "replace", "path": "/description", "value": "patched"},
            {"op": "add", "path": "/properties/serial", "value": "A-7"},
        ],
    )
    read = service.sensors().find(sensor.id)
    assert read.description == "patched" and read.properties == {"serial": "A-7"}
    read.name = "sc spare renamed"
    service.update(read)
    assert service.sensors().find(sensor.id).name == "sc spare renamed"
    service.delete(read)
    assert list(service.sensors().query().filter("name eq 'sc spare renamed'").list()) == []
