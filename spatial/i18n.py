"""The platform's two languages: English (the default) and Simplified Chinese (``zh-CN``).

Which one a response is in: :func:`negotiate` reads ``lang=`` (``zh``, ``zh-CN``,
``zh-Hans``... or ``en``, ``en-GB``...) first, then the ``Accept-Language`` header by its
quality values; anything else is English. Three kinds of text follow that choice:

- pygeoapi's HTML pages: its own template strings through the gettext catalog
  ``spatial/translations/zh_CN/LC_MESSAGES/messages.po``, compiled by :func:`compile_catalog`
  (Babel) into ``var/locale`` when the server starts (:mod:`api.engine`);
- the catalog's titles and descriptions (:func:`localise`): a title written in the
  platform's bilingual convention, ``"宗地 Cadastral parcels"`` (Chinese first, then the
  English), shows its Chinese part in Chinese and its English part in English; an English
  text with an entry in :data:`TEXTS` (the demo's and the GPS views' descriptions) shows that
  entry in Chinese; any other text is shown as written in both languages. The catalog keeps
  one title and one description per collection: no column, no second source;
- error messages (:func:`message`): an OGC exception's ``description`` matched against
  :data:`MESSAGES` (regular expressions over the English text, keeping its quoted values);
  a message with no entry keeps its English text, after a Chinese phrase saying what kind of
  error it is (by its OGC ``code``, :data:`CODES`), so a Chinese reader knows the gist.

The web maps' own strings (buttons, panels) are in ``api/static/maps/i18n.js``.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

EN = "en"
ZH = "zh-CN"
LANGUAGES = (EN, ZH)
"""The languages served; the first is the default."""
QUERY_PARAM = "lang"

TRANSLATIONS = Path(__file__).resolve().parent / "translations"
"""The gettext catalogs (``<locale>/LC_MESSAGES/messages.po``) of pygeoapi's templates."""
DOMAIN = "messages"


def supported(tag: str | None) -> str | None:
    """The served language a language tag asks for (``zh-TW`` and ``zh-Hant`` too: the
    platform has no Traditional Chinese), or None for another language."""
    primary = (tag or "").strip().replace("_", "-").split("-")[0].lower()
    return {"zh": ZH, "en": EN}.get(primary)


def negotiate(lang: str | None, accept_language: str | None) -> str:
    """The language of a response: ``lang=`` when it names a served language, else the
    most preferred served language of ``Accept-Language``, else English.

    A ``lang`` naming a language the platform does not serve gives English (the default),
    as pygeoapi does: the caller chose, and the choice is not served.
    """
    if lang is not None and lang.strip():
        return supported(lang) or EN
    ranked: list[tuple[float, int, str]] = []
    for n, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        language = supported(tag)
        if language and quality > 0:
            ranked.append((-quality, n, language))
    return min(ranked)[2] if ranked else EN


def html_lang(lang: str) -> str:
    """The ``<html lang>`` value of a page in ``lang``."""
    return ZH if lang == ZH else EN


# -- bilingual text -------------------------------------------------------------------------

_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
_TRAILING_NOTE = re.compile(r"\s*(\([^()]*\))\s*$")


def split(text: str) -> tuple[str, str] | None:
    """The Chinese and English parts of a bilingual text (``"宗地 Cadastral parcels"``), or
    None when the text is not one.

    A bilingual text is Chinese, a space, then English: the English part starts with a
    capital Latin letter right after the last Chinese character and a space. A note in
    parentheses that ends the English part (``"(10 m)"``, a gauge and a level) is kept in
    the Chinese part too.
    """
    found = list(_CJK.finditer(text))
    if not found:
        return None
    last = found[-1]
    space = re.match(r"\s+(?=[A-Z])", text[last.end() :])
    if space is None:
        return None
    chinese = text[: last.end()].strip()
    english = text[last.end() + space.end() :].strip()
    note = _TRAILING_NOTE.search(english)
    if note and note.group(1) not in chinese:
        chinese = f"{chinese} {note.group(1)}"
    return chinese, english


TEXTS: dict[str, str] = {
    "Demo data: two 4-band scenes": "演示数据：两景四波段影像",
    "Demo data: the city's elevation, 10 m pixels": "演示数据：全市高程，10 米像元",
    "Every collection of the platform (vector layers, imagery, GPS views), searchable by "
    "text, place, kind and subsystem.": "平台的全部集合（矢量图层、影像、GPS 视图），"
    "可按文本、地点、类型和子系统检索。",
    "GPS positions": "GPS 定位点",
    "GPS latest positions": "GPS 最新位置",
    "GPS tracks": "GPS 轨迹",
    "GPS trips": "GPS 行程",
    "Geofence events": "电子围栏事件",
    "Every stored position of every device.": "每台设备存储的全部定位点。",
    "The newest position of every device.": "每台设备的最新位置。",
    "Each device's track of each day (simplified).": "每台设备每天的轨迹（已简化）。",
    "Tracks split at stops and gaps.": "在停留点和中断处切分的轨迹。",
    "Devices entering, leaving and dwelling in geofences, units arriving on scene, and sensor "
    "alarms raised and cleared.": "设备进入、离开和停留于电子围栏，救援单位到场，以及传感器告警的"
    "产生与解除。",
    "Catalog": "目录",
    "3S spatial platform": "3S 空间信息平台",
    "Imagery, parcels and GPS tracks of the city in one PostGIS, served through OGC APIs.": (
        "全市的遥感影像、宗地和 GPS 轨迹存于一个 PostGIS，通过 OGC API 提供服务。"
    ),
}
"""English texts of the catalog and the service's description, in Chinese."""
_PATTERNED_TEXTS = ((re.compile(r"Demo data: (?P<file>\S+)"), "演示数据：{file}"),)


def localise(text: str | None, lang: str) -> str | None:
    """A catalog title or description in ``lang`` (see the module's docstring)."""
    if not text:
        return text
    parts = split(text)
    if parts is not None:
        return parts[0] if lang == ZH else parts[1]
    if lang != ZH:
        return text
    if text in TEXTS:
        return TEXTS[text]
    for pattern, template in _PATTERNED_TEXTS:
        found = pattern.fullmatch(text)
        if found:
            return template.format(**found.groupdict())
    return text


def variants(text: str | None) -> str | dict[str, str] | None:
    """A text as a language map (``{"en": ..., "zh-CN": ...}``) when it differs between the
    languages, as pygeoapi's configuration takes it; else the text."""
    if not text:
        return text
    english, chinese = localise(text, EN), localise(text, ZH)
    if english == chinese or english is None or chinese is None:
        return text
    return {EN: english, ZH: chinese}


# -- the web maps' page shells ---------------------------------------------------------------

PAGE_TEXTS: dict[str, str] = {
    "Web maps": "地图",
    "Map": "地图",
    "Maps": "地图",
    "User name": "用户名",
    "Password": "密码",
    "Sign in": "登录",
    "This map needs signing in.": "此地图需要登录。",
    "Layers": "图层",
    "Legend": "图例",
}
"""The strings of the map pages' shells (``api/templates/maps-*.html``, written there as
``{{English}}``) in Chinese; their scripts' strings are in ``api/static/maps/i18n.js``."""
_PAGE_TEXT = re.compile(r"\{\{([^{}]+)\}\}")


def page(template: str, lang: str) -> str:
    """A page template with each ``{{English}}`` in ``lang`` (English when not in
    :data:`PAGE_TEXTS`)."""
    if lang == ZH:
        return _PAGE_TEXT.sub(lambda m: PAGE_TEXTS.get(m.group(1), m.group(1)), template)
    return _PAGE_TEXT.sub(lambda m: m.group(1), template)


# -- error messages -------------------------------------------------------------------------

_V = r"(?P<{}>.+?)"


def _p(pattern: str) -> re.Pattern[str]:
    """A message pattern: ``{name}`` stands for any text, kept in the translation."""
    return re.compile(re.sub(r"\\\{(\w+)\\\}", lambda m: _V.format(m.group(1)), re.escape(pattern)))


MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (_p(english), chinese)
    for english, chinese in (
        # unknown things (404)
        ("collection {c} does not exist", "集合 {c} 不存在"),
        ("collection {c} has no feature {f}", "集合 {c} 中没有要素 {f}"),
        ("collection {c} has no item {f}", "集合 {c} 中没有条目 {f}"),
        ("process {p} does not exist; see /processes", "处理过程 {p} 不存在；见 /processes"),
        ("ingest job {j} does not exist", "入库作业 {j} 不存在"),
        ("job {j} does not exist", "作业 {j} 不存在"),
        ("Not Found", "未找到"),
        ("Method Not Allowed", "不允许此请求方法"),
        ("map {m} does not exist", "地图 {m} 不存在"),
        ("tile matrix set {t} is not served; use one of {l}",
         "不提供瓦片矩阵集 {t}；请使用以下之一：{l}"),
        # parameters (400)
        ("unknown query parameter {p}; this resource takes: {l}",
         "未知的查询参数 {p}；此资源接受：{l}"),
        ("bbox {v} must be 4 numbers: minx,miny,maxx,maxy",
         "bbox {v} 须为 4 个数：minx,miny,maxx,maxy"),
        ("bbox {v}: the lower bound {a} is above the upper bound {b}",
         "bbox {v}：下界 {a} 大于上界 {b}"),
        ("datetime {v} is not an RFC 3339 date or date-time (e.g. {e})",
         "datetime {v} 不是 RFC 3339 日期或日期时间（例如 {e}）"),
        ("datetime {v} must be an instant or an interval start/end",
         "datetime {v} 须为时刻或“开始/结束”区间"),
        ("datetime {v}: an interval needs at least one end", "datetime {v}：区间至少需要一端"),
        ("{p} must be an integer of at least {n}, not {v}",
         "{p} 须为不小于 {n} 的整数，而不是 {v}"),
        ("{p} must be true or false, not {v}", "{p} 须为 true 或 false，而不是 {v}"),
        ("{p} must be a whole number, not {v}", "{p} 须为整数，而不是 {v}"),
        ("crs {v} is not a CRS URI (e.g. {e})", "crs {v} 不是坐标参考系 URI（例如 {e}）"),
        ("crs {v} is not served; use one of {l}", "不提供坐标参考系 {v}；请使用以下之一：{l}"),
        ("EPSG:{c} is not a known coordinate reference system", "EPSG:{c} 不是已知的坐标参考系"),
        ("f={v} is not offered; use one of {l}", "不提供格式 f={v}；请使用以下之一：{l}"),
        ("f={v} is not served here; use one of {l}", "此处不提供格式 f={v}；请使用以下之一：{l}"),
        ("collection {c} has no property {p}; its properties are: {l}",
         "集合 {c} 没有属性 {p}；其属性有：{l}"),
        ("filter is not valid cql2-text: {r}", "filter 不是有效的 CQL2 文本：{r}"),
        ("input {n} is required", "缺少输入 {n}"),
        # signing in (401) and rights (403)
        ("this platform needs a key or a token (anonymous access is off)",
         "本平台需要 API 密钥或令牌（未开放匿名访问）"),
        ("{p} is for admins: it needs a key or a token (Authorization: Bearer ...)",
         "{p} 仅限管理员：需要 API 密钥或令牌（Authorization: Bearer ...）"),
        ("{w} needs a key or a token (Authorization: Bearer ...)",
         "{w} 需要 API 密钥或令牌（Authorization: Bearer ...）"),
        ("{w} needs a key or a token (Authorization: Bearer ..., or Basic)",
         "{w} 需要 API 密钥或令牌（Authorization: Bearer ... 或 Basic）"),

        ("wrong user name or password", "用户名或密码错误"),
        ("the API key is not valid", "API 密钥无效"),
        ("the API key was revoked", "API 密钥已被吊销"),
        ("the API key has expired", "API 密钥已过期"),
        ("the bearer token has expired; sign in again", "令牌已过期；请重新登录"),
        ("the bearer token was revoked; sign in again", "令牌已被吊销；请重新登录"),
        ("the bearer token is not valid ({r})", "令牌无效（{r}）"),
        ("the account is unknown or disabled", "账户不存在或已停用"),
        ("{u} may not open map {m}", "{u} 无权打开地图 {m}"),
        ("{u} may not {w} ({r} may)", "{u} 无权 {w}（{r} 可以）"),
        ("{u} may not {w}", "{u} 无权 {w}"),
        # sizes (413) and the rest
        ("{w} may be at most {n} MiB", "{w} 最大为 {n} MiB"),
        ("{w} is larger than the limit of {n} bytes", "{w} 超过 {n} 字节的上限"),
        ("the database is not reachable; try again shortly", "数据库暂时无法连接；请稍后重试"),
        # the classic services (WMS, WMTS, api/ows.py) and printing: their general shapes
        ("layer {l} is not offered", "不提供图层 {l}"),
        ("layer {l} is not defined", "图层 {l} 未定义"),
        ("style {s} is not defined{r}", "样式 {s} 未定义{r}"),
        ("{p} is required", "缺少参数 {p}"),
        ("{p} must be a whole number from {a} to {b}, not {v}",
         "{p} 须为 {a} 到 {b} 之间的整数，而不是 {v}"),
        ("TileMatrix {m} is not a matrix of {s}", "TileMatrix {m} 不是 {s} 的矩阵"),
        ("{p}={v}: this is {s}", "{p}={v}：本服务是 {s}"),
        ("{w} is not offered; use {l}", "不提供 {w}；请使用 {l}"),
        ("{w} is not offered: {l}", "不提供 {w}：{l}"),
        ("{w} is not offered", "不提供 {w}"),
        ("{w} is not supported", "不支持 {w}"),
        ("{w} is out of range{r}", "{w} 超出范围{r}"),
    )
)  # fmt: skip
"""English error messages (regular expressions, ``{name}`` for a value kept as is) and
their Chinese; the first that matches the whole message wins (specific before general)."""

CODES = {
    "InvalidParameterValue": "参数无效",
    "UnprocessableContent": "请求内容无法处理",
    "NotFound": "未找到",
    "Unauthorized": "需要登录",
    "Forbidden": "无权访问",
    "PayloadTooLarge": "请求过大",
    "UnsupportedMediaType": "不支持的媒体类型",
    "NotAcceptable": "无法以所要求的格式应答",
    "TooManyRequests": "请求过于频繁",
    "PreconditionFailed": "前提条件不满足",
    "Conflict": "冲突",
    "ServiceUnavailable": "服务暂不可用",
    "InsufficientStorage": "存储空间不足",
    "MethodNotAllowed": "不允许此请求方法",
    "ServerError": "服务器错误",
    # The classic services' exception codes (WMS 1.3.0, OWS 1.1: api.ows).
    "MissingParameterValue": "缺少参数",
    "TileOutOfRange": "瓦片超出范围",
    "OperationNotSupported": "不支持此操作",
    "VersionNegotiationFailed": "版本协商失败",
    "LayerNotDefined": "图层不存在",
    "StyleNotDefined": "样式不存在",
    "InvalidCRS": "坐标参考系无效",
    "InvalidSRS": "坐标参考系无效",
    "InvalidFormat": "格式不支持",
    "InvalidPoint": "查询点无效",
    "LayerNotQueryable": "图层不可查询",
    "InvalidDimensionValue": "维度值无效",
    "MissingDimensionValue": "缺少维度值",
    "NoApplicableCode": "服务器错误",
}
"""What each OGC exception code means, in Chinese: the lead of an untranslated message."""


def message(description: str, lang: str, code: str | None = None) -> str:
    """An error message in ``lang``: its translation from :data:`MESSAGES` (the values it
    quotes kept), else, in Chinese, the English text after what its ``code`` means; English
    is returned as is."""
    if lang != ZH:
        return description
    for pattern, chinese in MESSAGES:
        found = pattern.fullmatch(description)
        if found:
            return chinese.format(**found.groupdict())
    lead = CODES.get(code or "")
    return f"{lead}：{description}" if lead else description


# -- pygeoapi's template strings ------------------------------------------------------------


def compile_catalog(target: Path, source: Path = TRANSLATIONS) -> Path:
    """Compile every ``.po`` under ``source`` into a ``.mo`` under ``target`` (same layout),
    when the ``.mo`` is missing or older; returns ``target`` (pygeoapi's ``locale_dir``).

    Written atomically (a temporary file renamed), so workers starting together do not read
    a half-written catalog.
    """
    from babel.messages.mofile import write_mo  # noqa: PLC0415 - only when the server starts
    from babel.messages.pofile import read_po  # noqa: PLC0415 - only when the server starts

    for po in sorted(source.rglob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        mo = target / po.relative_to(source).with_suffix(".mo")
        if mo.is_file() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        mo.parent.mkdir(parents=True, exist_ok=True)
        with po.open("rb") as text:
            catalog = read_po(text)
        fd, tmp = tempfile.mkstemp(dir=mo.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            write_mo(out, catalog)
        Path(tmp).replace(mo)
    return target
