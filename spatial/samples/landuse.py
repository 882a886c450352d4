"""Land-use classes (GB/T 21010-2017), where they occur, who holds them and how they look.

The zone tables describe the mix of second-level classes per concentric zone of the
city; a block draws one dominant class from its zone and most of its parcels share it,
which gives a spatially plausible pattern (a built-up core, farmland and orchards
around it, forest on the hills, water along the rivers).
"""

from __future__ import annotations

CLASS_NAMES: dict[str, str] = {
    "0101": "水田",
    "0102": "水浇地",
    "0103": "旱地",
    "0201": "果园",
    "0202": "茶园",
    "0204": "其他园地",
    "0301": "乔木林地",
    "0302": "竹林地",
    "0305": "灌木林地",
    "0307": "其他林地",
    "0404": "其他草地",
    "0501": "零售商业用地",
    "0502": "批发市场用地",
    "0503": "餐饮用地",
    "0504": "旅馆用地",
    "0505": "商务金融用地",
    "0601": "工业用地",
    "0602": "采矿用地",
    "0604": "仓储用地",
    "0701": "城镇住宅用地",
    "0702": "农村宅基地",
    "0801": "机关团体用地",
    "0803": "教育用地",
    "0805": "医疗卫生用地",
    "0807": "文化设施用地",
    "0808": "体育用地",
    "0809": "公用设施用地",
    "0810": "公园与绿地",
    "1003": "公路用地",
    "1005": "交通服务场站用地",
    "1101": "河流水面",
    "1104": "坑塘水面",
    "1106": "内陆滩涂",
    "1107": "沟渠",
    "1202": "设施农用地",
    "1206": "裸土地",
}
"""Second-level classes used by the demo (code -> official Chinese name)."""

FIRST_LEVEL_NAMES: dict[str, str] = {
    "01": "耕地",
    "02": "园地",
    "03": "林地",
    "04": "草地",
    "05": "商服用地",
    "06": "工矿仓储用地",
    "07": "住宅用地",
    "08": "公共管理与公共服务用地",
    "10": "交通运输用地",
    "11": "水域及水利设施用地",
    "12": "其他土地",
}

VEGETATED = ("01", "02", "03", "04")
"""First-level classes that are green in the imagery."""

BUILT_UP = ("05", "06", "07")
"""First-level classes that are built up."""

Table = tuple[tuple[str, float], ...]

ZONE_CORE, ZONE_INNER, ZONE_OUTER, ZONE_HILL, ZONE_INDUSTRY = range(5)

ZONE_TABLES: dict[int, Table] = {
    ZONE_CORE: (
        ("0701", 40),
        ("0501", 9),
        ("0505", 8),
        ("0503", 3),
        ("0504", 3),
        ("0801", 6),
        ("0803", 6),
        ("0807", 2),
        ("0808", 2),
        ("0809", 2),
        ("0810", 6),
        ("1005", 2),
        ("0502", 2),
    ),
    ZONE_INNER: (
        ("0701", 24),
        ("0702", 12),
        ("0501", 4),
        ("0601", 8),
        ("0604", 4),
        ("0803", 4),
        ("0809", 2),
        ("0810", 3),
        ("0101", 10),
        ("0103", 6),
        ("0201", 6),
        ("0404", 3),
        ("1202", 2),
        ("1206", 2),
        ("1104", 1),
    ),
    ZONE_OUTER: (
        ("0101", 26),
        ("0102", 4),
        ("0103", 14),
        ("0201", 14),
        ("0202", 3),
        ("0204", 2),
        ("0301", 8),
        ("0307", 4),
        ("0305", 3),
        ("0404", 5),
        ("0702", 9),
        ("1104", 3),
        ("1202", 2),
        ("1003", 1),
        ("1206", 2),
    ),
    ZONE_HILL: (
        ("0301", 50),
        ("0302", 10),
        ("0305", 12),
        ("0307", 10),
        ("0404", 6),
        ("0201", 6),
        ("0602", 4),
        ("1206", 2),
    ),
    ZONE_INDUSTRY: (
        ("0601", 55),
        ("0604", 18),
        ("0502", 5),
        ("0809", 4),
        ("1005", 4),
        ("0701", 6),
        ("1206", 4),
        ("0404", 4),
    ),
}

VEGETATED_TO_BUILT: Table = (
    ("0701", 45),
    ("0601", 20),
    ("0604", 8),
    ("0501", 12),
    ("0505", 8),
    ("0502", 7),
)
"""What farmland, orchards, forest and grass become when they are built on."""

OTHER_TRANSITIONS: dict[str, str] = {
    "0101": "0103",
    "0102": "0101",
    "0103": "0201",
    "0201": "0103",
    "0202": "0201",
    "0204": "0201",
    "0301": "0307",
    "0302": "0301",
    "0305": "0301",
    "0307": "0301",
    "0404": "0301",
    "01": "02",
    "02": "01",
    "03": "04",
    "04": "03",
    "0501": "0505",
    "0502": "0501",
    "0503": "0501",
    "0504": "0505",
    "0505": "0501",
    "0601": "0604",
    "0602": "1206",
    "0604": "0601",
    "0701": "0501",
    "0702": "0701",
    "0801": "0807",
    "0803": "0808",
    "0807": "0801",
    "0808": "0803",
    "0809": "0801",
    "0810": "0808",
    "1003": "1005",
    "1005": "1003",
    "1104": "0101",
    "1202": "0101",
    "1206": "0701",
}
"""Re-attributions that are not greenfield development (land consolidation, rezoning)."""

STATE_CLASSES = ("05", "06", "08", "10", "11")


FIRST_LEVEL_ONLY_DISTRICT = "445302100"
"""思劳镇: its farmland, orchards, forest and grass are recorded with first-level codes only
(``01``-``04``, DLMC 耕地/园地/林地/草地), as in an older rural survey."""


def class_name(code: str) -> str:
    """Official Chinese name of a two- or four-digit land-use code.

    Args:
        code: e.g. ``"0101"`` or ``"01"``.

    Returns:
        The name, e.g. ``"水田"`` or ``"耕地"``.
    """
    return CLASS_NAMES.get(code) or FIRST_LEVEL_NAMES[code]


def first_level(code: str) -> str:
    """First-level class of a code ("0101" -> "01").

    Args:
        code: a two- or four-digit GB/T 21010 code.

    Returns:
        The two-digit first-level code.
    """
    return code[:2]


def is_state_owned(code: str) -> bool:
    """Whether land of this class is state-owned (国有) rather than collective (集体).

    Urban construction land, public land, transport and water are state-owned; farmland,
    orchards, forest, grass, rural homesteads and farm facilities are collective.

    Args:
        code: a four-digit class code.

    Returns:
        True for 国有.
    """
    return first_level(code) in STATE_CLASSES or code == "0701"


# Typical surface reflectance x 10000 (blue, green, red, near infrared) per class group.
SPECTRA: dict[str, tuple[float, float, float, float]] = {
    "01": (520.0, 920.0, 720.0, 3300.0),
    "02": (420.0, 820.0, 560.0, 3600.0),
    "03": (300.0, 600.0, 360.0, 3850.0),
    "04": (560.0, 1000.0, 880.0, 3000.0),
    "05": (1650.0, 1750.0, 1850.0, 2150.0),
    "06": (1900.0, 2000.0, 2100.0, 2350.0),
    "0602": (2250.0, 2450.0, 2650.0, 2950.0),
    "07": (1400.0, 1500.0, 1620.0, 2000.0),
    "08": (1250.0, 1400.0, 1350.0, 2300.0),
    "0810": (450.0, 860.0, 600.0, 3400.0),
    "10": (1000.0, 1100.0, 1200.0, 1500.0),
    "11": (720.0, 820.0, 560.0, 260.0),
    "1202": (1300.0, 1450.0, 1500.0, 2100.0),
    "12": (1250.0, 1550.0, 1950.0, 2450.0),
}
ROAD_SPECTRUM = (950.0, 1050.0, 1150.0, 1450.0)
"""Asphalt: the road strips and unregistered gaps inside the city."""
COUNTRYSIDE_SPECTRUM = (450.0, 850.0, 650.0, 3350.0)
"""Mixed vegetation: the margin of the scenes outside the city extent."""


def spectrum(code: str) -> tuple[float, float, float, float]:
    """Typical reflectance of a land-use class.

    Args:
        code: a four-digit class code.

    Returns:
        Blue, green, red and NIR reflectance scaled by 10000.
    """
    return SPECTRA.get(code) or SPECTRA[first_level(code)]
