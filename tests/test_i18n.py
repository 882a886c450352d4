"""English and Chinese (zh-CN): the OGC pages, the collections' titles, errors and the maps.

Against the demo city on a real HTTP server: pygeoapi's HTML pages come in Chinese for
``lang=zh-CN`` (and ``zh``, ``zh-TW``) or a browser preferring Chinese, in English otherwise
(parsed with lxml: ``<html lang>``, translated headings, a collection's Chinese title); the
collections' JSON titles and descriptions follow, with ``Content-Language``; an OGC exception
keeps its code and status and says its message in Chinese; the map pages' shells are in the
asked language, and every string the map scripts translate has its Chinese. One browser
check: the scripts of a map page opened in Chinese write their panels in Chinese.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from browser import browser_page, open_map
from lxml import etree, html
from support import LiveServer

from api.routers.maps import STATIC
from spatial import i18n

CHINESE = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}
ENGLISH = {"Accept-Language": "en-US,en;q=0.9,zh-CN;q=0.5"}


@pytest.fixture(scope="module")
def api(demo_api: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo_api.url, timeout=60) as client:
        yield client


def _page(
    api: httpx.Client, path: str, **kwargs: object
) -> tuple[httpx.Response, html.HtmlElement]:
    response = api.get(path, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text[:300]
    return response, html.fromstring(response.content)


def _texts(tree: html.HtmlElement, xpath: str) -> list[str]:
    return [" ".join(e.text_content().split()) for e in tree.xpath(xpath)]


def test_the_collections_page_in_chinese_and_in_english(api: httpx.Client) -> None:
    zh, tree = _page(api, "/collections", params={"f": "html", "lang": "zh-CN"})
    assert zh.headers["content-language"] == "zh-CN"
    assert tree.get("lang") == "zh" and tree.get("dir") == "ltr"
    assert "本服务中的数据集合" in _texts(tree, "//h1")
    assert "首页" in _texts(tree, "//div[@class='crumbs']//a")
    titles = _texts(tree, "//table//a")
    assert "宗地" in titles and "遥感影像 (4-band, 10 m)" in titles
    assert "Cadastral parcels" not in titles
    en, tree = _page(api, "/collections", params={"f": "html"})
    assert en.headers["content-language"] == "en"
    assert tree.get("lang") == "en"
    assert "Data collections in this service" in _texts(tree, "//h1")
    assert "Cadastral parcels" in _texts(tree, "//table//a")


@pytest.mark.parametrize(
    ("params", "headers", "chinese"),
    [
        ({}, CHINESE, True),  # the browser prefers Chinese
        ({}, ENGLISH, False),
        ({"lang": "en"}, CHINESE, False),  # lang= wins over the header
        ({"lang": "zh"}, ENGLISH, True),  # (pygeoapi's own choice answered 500 to these two)
        ({"lang": "zh-TW"}, {}, True),
        ({"lang": "fr"}, CHINESE, False),  # asked for a language not served: the default
    ],
)
def test_the_language_is_chosen_by_lang_then_accept_language(
    api: httpx.Client, params: dict[str, str], headers: dict[str, str], chinese: bool
) -> None:
    response, tree = _page(api, "/collections/parcels", params={"f": "html", **params},
                           headers=headers)  # fmt: skip
    assert response.headers["content-language"] == ("zh-CN" if chinese else "en")
    assert tree.get("lang") == ("zh" if chinese else "en")
    assert ("宗地" if chinese else "Cadastral parcels") in _texts(tree, "//h1")
    headings = ["浏览", "可查询属性", "链接"] if chinese else ["Browse", "Queryables", "Links"]
    assert set(headings) <= set(_texts(tree, "//h3"))


def test_collection_titles_and_descriptions_in_json(api: httpx.Client) -> None:
    zh = api.get("/collections/parcels", params={"lang": "zh-CN"})
    assert zh.headers["content-language"] == "zh-CN"
    assert zh.json()["title"] == "宗地"
    assert zh.json()["description"] == "演示数据：parcels_2025.zip"
    en = api.get("/collections/parcels")
    assert en.headers["content-language"] == "en"
    assert (en.json()["title"], en.json()["description"]) == (
        "Cadastral parcels", "Demo data: parcels_2025.zip"
    )  # fmt: skip
    listed = {c["id"]: c for c in api.get("/collections", headers=CHINESE).json()["collections"]}
    assert listed["imagery"]["title"] == "遥感影像 (4-band, 10 m)"
    assert listed["imagery"]["description"] == "演示数据：两景四波段影像"
    assert listed["catalog"]["title"] == "目录"
    landing = api.get("/", params={"lang": "zh-CN"}).json()
    assert landing["title"] == "3S 空间信息平台"
    assert api.get("/").json()["title"] == "3S spatial platform"


def test_the_platforms_own_pages_follow_the_language(api: httpx.Client) -> None:
    """Pages the platform renders with pygeoapi's templates (conformance, processes)."""
    for path in ("/conformance", "/processes"):
        response, tree = _page(api, path, params={"f": "html"}, headers=CHINESE)
        assert response.headers["content-language"] == "zh-CN"
        assert tree.get("lang") == "zh"
        assert "首页" in _texts(tree, "//div[@class='crumbs']//a")
        response, tree = _page(api, path, params={"f": "html"})
        assert response.headers["content-language"] == "en" and tree.get("lang") == "en"


@pytest.mark.parametrize(
    ("path", "status", "code", "english", "chinese"),
    [
        ("/collections/nope", 404, "NotFound", "collection 'nope' does not exist",
         "集合 'nope' 不存在"),
        ("/collections/parcels/items?bbox=1,2,3", 400, "InvalidParameterValue",
         "bbox '1,2,3' must be 4 numbers: minx,miny,maxx,maxy",
         "bbox '1,2,3' 须为 4 个数：minx,miny,maxx,maxy"),
        ("/collections/parcels/items?limit=0", 400, "InvalidParameterValue",
         "limit must be an integer of at least 1, not '0'",
         "limit 须为不小于 1 的整数，而不是 '0'"),
        ("/collections/parcels/items?datetime=yesterday", 400, "InvalidParameterValue",
         "datetime 'yesterday' is not an RFC 3339 date or date-time (e.g. 2024-05-01T08:00:00Z)",
         "datetime 'yesterday' 不是 RFC 3339 日期或日期时间（例如 2024-05-01T08:00:00Z）"),
        ("/collections/parcels/items?colour=red", 400, "InvalidParameterValue", None,
         "未知的查询参数 'colour'；此资源接受："),
        ("/admin/users", 401, "Unauthorized", None, "/admin/users 仅限管理员：需要 API 密钥或令牌"),
        ("/no/such/path", 404, "NotFound", "Not Found", "未找到"),
    ],
)  # fmt: skip
def test_errors_in_chinese_when_asked(  # noqa: PLR0917 - the cases' columns
    api: httpx.Client, path: str, status: int, code: str, english: str | None, chinese: str
) -> None:
    default = api.get(path)
    assert default.status_code == status and default.json()["code"] == code
    assert default.headers["content-language"] == "en"
    if english is not None:
        assert default.json()["description"] == english
    joined = f"{path}{'&' if '?' in path else '?'}lang=zh-CN"
    for response in (api.get(path, headers=CHINESE), api.get(joined, headers=ENGLISH)):
        assert response.status_code == status and response.json()["code"] == code
        assert response.headers["content-language"] == "zh-CN"
        assert response.json()["description"].startswith(chinese)


def test_an_untranslated_message_keeps_its_english() -> None:
    told = "filter: like needs a text property, not number tbmj"
    assert i18n.message(told, i18n.ZH, "InvalidParameterValue") == f"参数无效：{told}"
    assert i18n.message(told, i18n.EN, "InvalidParameterValue") == told
    assert i18n.message("something else", i18n.ZH) == "something else"


def test_bilingual_titles_split_into_their_languages() -> None:
    assert i18n.split("宗地 Cadastral parcels") == ("宗地", "Cadastral parcels")
    assert i18n.split("洪水淹没范围 Flood extent (YF-SW-02, 62.55 m)") == (
        "洪水淹没范围 (YF-SW-02, 62.55 m)", "Flood extent (YF-SW-02, 62.55 m)"
    )  # fmt: skip
    for single in ("宗地 2025 (web)", "Rivers and Lakes 河湖", "河流 and lakes of Yunfu", "GPS"):
        assert i18n.split(single) is None
        assert i18n.localise(single, i18n.EN) == single
    assert i18n.variants("宗地") == "宗地"
    assert i18n.variants("GPS tracks") == {"en": "GPS tracks", "zh-CN": "GPS 轨迹"}


def test_negotiation_follows_the_quality_values() -> None:
    assert i18n.negotiate(None, "fr, zh;q=0.5, en;q=0.4") == i18n.ZH
    assert i18n.negotiate(None, "zh;q=0, en;q=0.1") == i18n.EN
    assert i18n.negotiate(None, "de, *") == i18n.EN
    assert i18n.negotiate(" ", "zh-Hant-TW") == i18n.ZH
    assert i18n.negotiate("EN-gb", "zh") == i18n.EN


def test_the_map_pages_shells_in_both_languages(api: httpx.Client) -> None:
    zh, tree = _page(api, "/maps/", params={"lang": "zh-CN"})
    assert zh.headers["content-language"] == "zh-CN" and tree.get("lang") == "zh-CN"
    assert _texts(tree, "//h1") == ["地图"] and _texts(tree, "//form//button") == ["登录"]
    assert tree.xpath("//input[@name='password']/@placeholder") == ["密码"]
    en, tree = _page(api, "/maps/")
    assert en.headers["content-language"] == "en" and tree.get("lang") == "en"
    assert _texts(tree, "//h1") == ["Web maps"] and _texts(tree, "//form//button") == ["Sign in"]
    zh, tree = _page(api, "/maps/land", headers=CHINESE)
    assert tree.get("lang") == "zh-CN" and "{{" not in zh.text
    assert _texts(tree, "//section[@id='layers']/h2") == ["图层"]
    assert _texts(tree, "//section[@id='legend']/h2") == ["图例"]
    _, tree = _page(api, "/maps/land", params={"lang": "en"}, headers=CHINESE)
    assert tree.get("lang") == "en"
    assert _texts(tree, "//section[@id='layers']/h2") == ["Layers"]
    assert _texts(tree, "//aside/header/a") == ["← Maps"]


_KEY = re.compile(r"""\bt\(\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")""")


def test_every_string_the_map_scripts_translate_has_its_chinese() -> None:
    table = (STATIC / "i18n.js").read_text(encoding="utf-8")
    asked: set[str] = set()
    for script in STATIC.glob("*.js"):
        if script.name != "i18n.js":
            text = script.read_text(encoding="utf-8")
            asked |= {a or b for a, b in _KEY.findall(text)}
    assert len(asked) > 150
    missing = [key for key in sorted(asked) if f"'{key}':" not in table
               and f"  {key}:" not in table and f'"{key}":' not in table]  # fmt: skip
    assert not missing, missing


def test_a_map_page_opened_in_chinese_writes_its_panels_in_chinese(demo_api: LiveServer) -> None:
    with browser_page() as seen:
        page = open_map(seen, f"{demo_api.url}/maps/land?lang=zh-CN")
        assert page.locator("#measure h2").text_content() == "测量"
        buttons = [b.strip() for b in page.locator("#measure button").all_text_contents()]
        assert buttons[:3] == ["测距", "测面", "清除"]
        assert page.title().endswith("· 地图")
        seen.assert_clean()


def test_classic_service_exceptions_in_chinese_when_asked(api: httpx.Client) -> None:
    """WMS and WMTS exception reports: the message in Chinese for ``lang=zh-CN`` (the code
    and locator unchanged), English by default; ``xml:lang`` and Content-Language say which."""
    wms = {"SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetMap"}
    chinese = api.get("/wms", params={**wms, "lang": "zh-CN"})
    english = api.get("/wms", params=wms)
    assert (chinese.status_code, english.status_code) == (400, 400)
    said = {r.headers["content-language"]: etree.fromstring(r.content)[0] for r in
            (chinese, english)}  # fmt: skip
    assert said["zh-CN"].get("code") == said["en"].get("code") == "MissingParameterValue"
    assert said["zh-CN"].text.startswith("缺少参数") and "LAYERS" in said["zh-CN"].text
    assert said["en"].text == "LAYERS is required"
    wmts = api.get("/wmts", params={"SERVICE": "WMTS", "REQUEST": "GetTile"},
                   headers={"Accept-Language": "zh-CN,zh;q=0.9"})  # fmt: skip
    report = etree.fromstring(wmts.content)
    assert report.get("{http://www.w3.org/XML/1998/namespace}lang") == "zh-CN"
    text = report.findtext(".//{http://www.opengis.net/ows/1.1}ExceptionText") or ""
    assert re.search("[\u4e00-\u9fff]", text), text
