"""Prompts of the model explainers: MELLM v1 (fused map + three analysis steps) and region statistics.

MELLM v1 (arXiv 2505.07007) shows the model a motion-enhanced colour map of the onset→apex flow on
the face: the hue of a pixel is the direction of its motion quantised to 30° steps, its brightness
the magnitude. The prompt explains that legend and asks for three steps: which regions move and
how → which action units → which emotion. The later MELLM version replaces the image by a text
table of region statistics (one line per region: name, mean and max magnitude in px, direction),
which a text-only LLM can read (`region_prompt`).

English is the default; ``language="zh"`` gives the Chinese wording of the original work.

>>> "30" in vlm_prompt("en") and "AU" in vlm_prompt("zh")
True
>>> direction_word(270.0)
'up'
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from engine.errors import UserError
from engine.types import RegionStat

LANGUAGES = ("en", "zh")
STEP_DEG = 30.0

# Hue = direction as engine.fusion.mellm_map draws it: image coordinates (0° = right, 90° = down,
# 270° = up), bin k = [30k, 30k + 30) drawn with OpenCV hue 30k°, so turning clockwise on screen
# from right through down, left and up runs red → yellow → green → cyan → blue → magenta.
_HUE_EN: tuple[tuple[int, str, str], ...] = (
    (0, "red", "right"),
    (60, "yellow", "down-right"),
    (90, "yellow-green", "down"),
    (120, "green", "down-left"),
    (180, "cyan", "left"),
    (240, "blue", "up-left"),
    (270, "violet", "up"),
    (300, "magenta", "up-right"),
)
_HUE_ZH: tuple[tuple[int, str, str], ...] = (
    (0, "红色", "向右"),
    (60, "黄色", "向右下"),
    (90, "黄绿色", "向下"),
    (120, "绿色", "向左下"),
    (180, "青色", "向左"),
    (240, "蓝色", "向左上"),
    (270, "紫色", "向上"),
    (300, "品红色", "向右上"),
)

# Twelve 30° sectors in image coordinates, centred on 0°, 30°, ..., 330°.
_DIRECTIONS_EN = (
    "right",
    "right and slightly down",
    "down and to the right",
    "down",
    "down and to the left",
    "left and slightly down",
    "left",
    "left and slightly up",
    "up and to the left",
    "up",
    "up and to the right",
    "right and slightly up",
)
_DIRECTIONS_ZH = (
    "向右",
    "向右略偏下",
    "向右下",
    "向下",
    "向左下",
    "向左略偏下",
    "向左",
    "向左略偏上",
    "向左上",
    "向上",
    "向右上",
    "向右略偏上",
)

_REGION_ZH = {
    "brow_inner": "眉头",
    "brow_outer": "眉尾",
    "eyelid_upper": "上眼睑",
    "eyelid_lower": "下眼睑",
    "nose_wing": "鼻翼",
    "mouth_corner": "嘴角",
    "lip_upper": "上唇",
    "lip_lower": "下唇",
    "chin": "下巴",
    "cheek": "脸颊",
}
_SIDE_EN = {"L": "left", "R": "right"}
_SIDE_ZH = {"L": "左", "R": "右"}


def check_language(language: str) -> str:
    """``language`` if supported, else a `UserError` naming the choices."""
    if language not in LANGUAGES:
        raise UserError(
            f"explainer language {language!r} is not supported; use one of: {', '.join(LANGUAGES)}"
        )
    return language


def quantise_direction(direction_deg: float) -> int:
    """Index 0..11 of the 30° sector holding ``direction_deg`` (image coordinates, 0 = right, 90 = down)."""
    return round((direction_deg % 360.0) / STEP_DEG) % 12


def direction_word(direction_deg: float, language: str = "en") -> str:
    """The direction quantised to 30° as words, e.g. 270 → 'up', 45 → 'down and to the right'."""
    words = _DIRECTIONS_ZH if check_language(language) == "zh" else _DIRECTIONS_EN
    return words[quantise_direction(direction_deg)]


def region_label(name: str, language: str = "en") -> str:
    """``mouth_corner_L`` → 'left mouth corner' / '左嘴角' (the subject's own side)."""
    base, _, side = name.rpartition("_")
    if side not in _SIDE_EN:
        base, side = name, ""
    if check_language(language) == "zh":
        return _SIDE_ZH.get(side, "") + _REGION_ZH.get(base, base)
    words = base.replace("_", " ")
    if base.startswith("eyelid_"):
        words = base.split("_")[1] + " eyelid"
    elif base.startswith("brow_"):
        words = base.split("_")[1] + " brow"
    elif base.startswith("lip_"):
        words = base.split("_")[1] + " lip"
    return f"{_SIDE_EN[side]} {words}" if side else words


def colour_legend(language: str = "en") -> str:
    """How to read the fused map: hue = direction (30° steps), brightness = magnitude."""
    if check_language(language) == "zh":
        hues = "；".join(f"{colour}表示{direction}" for _, colour, direction in _HUE_ZH)
        return (
            "这张图是面部从起始帧到顶点帧的光流运动增强图：静止的区域保留灰色人脸，运动的区域叠加上颜色。"
            "颜色的色调表示运动方向，按30度量化为12个方向"
            f"（{hues}，中间的颜色表示中间的方向）；颜色的亮度表示运动幅度：越亮运动越大。"
            "图中的左右是图像的左右，人脸的左侧出现在图像右侧。"
        )
    hues = "; ".join(f"{colour} means {direction}" for _, colour, direction in _HUE_EN)
    return (
        "The image is a motion-enhanced optical-flow map of a face from the onset frame to the apex frame "
        "of a micro-expression: still areas keep the grey face, moving areas glow in colour. The hue of "
        "a pixel shows the direction of its motion, quantised to 30 degree steps (12 directions: "
        f"{hues}; colours in between mean directions in between). The brightness of the colour shows "
        "the magnitude: the brighter, the larger the motion. "
        "Left and right in the image are mirrored: the subject's left side appears on the image's right."
    )


def analysis_steps(language: str = "en") -> str:
    """The three analysis steps of MELLM v1 and the answer format the parser reads best."""
    if check_language(language) == "zh":
        return (
            "请按以下三步分析：\n"
            "第一步：哪些面部区域在运动，运动方向和幅度如何（例如眉头、眼睑、鼻翼、嘴角、下巴）。\n"
            "第二步：这些运动对应哪些面部动作单元（AU），写成 AU编号 和名称，例如 AU4（皱眉）。\n"
            "第三步：这些动作单元说明什么情绪：积极、消极或惊讶，以及具体情绪（高兴、厌恶、压抑、悲伤、恐惧、"
            "愤怒、蔑视、惊讶或其他）。\n"
            "最后一行写：AU：…；情绪：…"
        )
    return (
        "Analyse it in three steps:\n"
        "Step 1: which facial regions move, in which direction and how strongly (for example brows, "
        "eyelids, nose wings, mouth corners, chin).\n"
        "Step 2: which facial action units (AUs) these movements correspond to; write each as AU number "
        "and name, for example AU4 (brow lowerer).\n"
        "Step 3: which emotion these action units indicate: positive, negative or surprise, and the "
        "specific emotion (happiness, disgust, repression, sadness, fear, anger, contempt, surprise or "
        "others).\n"
        "End with one line: AUs: ...; Emotion: ..."
    )


def vlm_prompt(language: str = "en") -> str:
    """The MELLM v1 prompt that goes with the fused map image: colour legend + three steps."""
    return f"{colour_legend(language)}\n\n{analysis_steps(language)}"


def region_line(stat: RegionStat, language: str = "en") -> str:
    """One line of the region table: name, mean and max magnitude in px, direction (30° steps)."""
    deg = quantise_direction(stat.direction_deg) * int(STEP_DEG)
    if check_language(language) == "zh":
        return (
            f"{region_label(stat.name, 'zh')}：平均幅度 {stat.mean_mag:.2f} 像素，"
            f"最大幅度 {stat.max_mag:.2f} 像素，"
            f"方向 {direction_word(stat.direction_deg, 'zh')}（{deg}度）"
        )
    return (
        f"{region_label(stat.name)}: mean {stat.mean_mag:.2f} px, max {stat.max_mag:.2f} px, "
        f"direction {direction_word(stat.direction_deg)} ({deg} deg)"
    )


def region_table(regions: Sequence[RegionStat], language: str = "en") -> str:
    """The region lines of ``regions``, strongest first so a short context still sees what matters."""
    return "\n".join(region_line(r, language) for r in sorted(regions, key=lambda r: -r.mean_mag))


def table_prompt(lines: str, language: str = "en") -> str:
    """The built-in prompt around region lines written by `region_table`."""
    if check_language(language) == "zh":
        head = (
            "以下是一段微表情从起始帧到顶点帧的面部光流统计（已去除头部运动），每行一个区域："
            "区域名、平均和最大运动幅度（像素）、主要方向（图像坐标，0度向右、90度向下、270度向上，按30度量化）。"
        )
    else:
        head = (
            "Below are optical-flow statistics of a face from the onset to the apex frame of a "
            "micro-expression (head motion removed), one line per region: region name, mean and "
            "maximum motion magnitude in pixels, main direction (image coordinates: 0 deg = right, "
            "90 = down, 270 = up, quantised to 30 deg). Left/right are the subject's own sides."
        )
    return f"{head}\n{lines or '(no regions)'}\n\n{analysis_steps(language)}"


def region_prompt(regions: Sequence[RegionStat], language: str = "en") -> str:
    """The built-in region-statistics prompt for text-only models (``region_format = "table"``)."""
    return table_prompt(region_table(regions, language), language)


def v3_prompt(lines: str, language: str = "en") -> str:
    """Our built-in prompt around MELLM v3 region lines (`engine.explain.mellm_v3.region_lines`).

    The authors' fine-tuned model is best served by their own released prompt: save it as a text
    file with ``{regions}`` where the lines go and set ``prompt_file``.
    """
    if check_language(language) == "zh":
        return (
            "下面每行描述一个面部小区域从起始帧到顶点帧的运动：区域名、平均幅度、最大幅度（像素）和主要方向"
            "（八方向名称和角度，0度向右、90度向上，逆时针）；方向分散的区域写作没有明确的主要方向。"
            "图像左侧为“Left”。\n"
            f"{lines}\n"
            "只分析明显运动的区域，推断相关的动作单元（AU），再由整体运动推断微表情类别。\n"
            "最后一行写：AU：…；微表情：Negative、Positive 或 Surprise 之一。"
        )
    return (
        "Each line below describes how one small facial region moves from the onset to the apex frame: "
        "region, mean and maximum magnitude in pixels, and the dominant direction (one of eight compass "
        "names with its angle, 0 = right, 90 = up, counter-clockwise), or no clear dominant direction "
        'when the motion is scattered. "Left" is the image\'s left.\n'
        f"{lines}\n"
        "Look only at regions that clearly move, say which action units (AUs) they show, then reason "
        "from the overall pattern to the micro-expression class.\n"
        "End with one line: AUs: ...; Micro-expression: Negative, Positive or Surprise."
    )


REGIONS_PLACEHOLDER = "{regions}"
IMAGE_MARKER = "<image>"


def read_prompt_file(path: str, explainer: str, *, text_model: bool) -> str:
    """The text of a user's prompt file, checked; "" when ``path`` is empty (built-in prompt).

    A text model's file must hold ``{regions}`` where the region lines go; an image model's file is
    the text sent after the map, so ``{regions}`` there is a mistake (it would reach the model as
    is), and a leading ``<image>`` marker (as in MELLM v1's released prompt) is dropped: the image
    always goes first.
    """
    if not path:
        return ""
    key = f"explain.{explainer}.prompt_file"
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise UserError(f"{key} {path!r} cannot be read ({reason}); point it at a UTF-8 text file") from None
    if not text.strip():
        raise UserError(f"{key} {path!r} is empty; write the prompt into it or unset {key}")
    has = REGIONS_PLACEHOLDER in text
    if text_model and not has:
        raise UserError(
            f"{key} {path!r} has no {REGIONS_PLACEHOLDER} placeholder; put it where the region lines go"
        )
    if not text_model and has:
        raise UserError(
            f"{key} {path!r} holds {REGIONS_PLACEHOLDER}, but {explainer} sends the map image, not region "
            "lines; remove the placeholder"
        )
    if not text_model:
        text = text.lstrip()
        text = text[len(IMAGE_MARKER) :] if text.startswith(IMAGE_MARKER) else text
        if IMAGE_MARKER in text:
            raise UserError(
                f"{key} {path!r} holds {IMAGE_MARKER} after its start; the map is always sent before the "
                "text, so remove it"
            )
    return text


def fill_prompt(template: str, regions: str) -> str:
    """``template`` with ``{regions}`` replaced by the region lines; no other brace is interpreted."""
    return template.replace(REGIONS_PLACEHOLDER, regions)
