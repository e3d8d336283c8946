"""The console's two languages: Chinese (the default, for the family's admin) and English (a switch).

A text is a `(zh, en)` pair; `pick` chooses one for the visitor's `lang` (cookie `xiaoai_lang`)."""

from __future__ import annotations

LANG_COOKIE = "xiaoai_lang"
LANGS = ("zh", "en")
Text = tuple[str, str]


def pick(text: Text, lang: str) -> str:
    return text[1] if lang == "en" else text[0]


def lang_of(cookie: str | None) -> str:
    return cookie if cookie in LANGS else "zh"


QUOTA_LABELS: dict[str, Text] = {
    "user_messages_per_minute": ("每人每分钟消息数", "messages per person per minute"),
    "group_messages_per_minute": ("每群每分钟消息数", "messages per group per minute"),
    "user_images_per_day": ("每人每天画图数", "pictures per person per day"),
    "group_images_per_day": ("每群每天画图数", "pictures per group per day"),
    "user_videos_per_day": ("每人每天视频数", "videos per person per day"),
    "group_videos_per_day": ("每群每天视频数", "videos per group per day"),
}
ERRORS: dict[str, Text] = {
    "login_first": ("请先登录", "log in first"),
    "csrf": ("页面过期了，请刷新页面再试", "missing or wrong CSRF token: reload the page"),
    "wrong_password": ("密码不对", "wrong password"),
    "locked": ("密码错太多次了，请 {seconds} 秒后再试", "too many wrong passwords: try again in {seconds} s"),
    "no_qr": ("现在没有登录二维码", "no login QR code right now"),
    "no_job": ("没有等待中或生成中的任务 #{job}", "no waiting or running job #{job}"),
    "env_wins": ("{name} 由环境变量设置，这里改不了（环境变量优先）",
                 "{name} is set by an environment variable, which wins: it cannot be changed here"),
    "unknown_secret": ("这里不能设置 {name}", "{name} cannot be set here"),
    "no_data_dir": ("没有数据目录，密钥没法保存", "no data folder: keys cannot be saved"),
}


def error(key: str, lang: str, **values: object) -> str:
    return pick(ERRORS[key], lang).format(**values)
