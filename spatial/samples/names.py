"""Generated Chinese names: villages, people, companies and institutions.

Every generated name is GB2312-encodable, except ``RARE_NAMES``: two holder names with
characters that are in GBK but not in GB2312 (they test that the GBK round trip works).
"""

from __future__ import annotations

import numpy as np

SURNAMES = (
    "陈",
    "李",
    "黄",
    "张",
    "梁",
    "林",
    "刘",
    "吴",
    "罗",
    "何",
    "郑",
    "杨",
    "冯",
    "谢",
    "邓",
    "麦",
    "叶",
    "苏",
    "卢",
    "蔡",
    "潘",
    "彭",
    "曾",
    "温",
    "钟",
    "赖",
    "邱",
    "莫",
    "区",
    "严",
)
GIVEN = (
    "伟",
    "芳",
    "娜",
    "敏",
    "静",
    "丽",
    "强",
    "磊",
    "军",
    "洋",
    "勇",
    "艳",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀",
    "霞",
    "平",
    "刚",
    "桂",
    "英",
    "华",
    "文",
    "志",
    "建",
    "国",
    "嘉",
    "俊",
    "锦",
    "荣",
    "辉",
    "燕",
    "玲",
    "婷",
    "浩",
    "宇",
    "欣",
    "怡",
    "颖",
    "晓",
    "海",
    "振",
    "德",
)
RARE_NAMES = ("黄堃", "李珺玥")
"""Holder names with GBK-only characters (堃 珺 玥 are not in GB2312)."""

VILLAGE_FIRST = (
    "东",
    "西",
    "南",
    "北",
    "大",
    "小",
    "上",
    "下",
    "新",
    "石",
    "水",
    "龙",
    "凤",
    "云",
    "高",
    "河",
    "塘",
    "黄",
    "白",
    "金",
    "竹",
    "松",
    "榕",
    "莲",
    "桂",
    "福",
    "禾",
    "沙",
    "岭",
    "茶",
)
VILLAGE_SECOND = (
    "坑",
    "塘",
    "岗",
    "田",
    "坪",
    "寨",
    "围",
    "头",
    "洞",
    "湾",
    "口",
    "岭",
    "边",
    "庄",
    "屋",
    "埔",
    "洲",
    "山",
    "地",
    "冲",
    "背",
    "尾",
    "垌",
    "岩",
)
COMPANY_WORDS = (
    "华南",
    "粤西",
    "云石",
    "金峰",
    "南山",
    "新华",
    "恒达",
    "盛景",
    "宏图",
    "永安",
    "兴业",
    "瑞丰",
    "万利",
    "国信",
    "东方",
    "锦程",
    "鸿运",
    "天成",
    "广源",
    "富华",
)
COMPANY_KIND: dict[str, tuple[str, ...]] = {
    "05": ("商贸有限公司", "置业有限公司", "酒店管理有限公司", "商业管理有限公司"),
    "06": ("石材有限公司", "实业有限公司", "建材有限公司", "机械制造有限公司"),
    "0604": ("仓储物流有限公司", "供应链管理有限公司"),
    "0701": ("房地产开发有限公司",),
}
INSTITUTIONS: dict[str, tuple[str, ...]] = {
    "0801": ("云浮市云城区人民政府", "{town}办事处", "云浮市自然资源局", "云浮市公安局云城分局"),
    "0803": ("云浮市第一中学", "云浮市实验学校", "{town}中心小学", "云浮市技工学校"),
    "0805": ("{town}社区卫生服务站", "{town}计生服务中心", "云浮市疾病预防控制中心"),
    "0807": ("云浮市图书馆", "云浮市文化馆", "云浮市博物馆"),
    "0808": ("云浮市体育中心", "{town}文体中心"),
    "0809": ("云浮市供水有限公司", "广东电网云浮供电局", "云浮市环卫所", "云浮市燃气有限公司"),
    "0810": ("云浮市城市管理和综合执法局",),
    "10": ("云浮市交通运输局",),
    "11": ("云浮市水务局",),
    "12": ("云浮市自然资源局",),
    "03": ("云浮市国有林场",),
}

HOSPITALS = (
    ("云浮市人民医院", "三级甲等", 1500),
    ("云浮市中医院", "三级甲等", 900),
    ("云浮市妇幼保健院", "三级乙等", 500),
    ("云浮市第二人民医院", "二级甲等", 600),
    ("云城区人民医院", "二级甲等", 420),
    ("云浮市中西医结合医院", "二级甲等", 300),
    ("云浮仁爱医院", "二级乙等", 150),
    ("城东社区卫生服务中心", "一级甲等", 60),
    ("城西社区卫生服务中心", "一级甲等", 50),
    ("城北社区卫生服务中心", "一级甲等", 50),
    ("安塘卫生院", "一级甲等", 40),
    ("思劳卫生院", "一级乙等", 30),
)
"""Hospitals: name, grade (医院等级) and beds, in the order of ``city.HOSPITAL_ANCHORS``."""

FIRE_STATIONS = (
    ("云城消防救援站", 9),
    ("城东特勤消防站", 12),
    ("城西消防救援站", 6),
    ("高峰消防救援站", 5),
    ("思劳专职消防队", 3),
    ("安塘消防救援站", 5),
    ("河口消防救援站", 4),
    ("石材产业园消防站", 7),
)
"""Fire stations: name and vehicles, in the order of ``city.FIRE_ANCHORS``."""


def pick(generator: np.random.Generator, options: tuple[str, ...]) -> str:
    """Choose one of the options.

    Args:
        generator: random source.
        options: candidates.

    Returns:
        The chosen string.
    """
    return options[int(generator.integers(len(options)))]


def person(generator: np.random.Generator) -> str:
    """A plausible Cantonese-region personal name (surname plus one or two characters).

    Args:
        generator: random source.

    Returns:
        The name.
    """
    given = pick(generator, GIVEN)
    if generator.random() < 0.7:
        given += pick(generator, GIVEN)
    return pick(generator, SURNAMES) + given


def village_names(generator: np.random.Generator, count: int) -> list[str]:
    """Distinct village names ending in 村.

    Args:
        generator: random source.
        count: how many (at most ``len(VILLAGE_FIRST) * len(VILLAGE_SECOND)``).

    Returns:
        The names in generation order.
    """
    seen: set[str] = set()
    names: list[str] = []
    while len(names) < count:
        name = pick(generator, VILLAGE_FIRST) + pick(generator, VILLAGE_SECOND) + "村"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def company(generator: np.random.Generator, code: str) -> str:
    """A company name fitting the land-use class.

    Args:
        generator: random source.
        code: four-digit land-use code.

    Returns:
        The name.
    """
    kinds = COMPANY_KIND.get(code) or COMPANY_KIND.get(code[:2]) or COMPANY_KIND["05"]
    return "云浮市" + pick(generator, COMPANY_WORDS) + pick(generator, kinds)


def holder(generator: np.random.Generator, code: str, state: bool, town: str, village: str) -> str:
    """The right holder (权利人) of a parcel.

    Args:
        generator: random source.
        code: four-digit land-use code.
        state: whether the land is state-owned.
        town: the district (街道/镇) name.
        village: the village the parcel belongs to.

    Returns:
        A person, a company, an institution or a village co-operative.
    """
    group = code[:2]
    if code in ("0701", "0702"):
        if code == "0701" and generator.random() < 0.35:
            return company(generator, code)
        return person(generator)
    if group in ("05", "06"):
        return company(generator, code)
    options = INSTITUTIONS.get(code) or INSTITUTIONS.get(group)
    if options is not None and (state or group not in ("03", "12")):
        return pick(generator, options).format(town=town)
    return f"{town}{village}股份合作社"
