"""One line of the status checks (`Check`), apart from the checks themselves so that the modules that
make some of the lines (video backend, timings) do not import the list that calls them; and `TestResult`,
what a provider's test button shows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.console.words import Text, pick


@dataclass(frozen=True)
class Check:
    """One line of the status page: which, green or red, the detail, and (when red) how to fix it."""

    key: str  # stable id: llm, amap, wechat, video_weights ...
    ok: bool
    name: Text
    detail: Text
    fix: Text = ("", "")

    def as_dict(self, lang: str = "zh") -> dict[str, Any]:
        from bot.logs import redactor

        return {"key": self.key, "ok": self.ok, "name": pick(self.name, lang),
                "detail": redactor().redact(pick(self.detail, lang)),
                "fix": redactor().redact(pick(self.fix, lang))}

    def line(self, lang: str = "zh") -> str:
        """`[OK ] name: detail` (and the fix on the next line), as `xiaoai doctor` prints it."""
        shown = self.as_dict(lang)
        mark = "OK " if self.ok else "BAD"
        fix_word = "怎么办" if lang == "zh" else "fix"
        return (f"[{mark}] {shown['name']}: {shown['detail']}"
                + (f"\n      {fix_word}: {shown['fix']}" if shown["fix"] else ""))

    def status_line(self) -> str:
        """The line of `#状态`: a mark, the plain name and the detail in Chinese."""
        shown = self.as_dict("zh")
        return f"{'✅' if self.ok else '❌'} {shown['name']}：{shown['detail']}" + (
            f"（{shown['fix']}）" if shown["fix"] else "")


@dataclass(frozen=True)
class TestResult:
    """What a console "测试一下" button shows: worked or not, in plain words."""

    ok: bool
    text: Text

    def as_dict(self, lang: str) -> dict[str, object]:
        from bot.logs import redactor

        return {"ok": self.ok, "text": redactor().redact(pick(self.text, lang))[:400]}
