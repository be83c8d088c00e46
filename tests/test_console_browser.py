"""The console as a person uses it, in headless Chromium (Debian's, through Selenium) against a real
server and real `quick` runs: a run that stops for approval is followed live and approved in the
page, then `rsi resume` promotes it; a split vote labelled in the page reaches the next cycle's
training data. While a run runs, the console reads it and is refused writes, and the ledger stays whole."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
import uvicorn
from fastapi.testclient import TestClient

from rsi.console import create_app
from rsi.ledger import Ledger

pytestmark = pytest.mark.slow
RSI = [sys.executable, "-m", "rsi.cli"]
TOKEN = "browser-token"


@pytest.fixture
def console(tmp_path):
    """(runs directory, the console's URL, its app) for a console served on a free loopback port."""
    root = tmp_path / "runs"
    root.mkdir()
    app = create_app(root, "127.0.0.1", token=TOKEN)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield root, f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(timeout=10)


def rsi(*args, check=True):
    out = subprocess.run([*RSI, *args], capture_output=True, text=True, timeout=600)
    assert not check or out.returncode == 0, out.stderr
    return out


def text(browser, css: str) -> str:
    found = browser.find_elements("css selector", css)
    return found[0].text if found else ""


def shown(browser, css: str, want: str = "", timeout_s: float = 60) -> str:
    """The text of `css` once it holds `want` (any text when empty): a click's new page, or a redraw by the
    page's script, comes when it comes, and a loaded machine takes longer."""
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(browser, timeout_s, poll_frequency=0.1).until(
            lambda b: (got := text(b, css)) and want in got and got)
    except Exception:  # the assertion that follows shows what the element held instead
        return text(browser, css)


def test_a_run_awaiting_approval_is_followed_live_approved_in_the_browser_and_promoted_on_resume(browser, console):
    root, url, app = console
    run = root / "approval"
    proc = subprocess.Popen([*RSI, "run", "quick", "--run-dir", str(run), "--set", "gate.require_approval=true",
                             "--set", "loop.cycles=1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while not (run / "ledger.sqlite").exists():
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    browser.get(f"{url}/runs/approval?token={TOKEN}")  # the page stays open: it follows the run by itself
    side = TestClient(app)
    side.cookies.set("rsi_console", TOKEN)
    states, bars, refused = set(), set(), None
    deadline = time.time() + 400
    while time.time() < deadline and text(browser, "#state") != "waiting":
        states.add(text(browser, "#state"))
        bars.add(text(browser, "#progress-text"))
        if refused is None and text(browser, "#state") == "running":  # a write while the loop runs: refused
            refused = side.post("/runs/approval/add", data={"prompt": "s:8812=", "answer": "1288",
                                                            "csrf": app.state.guard.csrf}, follow_redirects=False)
            assert side.get("/api/runs/approval/samples").status_code == 200
        time.sleep(0.3)
    stderr = proc.communicate(timeout=60)[1]
    assert proc.returncode == 3 and "awaits review" in stderr, stderr
    assert "running" in states and text(browser, "#state") == "waiting"  # redrawn without a reload
    assert any(b.startswith(("base", "generate", "train", "evaluate")) for b in bars), bars
    assert "in+use+by+process" in refused.headers["location"]
    browser.get(f"{url}/runs/approval/review")
    assert "cycle-0001" in shown(browser, "#candidate")
    browser.find_element("css selector", "#by").send_keys("carol")
    browser.find_element("css selector", "#why").send_keys("gains hold at d4")
    browser.find_element("css selector", "#approve").click()
    assert "recorded: approve cycle-0001" in shown(browser, "#message")
    rsi("resume", str(run))
    with Ledger(run / "ledger.sqlite", readonly=True) as led:
        (gate,) = led.gates()
        assert not [p for p in led.problems() if p.source == "human"]  # the refused write wrote nothing
    assert gate["promote"] and gate["reason"].endswith("approved in review by carol: gains hold at d4")
    con = sqlite3.connect(run / "ledger.sqlite")
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    browser.get(f"{url}/runs/approval")
    assert shown(browser, "#state", "finished") == "finished" and "promote" in shown(browser, "#gates", "promote")


def test_a_split_vote_labelled_in_the_browser_reaches_the_next_cycles_training_data(browser, console):
    root, url, _ = console
    run = root / "vote"
    rsi("run", "quick", "--run-dir", str(run), "--set", "label.labeler=vote", "--set", "label.vote_threshold=1.0",
        "--set", "generate.samples_per_problem=4", "--set", "generate.temperature=1.0", "--set", "loop.cycles=1",
        "--set", "base.steps=300", "--set", "train.steps=30")
    browser.get(f"{url}/runs/vote/label?token={TOKEN}")
    row = browser.find_element("css selector", "#queue tr[data-problem]")
    problem = row.get_attribute("data-problem")
    prompt = row.find_element("css selector", "code").text  # a sort problem: s:DIGITS=
    right = "".join(sorted(prompt[2:-1]))
    row.find_element("css selector", "input.answer").send_keys(right)
    row.find_element("css selector", "input.by").send_keys("ann")
    row.find_element("css selector", "input.why").send_keys("sorted by hand")
    row.find_element("css selector", "button").click()
    assert f"for {problem} by ann; it trains from cycle 2" in shown(browser, "#message")
    assert problem not in [r.get_attribute("data-problem")
                           for r in browser.find_elements("css selector", "#queue tr[data-problem]")]
    rsi("resume", str(run), "--set", "loop.cycles=2")
    with Ledger(run / "ledger.sqlite", readonly=True) as led:
        assert [(h["problem_id"], h["answer"], h["cycle"], h["person"]) for h in led.human_labels()] == [
            (problem, right, 2, "ann")]
        new = [e for c, e in led.accepted(2) if c == 2]  # cycle 2's new training data, as its train stage drew it
        trained = {c: r["train_sequences"] for r in led.costs() for c in [r["cycle"]] if r["stage"] == "train"}
    assert (prompt, right, "human") in {(e.prompt, e.answer, e.origin) for e in new} and trained[2] > 0
    out = root / "accepted.jsonl"
    rsi("export", str(run), "--out", str(out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["prompt"], r["completion"], r["cycle"]) for r in rows if r["source"] == "human"] == [(prompt, right, 2)]



def test_a_40_difficulty_ladder_fits_the_run_page_at_1400_px(browser, console):
    """The accuracy heat map of a long ladder (the default config's 40 difficulties) stays inside the page,
    every number whole and readable, at 1400 px."""
    from rsi.records import EvalResult, GateDecision

    root, url, _ = console
    with Ledger(root / "wide" / "ledger.sqlite") as led:
        led.set_run("wide", {"curriculum": {"threshold": 0.95}, "eval": {"min_difficulty": 1, "max_difficulty": 40}})
        for cycle in range(4):
            stages = ("base", "evaluate") if cycle == 0 else ("evaluate", "gate")
            for stage in stages:
                with led.stage(cycle, stage) as w:
                    if stage == "evaluate":
                        w.add_eval(cycle, f"cycle-{cycle:04d}", [
                            EvalResult(f"cycle-{cycle:04d}", d, 50, max(0, 50 - 5 * d + 10 * cycle), 0.0, 1.0,
                                       tuple(i < 50 - 5 * d + 10 * cycle for i in range(50))) for d in range(1, 41)])
                    if stage == "gate":
                        w.add_gate(cycle, f"cycle-{cycle - 1:04d}", f"cycle-{cycle:04d}",
                                   GateDecision(True, "gain", 0.2, 0.1, 0.0))
                    w.cost(wall_s=1.0, cpu_s=1.0)
    (root / "wide" / "champion").write_text("cycle-0003\n")
    browser.set_window_size(1400, 900)
    try:
        browser.get(f"{url}/runs/wide?token={TOKEN}")
        shown(browser, "#heat td[title]")
        width = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        cells = browser.execute_script("""return Array.from(document.querySelectorAll('#heat td[title]')).map(td =>
            [td.scrollWidth <= td.clientWidth, parseFloat(getComputedStyle(td).fontSize)])""")
    finally:
        browser.set_window_size(1280, 900)
    assert width[0] <= width[1]  # no horizontal scroll
    assert len(cells) == 4 * 40 and all(fits and size >= 10 for fits, size in cells)  # every number whole, readable
