"""`xiaoai bench flood`: 200 @-mentions in 2 s over 10 rooms to a real `xiaoai run` process, through the Node
Wechaty peer (mock puppet), each classified and answered by an OpenAI-compatible stand-in that takes 100 ms
a call; rate limits and quotas lifted. Latency is mention posted -> reply taken by the peer.

Phases, each a fresh bot process:
  start-cold   the flood as soon as the bot holds the event stream, first start (nothing cached in data_dir)
  start        the same on a second start (what every later restart sees)
  rest         30 s after start, warm-ups done
  render       while the tiny random CogVideoX renders a video on the CPU

The machine's load average is printed with every row: on a shared machine it decides the figures.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

FLOOD = 200
POST_S = 2.0
ROOMS = 10
LLM_DELAY_S = 0.1
NUMBERED = re.compile(r"第(\d{3})问")
PHASES = ("start-cold", "start", "rest", "render")
REPO_ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _answer(request: dict) -> str:
    asked = NUMBERED.findall(str(request["messages"][-1].get("content", "")))
    return f"答第{asked[-1]}问" if asked else "好的"


def _config(root: Path, phase: str, model: Path | None) -> Path:
    data: dict[str, Any] = {
        "data_dir": str(root / "data"),
        "quotas": {"user_messages_per_minute": None, "group_messages_per_minute": None},
        "wechaty": {"reconnect_initial_s": 0.2, "reconnect_max_s": 1.0, "health_interval_s": 0.5},
        "llm": {"model": "bench-model"},
    }
    if phase == "render" and model is not None:
        data["video"] = {"model": {"path": str(model)},
                         "sampling": {"num_frames": 33, "steps": 200, "max_steps": 1000, "height": 64,
                                      "width": 96}}
    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(data, out)
    path = root / "config.yaml"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


class _Bot:
    def __init__(self, root: Path, config: Path, env: dict[str, str]) -> None:
        self.log_path = root / f"bot-{time.monotonic_ns()}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "bot", "run", "--config", str(config)],
                                         cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise TimeoutError(f"{text!r} not logged in {timeout} s:\n{self.log()[-2000:]}")
            time.sleep(0.05)

    def cpu_s(self) -> float:
        """CPU seconds the bot process has used (user + system), from /proc."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _flood(peer: Any) -> tuple[dict[str, float], float]:
    from tests.support.peer import ALICE, BOB, BOT, CAROL, at

    senders = (ALICE, BOB, CAROL)
    peer.reset()
    asked_at: dict[str, float] = {}
    started = time.monotonic()
    for n in range(FLOOD):
        due = started + n * POST_S / FLOOD
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)
        number = f"{n:03d}"
        asked_at[number] = time.time() * 1000
        peer.say(senders[n % 3], f"{at()}第{number}问：今天吃什么", room=f"room{n % ROOMS + 1}@chatroom",
                 mention=[BOT])
    return asked_at, time.monotonic() - started


def _answers(peer: Any, asked_at: dict[str, float], timeout: float) -> list[float]:
    deadline = time.monotonic() + timeout
    while True:
        got = {}
        for message in peer.sent():
            found = NUMBERED.search((message.get("text") or "").replace("答第", "第"))
            if found and "答第" in (message.get("text") or ""):
                got.setdefault(found.group(1), message["ts"])
        if len(got) >= len(asked_at) or time.monotonic() > deadline:
            return [got[n] - asked_at[n] for n in got]
        time.sleep(0.1)


def run_phase(phase: str, root: Path, peer: Any, llm: Any, model: Path | None) -> dict[str, Any]:
    config = _config(root, phase, model)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "WECHATY_", "XIAOAI_"))}
    env.update({"OPENAI_BASE_URL": llm.base_url, "OPENAI_API_KEY": "bench-key",
                "WECHATY_PUPPET_SERVICE_ENDPOINT": peer.endpoint, "WECHATY_PUPPET_SERVICE_TOKEN": peer.token,
                "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"})
    if phase != "start-cold" and not (root / "data" / "cache").exists():  # a later start: a filled cache
        primer = _Bot(root, config, env)
        try:
            primer.wait_log("examples ready", timeout=180)
        finally:
            primer.stop()
    launched = time.monotonic()
    bot = _Bot(root, config, env)
    try:
        bot.wait_log("logged in as", timeout=120)
        serving_s = time.monotonic() - launched
        if phase == "rest":
            time.sleep(30)
        if phase == "render":
            from tests.support.peer import BOT, FAMILY, at

            peer.say("alice", at() + "生成猫的视频", room=FAMILY, mention=[BOT])
            bot.wait_log("(10 %)", timeout=180)
        load_before, cpu_before = os.getloadavg()[0], bot.cpu_s()
        asked_at, posted_s = _flood(peer)
        latencies = _answers(peer, asked_at, timeout=120)
        flood_cpu_s = bot.cpu_s() - cpu_before
        still_rendering = "done in" not in bot.log() if phase == "render" else None
    finally:
        bot.stop()
    row = {"phase": phase, "answered": len(latencies), "of": FLOOD, "posted_s": round(posted_s, 2),
           "serving_after_s": round(serving_s, 1), "load_before": round(load_before, 2),
           "load_after": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
           "bot_cpu_ms_per_mention": round(flood_cpu_s * 1000 / FLOOD, 1)}
    if latencies:
        row |= {"p50_ms": round(percentile(latencies, 0.5)), "p90_ms": round(percentile(latencies, 0.9)),
                "p99_ms": round(percentile(latencies, 0.99)), "max_ms": round(max(latencies))}
    if still_rendering is not None:
        row["render_still_running"] = still_rendering
    return row


def run(phases: list[str]) -> list[dict[str, Any]]:
    from generators.random_models import build_cogvideox_folder
    from tests.support.builtin_intents import BUILTIN
    from tests.support.fake_llm import FakeLLM, is_classify
    from tests.support.peer import NodePeer

    root = Path(tempfile.mkdtemp(prefix="xiaoai-bench-flood-"))
    model = build_cogvideox_folder(root / "tiny-2b") if "render" in phases else None
    rows = []
    with NodePeer(env={"XIAOAI_SCENARIO_ROOMS": str(ROOMS)}) as peer, FakeLLM() as llm:
        llm.add(lambda req: is_classify(req) and "猫的视频" in str(req["messages"][-1].get("content", "")),
                BUILTIN.with_follow_up("clip")[0].label, delay=LLM_DELAY_S)
        llm.add(lambda req: not is_classify(req), "A small cat plays in the sun.", delay=LLM_DELAY_S)
        llm.add(lambda req: is_classify(req) and "第" in str(req["messages"][-1].get("content", "")),
                BUILTIN.fallback.label, delay=LLM_DELAY_S)
        llm.add(lambda req: not is_classify(req) and bool(NUMBERED.search(
            str(req["messages"][-1].get("content", "")))), _answer, delay=LLM_DELAY_S)
        for phase in phases:
            if phase == "start-cold":
                shutil.rmtree(root / "data", ignore_errors=True)
            row = run_phase(phase, root, peer, llm, model)
            rows.append(row)
            print(_line(row), flush=True)
    shutil.rmtree(root, ignore_errors=True)
    return rows


def _line(row: dict[str, Any]) -> str:
    figures = (f"p50 {row['p50_ms']} ms, p90 {row['p90_ms']} ms, p99 {row['p99_ms']} ms, "
               f"max {row['max_ms']} ms" if "p99_ms" in row else "no answers")
    render = "" if "render_still_running" not in row else (
        ", render still running" if row["render_still_running"] else ", render finished during the flood")
    return (f"{row['phase']:>10}: {row['answered']}/{row['of']} answered, {figures}{render}; posted in "
            f"{row['posted_s']} s, serving {row['serving_after_s']} s after launch; the bot used "
            f"{row['bot_cpu_ms_per_mention']} ms of CPU a mention; load average "
            f"{row['load_before']} -> {row['load_after']} on {row['cpus']} CPUs")
