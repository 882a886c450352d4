"""GPX 1.0/1.1 files (tracks, routes and waypoints), read into
:class:`~spatial.gps.fix.Decoded` by the rules of :mod:`spatial.gps.files`.

XML is parsed with the standard library's expat, never with external entities: any
``<!DOCTYPE`` (and so any entity declaration) refuses the whole document before anything
is expanded, which stops entity-expansion bombs and external-entity reads. The check sits
in expat's doctype handler rather than in a byte search, so it holds for every encoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from xml.parsers import expat

from spatial.errors import InvalidInputError
from spatial.gps.fix import Decoded, Reject
from spatial.gps.records import DEFAULT_MAX_BYTES, RecordError, as_number, check_size, make_fix

# Point children read into Fix fields; everything else simple becomes an attribute.
_GPX_USED = frozenset({"ele", "time", "sat", "hdop", "speed", "course", "extensions"})
_GPX_NUMERIC = frozenset({"vdop", "pdop", "magvar", "geoidheight", "ageofdgpsdata"})
_EXTENSION_USED = frozenset({"speed", "course", "bearing"})


@dataclass(slots=True)
class _Node:
    ns: str
    tag: str
    text: list[str] = field(default_factory=list)
    has_children: bool = False


@dataclass(slots=True)
class _Point:
    element: str  # wpt, rtept, trkpt
    kind: str  # waypoint, route, track
    line: int
    depth: int
    lat: str | None
    lon: str | None
    core: dict[str, str] = field(default_factory=dict)
    extension: dict[str, str] = field(default_factory=dict)
    index: int = 0


@dataclass(slots=True)
class _Container:
    """A ``<trk>`` or ``<rte>``: its header and its points, emitted when it closes
    (so a ``<name>`` written after the points, as some tools do, still names them)."""

    kind: str  # track, route
    index: int
    name: str | None = None
    type: str | None = None
    segment: int = 0
    points: list[tuple[_Point, int]] = field(default_factory=list)


def read_gpx(
    data: bytes, *, device: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> Decoded:
    """Read a GPX 1.0 or 1.1 document (or one without a namespace).

    Reads track points (``trk/trkseg/trkpt``), route points (``rte/rtept``) and waypoints
    (``wpt``), in document order. Each fix takes ``<ele>``, ``<time>``, ``<sat>``,
    ``<hdop>``, speed and course from GPX 1.0 ``<speed>``/``<course>`` or from any
    extension leaf named ``speed``/``course`` (Garmin ``TrackPointExtension`` v2; a
    ``bearing`` stands in for a missing course). Its device is the track's or route's
    ``<name>``; ``attributes`` hold ``kind`` (``track``/``route``/``waypoint``), the
    1-based ``track``/``route`` number and ``track_name``/``route_name``, the 1-based
    ``segment`` of a track point, ``type`` (the track's/route's ``<type>``, or a waypoint's
    own), the point's other simple children (``name``, ``sym``, ``fix``, ``vdop``, ...;
    a track/route point's own ``<type>`` as ``point_type``) and other extension leaves
    (e.g. ``hr``, ``cad``) as text.

    Reject details start with the element name (``trkpt: no time``). A document that
    breaks off (truncated, not well-formed) keeps the points completed before the
    break and adds one ``malformed`` reject at the line of the error.

    Args:
        data: the document, in any encoding it declares.
        device: replaces the device of every point.
        max_bytes: refuse larger input.

    Returns:
        Fixes, and rejects whose ``line`` is the line of the point's start tag.

    Raises:
        InvalidInputError: a DOCTYPE or entity declaration (refused before expansion),
            not XML, or a root element other than ``<gpx>``.
    """
    check_size(len(data), max_bytes)
    return _GpxReader(device).parse(data)


class _GpxReader:
    """Streams expat events into fixes; holds only the current track's points."""

    def __init__(self, device: str | None) -> None:
        self.device = device
        self.out = Decoded()
        self.stack: list[_Node] = []
        self.gpx_ns = ""
        self.point: _Point | None = None
        self.container: _Container | None = None
        self.root_seen = False
        self.containers = {"route": 0, "track": 0}  # <rte>/<trk> seen, to number them
        self.elements = {"wpt": 0, "rtept": 0, "trkpt": 0}  # points seen, for details
        self.parser = expat.ParserCreate(namespace_separator=" ")

    def parse(self, data: bytes) -> Decoded:
        parser = self.parser
        parser.buffer_text = True
        # Never read external DTDs or parameter entities; the doctype handler refuses the
        # rest before expat reads the internal subset.
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartDoctypeDeclHandler = self._refuse_doctype
        parser.EntityDeclHandler = self._refuse_entity
        parser.ExternalEntityRefHandler = self._refuse_external
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._text
        try:
            parser.Parse(data, True)
        except (LookupError, ValueError) as exc:
            if self.root_seen:
                raise
            # an encoding Python does not know (UTF-4) or expat cannot take (multi-byte)
            raise InvalidInputError(f"not an XML document: {exc}") from exc
        except expat.ExpatError as exc:
            message = expat.ErrorString(exc.code) if exc.code else str(exc)
            if not self.root_seen:
                raise InvalidInputError(
                    f"not an XML document: {message} (line {exc.lineno}, column {exc.offset})"
                ) from exc
            self._break_off(f"XML ends or breaks at line {exc.lineno}: {message}", exc.lineno)
        return self.out

    # -- refusals ------------------------------------------------------------------------

    def _refuse_doctype(self, name: str, *_: object) -> None:
        raise InvalidInputError(
            f"refused: the XML declares a DOCTYPE <!DOCTYPE {name} ...> "
            f"(line {self.parser.CurrentLineNumber}); DTDs and entities are not accepted"
        )

    def _refuse_entity(self, name: str, *_: object) -> None:
        raise InvalidInputError(f"refused: the XML declares the entity {name!r}")

    def _refuse_external(self, *_: object) -> int:
        raise InvalidInputError("refused: the XML refers to an external entity")

    # -- events --------------------------------------------------------------------------

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        ns, _, tag = name.rpartition(" ")
        depth = len(self.stack)
        if depth == 0:
            if tag != "gpx":
                raise InvalidInputError(f"the root element is <{tag}>, not <gpx>")
            self.gpx_ns = ns
            self.root_seen = True
        else:
            parent = self.stack[-1]
            parent.has_children = True
            parent.text.clear()
        self.stack.append(_Node(ns, tag))
        if self.point is not None or ns != self.gpx_ns:
            return
        container = self.container
        if depth == 1 and tag == "wpt":
            self._open_point(tag, "waypoint", depth, attrs)
        elif depth == 1 and tag in ("trk", "rte"):
            kind = "track" if tag == "trk" else "route"
            self.containers[kind] += 1
            self.container = _Container(kind, self.containers[kind])
        elif container is None:
            return
        elif container.kind == "track" and depth == 2 and tag == "trkseg":
            container.segment += 1
        elif (container.kind, depth, tag) in (("track", 3, "trkpt"), ("route", 2, "rtept")):
            self._open_point(tag, container.kind, depth, attrs)

    def _text(self, data: str) -> None:
        node = self.stack[-1]
        if not node.has_children:
            node.text.append(data)

    def _end(self, name: str) -> None:
        node = self.stack.pop()
        depth = len(self.stack)
        text = "".join(node.text).strip()
        point, container = self.point, self.container
        if point is not None:
            if depth == point.depth:
                self._close_point(point)
            elif text and not node.has_children:
                self._point_child(point, node, depth, text)
        elif container is not None and node.ns == self.gpx_ns:
            if depth == 1:
                self.container = None
                for queued, segment in container.points:
                    self._emit(queued, container, segment)
            elif depth == 2 and text and node.tag in ("name", "type"):
                setattr(container, node.tag, text)

    def _point_child(self, point: _Point, node: _Node, depth: int, text: str) -> None:
        if depth == point.depth + 1 and node.ns == self.gpx_ns:
            point.core.setdefault(node.tag, text)
            return
        # Below <extensions> (GPX 1.1), or an element of another namespace straight under
        # the point (GPX 1.0's way of extending); <link> children and the like are not.
        top = self.stack[point.depth + 1] if depth > point.depth + 1 else node
        if top.tag == "extensions" or top.ns != self.gpx_ns:
            point.extension.setdefault(node.tag, text)

    # -- points --------------------------------------------------------------------------

    def _open_point(self, element: str, kind: str, depth: int, attrs: dict[str, str]) -> None:
        self.elements[element] += 1
        self.point = _Point(
            element=element,
            kind=kind,
            line=self.parser.CurrentLineNumber,
            depth=depth,
            lat=attrs.get("lat"),
            lon=attrs.get("lon"),
            index=self.elements[element],
        )

    def _close_point(self, point: _Point) -> None:
        self.point = None
        if self.container is None:
            self._emit(point, None, 0)
        else:
            self.container.points.append((point, self.container.segment))

    def _emit(self, point: _Point, container: _Container | None, segment: int) -> None:
        core, extension = point.core, point.extension
        name = self.device or (container.name if container else None)
        attributes: dict[str, Any] = {"kind": point.kind}
        if container is not None:
            attributes[container.kind] = container.index
            if container.name:
                attributes[f"{container.kind}_name"] = container.name
            if container.kind == "track":
                attributes["segment"] = segment
            if container.type:
                attributes["type"] = container.type
        for key, value in core.items():
            if key not in _GPX_USED:
                key_out = "point_type" if key == "type" and container else key
                attributes.setdefault(key_out, _gpx_extra(key, value))
        for key, value in extension.items():
            if key not in _EXTENSION_USED:
                attributes.setdefault(key, value)
        values = {
            "lat": point.lat,
            "lon": point.lon,
            "time": core.get("time"),
            "altitude": core.get("ele"),
            "speed": core.get("speed") or extension.get("speed"),
            "course": core.get("course") or extension.get("course") or extension.get("bearing"),
            "hdop": core.get("hdop"),
            "satellites": core.get("sat"),
        }
        try:
            fix = make_fix(values, device=name, attributes=attributes, unix=False)
        except RecordError as bad:
            where = f"{point.element} {point.index}"
            if container is not None and container.name:
                where += f" of {container.kind} {container.name!r}"
            detail = f"{point.element}: {bad.detail} ({where})"
            self.out.rejects.append(Reject(bad.reason, detail, line=point.line, device=name))
        else:
            self.out.fixes.append(fix)

    def _break_off(self, detail: str, line: int) -> None:
        """Keep the points completed before a well-formedness error, then say where."""
        container = self.container
        if container is not None:
            self.container = None
            for queued, segment in container.points:
                self._emit(queued, container, segment)
        name = self.device or (container.name if container else None)
        self.out.rejects.append(Reject("malformed", detail, line=line, device=name))


def _gpx_extra(key: str, value: str) -> Any:
    """Numeric GPX point children as numbers when they parse, other children as text."""
    try:
        if key in _GPX_NUMERIC:
            return as_number(value, key)
        if key == "dgpsid":
            return int(value)
    except (RecordError, ValueError):
        return value
    return value
