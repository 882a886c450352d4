"""The analysts' client: the platform's data as GeoDataFrames, its processes as calls.

:class:`Client` speaks only the platform's public HTTP API (OGC API - Features and
Processes, the catalog's records, STAC, ``/gps`` and ``/ingest``) with httpx, so that
whatever it does, any other system can do with the same requests.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urljoin

import httpx
import pandas as pd

from spatial.client import frames
from spatial.client.command import Command
from spatial.client.errors import ServerUnreachableError, error_for, located
from spatial.client.routes import Routing
from spatial.client.sensors import Sensors
from spatial.errors import InvalidInputError, NotFoundError, ServerError, SpatialError

if TYPE_CHECKING:
    import folium
    import geopandas as gpd
    import xarray

    from spatial.client.live import LiveStream

DEFAULT_URL = "http://127.0.0.1:8000"
PAGE_SIZE = 10_000
"""Features per page of a read (the server's default maximum)."""
"""The items parameter naming a past moment of a layer (its edition then)."""
_SIDECARS = (".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".xml")
_FINAL_PROCESS = {"successful", "failed", "dismissed"}
_FINAL_INGEST = {"succeeded", "failed", "cancelled"}
_RECORD_COLUMNS = ("id", "title", "kind", "description", "keywords", "subsystems", "crs",
                   "feature_count", "version", "updated", "bbox")  # fmt: skip


class Client(Routing, Command, Sensors):
    """A connection to one 3S platform, for notebooks and scripts.

    Args:
        url: The platform's URL [default: ``$SPATIAL_URL``, else the local demo at
            ``http://127.0.0.1:8000``].
        token: An API key or a JWT, sent as ``Authorization: Bearer`` [default:
            ``$SPATIAL_TOKEN``; none: anonymous, public collections only].
        timeout: Seconds to wait for each answer.
        progress: Progress bars (tqdm) for big reads and for jobs: None shows them only
            in an interactive session (a notebook, a terminal), True or False always or
            never.
        page_size: Features per request of :meth:`read`.

    Every method raises the errors of :mod:`spatial.errors` with the server's message:
    ``NotFoundError`` (404), ``InvalidInputError`` (400), ``UnauthorizedError`` (401),
    ``ForbiddenError`` (403), ... and ``ServerError`` for a 5xx. A server that cannot be
    reached raises :class:`~spatial.client.errors.ServerUnreachableError` (a
    ``ServerError`` and a built-in ``ConnectionError``) naming the URL. Each error has
    ``status`` and ``url`` attributes.

    Example:
        >>> from spatial import Client
        >>> c = Client()  # the local demo, anonymous
        >>> c.collections()[["id", "kind", "title"]]
        >>> parcels = c.read("parcels", bbox=(112.0, 22.9, 112.05, 22.95))
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        timeout: float = 120.0,
        progress: bool | None = None,
        *,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.url = (url or os.environ.get("SPATIAL_URL") or DEFAULT_URL).rstrip("/")
        chosen = token if token is not None else os.environ.get("SPATIAL_TOKEN")
        self.token = chosen or None
        self.timeout = timeout
        self.progress = progress
        self.page_size = page_size
        headers = {"Accept": "application/json", "User-Agent": "spatial-client"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __repr__(self) -> str:
        who = "with a token" if self.token else "anonymous"
        return f"<spatial.Client {self.url} ({who})>"

    def close(self) -> None:
        """Close the connections (a ``with Client() as c:`` block does it at the end)."""
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- HTTP ---------------------------------------------------------------------------

    def request(self, method: str, path_or_url: str, **kwargs: Any) -> httpx.Response:
        """One request to the platform; a failed answer raises its typed error.

        Args:
            method: ``GET``, ``POST``...
            path_or_url: A path under the platform's URL (``/collections``) or a full URL
                (a ``next`` link).
            **kwargs: Passed to :meth:`httpx.Client.request` (``params``, ``json``,
                ``headers``, ``files``, ``data``...).

        Returns:
            The answer (2xx or 3xx).

        Raises:
            SpatialError: the typed error of a 4xx or 5xx, with the server's message.
            ServerUnreachableError: no answer.

        Example:
            >>> c.request("GET", "/collections/parcels/queryables").json()
        """
        if "params" in kwargs and not kwargs["params"]:
            del kwargs["params"]  # httpx would drop the query of a next link
        try:
            response = self.http.request(method, path_or_url, **kwargs)
        except httpx.TimeoutException as exc:
            url = self._absolute(path_or_url)
            msg = f"{url} did not answer within {self.timeout:g} s ({type(exc).__name__})"
            raise located(ServerUnreachableError(msg), None, url) from exc
        except httpx.TransportError as exc:
            url = self._absolute(path_or_url)
            msg = f"cannot reach the platform at {url}: {exc}"
            raise located(ServerUnreachableError(msg), None, url) from exc
        if response.is_error:
            raise error_for(response)
        return response

    def _absolute(self, path_or_url: str) -> str:
        return urljoin(self.url + "/", path_or_url.lstrip("/"))

    def _json(self, path_or_url: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path_or_url, params=clean).json()

    def _bar(self, total: float | None, description: str, *, big: bool) -> Any:
        """A tqdm bar, or a stand-in that draws nothing."""
        show = self.progress if self.progress is not None else big and _interactive()
        if not show:
            return _NoBar()
        # Jupyter's widget bar needs ipywidgets; without it tqdm.auto warns: a text bar then.
        if importlib.util.find_spec("ipywidgets") is not None:
            from tqdm.auto import tqdm  # noqa: PLC0415 - only when a bar is drawn
        else:
            from tqdm import tqdm  # noqa: PLC0415 - only when a bar is drawn

        return tqdm(total=total, desc=description, unit="", leave=False)

    # --- catalog ------------------------------------------------------------------------

    def collections(self, kind: str | None = None) -> pd.DataFrame:
        """Every collection you may read, from the platform's catalog.

        Args:
            kind: Only ``vector``, ``raster`` (imagery) or ``gps`` collections.

        Returns:
            One row per collection: ``id``, ``title``, ``kind``, ``description``,
            ``keywords``, ``subsystems``, ``crs``, ``feature_count``, ``version``,
            ``updated`` and ``bbox`` (west, south, east, north).

        Example:
            >>> c.collections("vector")[["id", "title", "feature_count"]]
        """
        return self.search(kind=kind)

    def search(
        self,
        q: str | None = None,
        bbox: Sequence[float] | None = None,
        datetime: frames.When | tuple[frames.When | None, frames.When | None] | None = None,
        kind: str | None = None,
    ) -> pd.DataFrame:
        """Find collections in the catalog (OGC API - Records: ``/collections/catalog``).

        Args:
            q: Words that must all appear in the id, title, description or keywords.
            bbox: ``(west, south, east, north)`` in lon/lat the collection must overlap.
            datetime: An instant or a ``(start, end)`` pair (None for an open end) the
                collection's time span must overlap.
            kind: ``vector``, ``raster`` or ``gps``.

        Returns:
            The matching collections, as :meth:`collections` lists them.

        Example:
            >>> c.search("flood", kind="vector")
        """
        box = frames.check_bbox(bbox)
        when = frames.interval(*datetime) if isinstance(datetime, tuple) else datetime
        params: dict[str, Any] = {"f": "json", "limit": self.page_size, "q": q, "type": kind,
                                  "bbox": frames.bbox_text(box) if box else None,
                                  "datetime": frames.instant(when) if when else None}  # fmt: skip
        rows = []
        url: str | None = "/collections/catalog/items"
        while url:
            page = self._json(url, **params)
            params = {}  # the next link carries them
            for record in page.get("features", []):
                p = record.get("properties") or {}
                rows.append({
                    "id": record.get("id"), "title": p.get("title"), "kind": p.get("type"),
                    "description": p.get("description"), "keywords": p.get("keywords"),
                    "subsystems": p.get("subsystems"), "crs": p.get("crs"),
                    "feature_count": p.get("featureCount"), "version": p.get("version"),
                    "updated": p.get("updated"), "bbox": _footprint(record.get("geometry")),
                })  # fmt: skip
            url = _next(page)
        table = pd.DataFrame(rows, columns=list(_RECORD_COLUMNS))
        table["feature_count"] = table["feature_count"].astype("Int64")
        table["updated"] = pd.to_datetime(table["updated"], format="ISO8601", utc=True)
        return table

    def collection(self, id: str) -> dict[str, Any]:  # noqa: A002 - the OGC name
        """A collection's document: title, extent, CRSs, links (OGC API - Features).

        Raises:
            NotFoundError: no such collection, or not one you may read.

        Example:
            >>> c.collection("parcels")["extent"]["spatial"]["bbox"]
        """
        try:
            found: dict[str, Any] = self._json(f"/collections/{id}", f="json")
        except NotFoundError as exc:
            if repr(id) in str(exc):
                raise
            # pygeoapi's message does not name it
            error = NotFoundError(f"{exc}: {id!r} (see Client.collections())")
            raise located(error, 404, getattr(exc, "url", self.url)) from exc
        return found

    # --- features -----------------------------------------------------------------------

    def read(  # noqa: PLR0917 - the documented call, as analysts write it
        self,
        collection: str,
        bbox: Sequence[float] | None = None,
        filter: str | Mapping[str, Any] | None = None,  # noqa: A002 - the OGC name
        crs: int | str | None = None,
        as_of: frames.When | None = None,
        properties: Sequence[str] | str | None = None,
        sortby: Sequence[str] | str | None = None,
        limit: int | None = None,
        datetime: frames.When | tuple[frames.When | None, frames.When | None] | None = None,
    ) -> gpd.GeoDataFrame:
        """The features of a vector or GPS collection as a GeoDataFrame.

        The items are read page by page (``page_size`` features a request, following
        the ``next`` links), with a progress bar when there are many.

        Args:
            collection: The collection id (see :meth:`collections`).
            bbox: ``(west, south, east, north)`` in lon/lat (CRS84): only features
                meeting it.
            filter: A CQL2 filter: text (``"landuse = '耕地' AND area > 1000"``) or CQL2
                JSON (a dict); see ``/collections/{id}/queryables`` for the properties.
            crs: The CRS of the result: an EPSG code (``4546``), ``"EPSG:4546"`` or a
                CRS URI [default: lon/lat, EPSG:4326].
            as_of: The layer as it was at this moment: the edition current then (a
                datetime, naive meaning UTC, or a date meaning its first moment, UTC).
                Features replaced or removed since have negative ids.
            properties: Only these properties (``id`` and the geometry always come).
            sortby: Properties to sort by, ``-`` first for descending: ``"-area"``.
            limit: At most this many features [default: all].
            datetime: An instant or a ``(start, end)`` pair on the layer's time property.

        Returns:
            ``id``, the properties typed as the layer has them (integers, floats, text,
            dates and UTC timestamps as ``datetime64``) and ``geometry``, with its CRS.

        Raises:
            InvalidInputError: a malformed bbox (locally), filter or CRS, or an
                ``as_of`` before the collection began (by the server).
            NotFoundError: no such collection, or not one you may read.

        Example:
            >>> c.read("parcels", bbox=(112.0, 22.9, 112.05, 22.95),
            ...        filter="dlmc = '水田'", properties=["dkbm", "dlmc"], crs=4546)
        """
        box = frames.check_bbox(bbox)
        if limit is not None and limit < 1:
            msg = f"limit must be at least 1, not {limit}"
            raise InvalidInputError(msg)
        when = frames.interval(*datetime) if isinstance(datetime, tuple) else datetime
        params: dict[str, Any] = {
            "f": "json",
            "limit": min(self.page_size, limit or self.page_size),
            "bbox": frames.bbox_text(box) if box else None,
            "crs": frames.crs_uri(crs),
            "properties": frames.names(properties),
            "sortby": frames.names(sortby),
            "datetime": frames.instant(when) if when is not None else None,
            "as-of": frames.instant(as_of) if as_of is not None else None,
            **frames.cql2(filter),
        }
        # The first page before the queryables: its errors name the collection.
        page = self._items_page(f"/collections/{collection}/items", params)
        pages = frames.Pages(self._fields(collection), crs_uri=frames.crs_uri(crs))
        matched = page.get("numberMatched")
        total = min(matched, limit or matched) if matched is not None else limit
        bar = self._bar(total, collection, big=(total or 0) > self.page_size)
        try:
            while True:
                bar.update(pages.add(page))
                url = _next(page)
                if url is None or (limit is not None and len(pages.ids) >= limit):
                    break
                page = self._items_page(url, {})  # the link has the query
        finally:
            bar.close()
        if limit is not None and len(pages.ids) > limit:
            del pages.ids[limit:], pages.rows[limit:], pages.geometries[limit:]
        wanted = None if properties is None else frames.names(properties)
        return pages.frame(None if wanted is None else wanted.split(","))

    def _items_page(self, url: str, params: dict[str, Any]) -> dict[str, Any]:
        clean = {k: v for k, v in params.items() if v is not None}
        page: dict[str, Any] = self.request("GET", url, params=clean).json()
        return page

    def _fields(self, collection: str) -> dict[str, dict[str, Any]]:
        """The collection's properties and their JSON Schema types, in order."""
        schema = self._json(f"/collections/{collection}/queryables", f="json")
        fields: dict[str, dict[str, Any]] = {}
        for name, spec in (schema.get("properties") or {}).items():
            geometric = str(spec.get("format", "")).startswith("geometry")
            if name == "geometry" or "$ref" in spec or geometric:
                continue
            fields[name] = dict(spec)
        return fields

    # --- GPS ----------------------------------------------------------------------------

    def tracks(
        self,
        device: str | Sequence[str] | None = None,
        start: frames.When | None = None,
        end: frames.When | None = None,
    ) -> gpd.GeoDataFrame:
        """Each device's track of each day (``gps_tracks``): simplified lines with
        ``device_id``, ``department``, ``day``, ``points``, ``time`` (start), ``ended``
        and ``length_m``.

        Args:
            device: A device id, or several.
            start: Tracks starting at or after this moment (a datetime, a date, ISO text).
            end: Tracks starting at or before this moment.

        Example:
            >>> c.tracks("YF-AMB-01", start="2025-06-01")
        """
        return self._gps("gps_tracks", device, start, end)

    def positions(
        self,
        device: str | Sequence[str] | None = None,
        start: frames.When | None = None,
        end: frames.When | None = None,
        bbox: Sequence[float] | None = None,
    ) -> gpd.GeoDataFrame:
        """Every stored position (``gps_positions``), in time order: ``device_id``,
        ``department``, ``time``, ``speed`` (km/h), ``course``, ``altitude``, ``hdop``,
        ``satellites``, ``source``, point geometry.

        Args:
            device: A device id, or several.
            start: From this moment (a datetime, a date, ISO text).
            end: Up to this moment.
            bbox: ``(west, south, east, north)`` in lon/lat.

        Example:
            >>> c.positions("YF-AMB-01", start="2025-06-01T08:00:00Z", end="2025-06-01T09:00Z")
        """
        return self._gps("gps_positions", device, start, end, bbox=bbox)

    def events(
        self,
        device: str | Sequence[str] | None = None,
        fence: str | int | None = None,
        start: frames.When | None = None,
        end: frames.When | None = None,
        kinds: Sequence[str] | None = ("enter", "exit", "dwell"),
    ) -> gpd.GeoDataFrame:
        """Geofence events (``gps_events``): ``device_id``, ``department``, ``fence_id``,
        ``fence`` (its name), ``kind`` (``enter``, ``exit``, ``dwell``), ``time``.

        Args:
            device: A device id, or several.
            fence: A fence's name, or its number.
            start: From this moment.
            end: Up to this moment.
            kinds: The kinds of event [default: the geofences']; the collection also holds
                units arriving on scene (``on-scene``) and sensor alarms (``alarm-raised``,
                ``alarm-cleared``, with ``alarm_id``, ``datastream_id``, ``level`` and
                ``value``); None: every kind.

        Example:
            >>> c.events(fence="南山河高风险洪泛区")
            >>> c.events(kinds=["alarm-raised"])
        """
        parts = []
        if fence is not None:
            parts.append(
                f"fence_id = {int(fence)}" if isinstance(fence, int) else
                f"fence = {frames.quoted(str(fence))}"
            )  # fmt: skip
        if kinds is not None:
            parts.append(f"kind IN ({', '.join(frames.quoted(k) for k in kinds)})")
        where = " AND ".join(parts) or None
        return self._gps("gps_events", device, start, end, where=where)

    def _gps(
        self,
        collection: str,
        device: str | Sequence[str] | None,
        start: frames.When | None,
        end: frames.When | None,
        *,
        bbox: Sequence[float] | None = None,
        where: str | None = None,
    ) -> gpd.GeoDataFrame:
        conditions = [where] if where else []
        if device is not None:
            ids = [device] if isinstance(device, str) else list(device)
            conditions.append(f"device_id IN ({', '.join(frames.quoted(d) for d in ids)})")
        return self.read(
            collection,
            bbox=bbox,
            filter=" AND ".join(conditions) or None,
            sortby=["device_id", "time"],
            datetime=(start, end) if start is not None or end is not None else None,
        )

    def live(
        self,
        devices: str | Sequence[str] | None = None,
        departments: str | Sequence[str] | None = None,
        bbox: Sequence[float] | None = None,
        events: bool = True,
        timeout: float | None = None,
    ) -> LiveStream:
        """Positions and geofence events as they arrive (the ``/gps/live`` WebSocket).

        Args:
            devices: Only these devices.
            departments: Only these departments' devices.
            bbox: Only positions within ``(west, south, east, north)`` in lon/lat.
            events: Geofence events too (``{"type": "event", ...}``), not only positions.
            timeout: Stop when nothing arrives for this many seconds [default: never].

        Returns:
            An iterator of dicts (see :class:`~spatial.client.live.LiveStream`); the first
            are the latest positions of the matching devices. Close it, or use it in a
            ``with`` block, to hang up.

        Raises:
            ForbiddenError: you may not read ``gps_latest``.

        Example:
            >>> with c.live(devices="YF-AMB-01", timeout=60) as stream:
            ...     for message in stream:
            ...         print(message["device"], message["lon"], message["lat"])
        """
        from spatial.client.live import LiveStream  # noqa: PLC0415 - websockets when used

        box = frames.check_bbox(bbox)
        query = {"device": frames.names(devices), "department": frames.names(departments),
                 "bbox": frames.bbox_text(box) if box else None,
                 "access_token": self.token}  # fmt: skip
        text = urlencode({k: v for k, v in query.items() if v})
        url = "ws" + self.url.removeprefix("http") + "/gps/live" + (f"?{text}" if text else "")
        return LiveStream(url, events=events, timeout=timeout, open_timeout=self.timeout)

    # --- processes ----------------------------------------------------------------------

    def processes(self) -> pd.DataFrame:
        """The platform's processes (OGC API - Processes): ``id``, ``title``,
        ``description``.

        Example:
            >>> c.processes()
        """
        found = self._json("/processes", f="json").get("processes", [])
        columns = ["id", "title", "description", "version"]
        return pd.DataFrame([{k: p.get(k) for k in columns} for p in found], columns=columns)

    def process(
        self, name: str, /, *, asynchronous: bool | None = None, **inputs: Any
    ) -> dict[str, Any]:
        """Run a process and return its outputs.

        Short processes answer at once; those over imagery (an input named ``raster``)
        run as a job (``Prefer: respond-async``) that is waited on, with a progress bar.
        Interrupting the wait (Ctrl-C) dismisses the job.

        Args:
            name: The process id (see :meth:`processes`).
            asynchronous: Force a job (True) or an immediate answer (False).
            **inputs: The process's inputs; shapely geometries (or anything with
                ``__geo_interface__``) are sent as GeoJSON.

        Returns:
            The outputs, as the process describes them (GeoJSON as dicts).

        Raises:
            InvalidInputError: the inputs were refused, or the job failed on them.
            ServerError: the job failed inside the server.

        Example:
            >>> c.process("buffer", geometry=shapely.Point(112.0, 22.9), distance=500)
            >>> c.process("zonal-statistics", raster="imagery", zones="districts")
        """
        body = {"inputs": {k: _jsonable(v) for k, v in inputs.items()}}
        run_async = "raster" in inputs if asynchronous is None else asynchronous
        headers = {"Prefer": "respond-async"} if run_async else {}
        response = self.request("POST", f"/processes/{name}/execution", json=body,
                                headers=headers)  # fmt: skip
        if response.status_code != 201:
            outputs: dict[str, Any] = response.json()
            return outputs
        job = response.json()
        location = response.headers.get("location") or f"/jobs/{job['jobID']}"
        job = self._wait(location, job, name, _FINAL_PROCESS, scale=100.0)
        if job["status"] != "successful":
            raise _job_error(job.get("message"), location, job)
        results: dict[str, Any] = self._json(f"{location}/results")
        return results

    def _wait(
        self, location: str, job: dict[str, Any], what: str, final: set[str], scale: float
    ) -> dict[str, Any]:
        """Poll a job until it ends, showing its progress; Ctrl-C dismisses a process job."""
        state = "status" if "status" in job else "state"
        bar = self._bar(100, what, big=True)
        delay = 0.1
        try:
            while job[state] not in final:
                time.sleep(delay)
                delay = min(delay * 1.5, 1.0)
                job = self._json(location)
                bar.n = round(float(job.get("progress") or 0) * 100 / scale)
                bar.set_postfix_str(str(job.get("message") or ""), refresh=True)
        except KeyboardInterrupt:
            if state == "status":
                self.request("DELETE", location)
            raise
        finally:
            bar.close()
        return job

    # --- ingest -------------------------------------------------------------------------

    def upload(
        self,
        path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        collection: str,
        *,
        kind: str = "vector",
        title: str | None = None,
        key: str | None = None,
        public: bool = False,
        wait: bool = True,
        **options: Any,
    ) -> dict[str, Any]:
        """Upload a file into a collection (``/ingest/vector`` or ``/ingest/raster``),
        for stewards and admins.

        Args:
            path: The file: a GeoPackage, a zipped or plain Shapefile (its sidecar files
                go along), GeoJSON, CSV...; a GeoTIFF for ``kind="raster"``; or a list of
                files (one scene's bands).
            collection: The collection to create or to replace with a new edition.
            kind: ``vector`` or ``raster``.
            title: Its title [default: the id].
            key: The property identifying a feature across editions (vector).
            public: Make the collection readable by everyone (False leaves an existing
                collection's access as it is; a new one is its department's).
            wait: Wait for the ingest to finish (with a progress bar).
            **options: Further form fields of the ingest: ``crs``, ``encoding``,
                ``layer``, ``on_invalid``, ``subsystem``, ``valid_from``, ``editable``
                (vector); ``item``, ``datetime``, ``sensor``, ``bands`` (raster).

        Returns:
            The ingest job: ``id``, ``state`` (``succeeded`` when waited on),
            ``report`` (counts, rejects), ``links``.

        Raises:
            UnauthorizedError: anonymous. ForbiddenError: not a steward or admin of it.
            InvalidInputError: the file was refused (the job's message says why).

        Example:
            >>> c.upload("wells.gpkg", "wells", title="Wells", key="code")
            >>> c.read("wells")
        """
        if kind not in {"vector", "raster"}:
            msg = f"kind must be vector or raster, not {kind!r}"
            raise InvalidInputError(msg)
        paths = _upload_parts(path)
        form: dict[str, Any] = {"collection": collection, "title": title}
        if kind == "vector":
            form["key"] = key
        if public:
            form["public"] = "true"
        for name, value in options.items():
            form[name] = _form_value(value)
        data = {k: v for k, v in form.items() if v is not None}
        handles = [p.open("rb") for p in paths]
        try:
            files = [("file", (p.name, h, "application/octet-stream"))
                     for p, h in zip(paths, handles, strict=True)]  # fmt: skip
            response = self.request("POST", f"/ingest/{kind}", data=data, files=files)
        finally:
            for handle in handles:
                handle.close()
        job: dict[str, Any] = response.json()
        if not wait:
            return job
        location = response.headers.get("location") or f"/ingest/jobs/{job['id']}"
        job = self._wait(location, job, f"ingest {collection}", _FINAL_INGEST, scale=1.0)
        if job["state"] != "succeeded":
            raise _job_error(job.get("message"), location, job)
        return job

    # --- maps and imagery ---------------------------------------------------------------

    def map(
        self, collections: str | Sequence[str] = (), raster: str | None = None, **kwargs: Any
    ) -> folium.Map:
        """A folium map of collections, drawn offline (see :func:`spatial.viz.map`).

        Args:
            collections: Vector collection ids, drawn in order.
            raster: An imagery collection shown as tiles beneath them.
            **kwargs: ``bbox``, ``limit``, ``raster_params``, ``basemap``, ``inline``,
                and folium's ``zoom_start``, ``width``...

        Example:
            >>> c.map(["districts", "rivers"], raster="imagery",
            ...       raster_params={"expression": "ndvi", "colormap": "rdylgn"})
        """
        from spatial import viz  # noqa: PLC0415 - folium when used

        names = [collections] if isinstance(collections, str) else list(collections)
        for cid in [*names, *([raster] if raster else [])]:
            self.collection(cid)  # a typed error before drawing anything
        return viz.map(self.url, names, raster=raster, token=self.token, client=self.http,
                       **kwargs)  # fmt: skip

    def raster(  # noqa: PLR0917 - the documented call, as analysts write it
        self,
        collection_or_item: Any,
        bbox: Sequence[float] | None = None,
        bands: Sequence[str] | str | None = None,
        expression: str | None = None,
        crs: int | str | None = None,
        resolution: float | tuple[float, float] | None = None,
        datetime: Any = None,
        **kwargs: Any,
    ) -> xarray.DataArray:
        """Pixels of an imagery collection or scene as an xarray DataArray with its
        coordinates and CRS (see :func:`spatial.client.raster.read_raster`).

        Args:
            collection_or_item: ``"imagery"``, or one scene: ``"imagery/<item id>"``.
            bbox: ``(west, south, east, north)`` in lon/lat.
            bands: Band names.
            expression: Band math or an index (``"ndvi"``, ``"ndwi"``).
            crs: The CRS of the grid [default: the scene's].
            resolution: Pixel size in units of ``crs``.
            datetime: The newest scene at or before this moment.
            **kwargs: Further options of ``read_raster`` (``bbox_crs``).

        Example:
            >>> ndvi = c.raster("imagery", bbox=(112.0, 22.9, 112.05, 22.95), expression="ndvi")
            >>> ndvi.plot()
        """
        from spatial.client.raster import read_raster  # noqa: PLC0415 - xarray when used

        return read_raster(self, collection_or_item, bbox=bbox, bands=bands,
                           expression=expression, crs=crs, resolution=resolution,
                           datetime=datetime, **kwargs)  # fmt: skip


class _NoBar:
    """A progress bar that draws nothing."""

    n = 0

    def update(self, _count: float = 1) -> None:
        return None

    def set_postfix_str(self, _text: str, refresh: bool = True) -> None:
        return None

    def close(self) -> None:
        return None


def _interactive() -> bool:
    """Whether someone watches: a Jupyter kernel, the Python prompt, or a terminal."""
    if "ipykernel" in sys.modules or hasattr(sys, "ps1"):
        return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def _next(page: Mapping[str, Any]) -> str | None:
    return next((x["href"] for x in page.get("links", []) if x.get("rel") == "next"), None)


def _footprint(geometry: Mapping[str, Any] | None) -> tuple[float, ...] | None:
    """A record's footprint polygon as (west, south, east, north)."""
    if not geometry or not geometry.get("coordinates"):
        return None
    ring = geometry["coordinates"][0]
    xs, ys = [p[0] for p in ring], [p[1] for p in ring]
    return (min(xs), min(ys), max(xs), max(ys))


def _jsonable(value: Any) -> Any:
    """A process input as JSON: geometries as GeoJSON, datetimes as RFC 3339, tuples as lists."""
    if hasattr(value, "__geo_interface__"):
        return _jsonable(value.__geo_interface__)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.date):
        return frames.instant(value)
    if hasattr(value, "item") and callable(value.item):  # a numpy scalar
        return value.item()
    return value


def _form_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return frames.instant(value)
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return value


def _upload_parts(path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The files of an upload: a Shapefile's sidecars go along with it."""
    given = [Path(path)] if isinstance(path, (str, os.PathLike)) else [Path(p) for p in path]
    if not given:
        raise InvalidInputError("no file to upload")
    parts = list(given)
    for main in given:
        if not main.is_file():
            msg = f"{main} is not a file"
            raise NotFoundError(msg)
        if main.suffix.lower() == ".shp" and len(given) == 1:
            parts += [p for p in sorted(main.parent.glob(main.stem + ".*"))
                      if p.suffix.lower() in _SIDECARS]  # fmt: skip
    return parts


def _job_error(message: str | None, location: str, job: dict[str, Any]) -> SpatialError:
    """The error of a failed job: the server's fault, or the input's."""
    said = message or "the job failed"
    internal = said.startswith(("internal error", "interrupted"))
    error: SpatialError = (ServerError if internal else InvalidInputError)(said)
    error.job = job  # type: ignore[attr-defined]
    return located(error, None, location)
