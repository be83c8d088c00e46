"""The web console (`rsi serve`) through FastAPI's test client: every page and its JSON, every write
recorded through the CLI's own functions, and the refusals (no token, a wrong one, no CSRF value,
read-only, paths outside the runs directory, oversized and malformed uploads, a newer ledger)."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from rsi.cli import app as cli
from rsi.config import load_config
from rsi.console import create_app
from rsi.ledger import Ledger
from rsi.records import EvalResult, GateDecision, Label, Problem, Reading, Sample
from rsi.run.human_labels import label
from rsi.run.runlock import hold
from rsi.stages.review import AwaitingReview
from rsi.tasks import get_task

TOKEN = "test-token-123"
SORT = get_task("sort")


def _evals(model: str, frontier: int) -> list[EvalResult]:
    return [EvalResult(model, d, 20, 20 if d <= frontier else 5, 0.0, 1.0, tuple(i < (20 if d <= frontier else 5)
                                                                              for i in range(20))) for d in range(1, 8)]


def make_run(path: Path, labeler: str = "vote", waiting: bool = False, problems: int = 40) -> Path:
    """A hand-built two-cycle run of `sort` at difficulty 4: `problems` problems of 3 samples each, whose
    votes split on every fourth; with `waiting`, stopped for review of cycle 2's candidate."""
    cfg = load_config("quick", [f"label.labeler={labeler}", "label.vote_threshold=1.0", "loop.cycles=2"])
    with Ledger(path / "ledger.sqlite") as led:
        led.set_run("quick", cfg.model_dump(mode="json"))
        with led.stage(0, "base") as w:
            w.add_eval(0, "cycle-0000", _evals("cycle-0000", 3))
            w.cost(wall_s=10.0, cpu_s=20.0)
        for cycle in (1, 2):
            made = [Problem("sort", 4, "train", 1000 * cycle + i, f"s:{1000 + 7 * i + cycle:04d}=",
                            "".join(sorted(f"{1000 + 7 * i + cycle:04d}"))) for i in range(problems)]
            with led.stage(cycle, "propose") as w:
                w.add_problems(cycle, made)
            with led.stage(cycle, "generate") as w:
                w.add_samples(cycle, "cycle-0000", [Sample(p.id, k, p.answer if (i % 4 or k == 0) else "9" * k, 4,
                                                          "cycle-0000") for i, p in enumerate(made) for k in range(3)])
                w.cost(generated_tokens=12 * problems)
            with led.stage(cycle, "label") as w:
                w.add_labels(cycle, [Label(p.id, k, p.answer if (i % 4 or k == 0) else "9" * k, bool(i % 4),
                                           "majority 3/3" if i % 4 else "no majority: top answer has 1/3 < 100%",
                                           1.0 if i % 4 else 1 / 3, bool(i % 4) or k == 0)
                                     for i, p in enumerate(made) for k in range(3)])
                w.add_metrics(cycle, "label", {"samples": 3 * problems, "kept": 3 * (problems - problems // 4)})
            with led.stage(cycle, "train") as w:
                w.cost(train_sequences=100, cpu_s=30.0)
            with led.stage(cycle, "evaluate") as w:
                w.add_eval(cycle, f"cycle-{cycle:04d}", _evals(f"cycle-{cycle:04d}", 3 + cycle))
            if cycle == 2 and waiting:
                stop = AwaitingReview(path, 2, "cycle-0002", "cycle-0001", GateDecision(True, "gain +75%", .75, .5, 0),
                                      [Reading("reward_hacking", {}, False, "no drift")])
                led.add_event(2, "stop", {"before": "gate", "reason": stop.reason,
                                          "stages_done": len(led.completed_stages()), **stop.detail})
                continue
            with led.stage(cycle, "gate") as w:
                w.add_gate(cycle, f"cycle-{cycle - 1:04d}", f"cycle-{cycle:04d}",
                           GateDecision(True, "gain +50% above the frontier", 0.5, 0.3, 0.0))
    (path / "champion").write_text("cycle-0001\n" if waiting else "cycle-0002\n")
    return path


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    make_run(root / "done")
    make_run(root / "waiting", waiting=True)
    return root


def client(root: Path, host: str = "127.0.0.1", **kw) -> TestClient:
    return TestClient(create_app(root, host, token=TOKEN, **kw), follow_redirects=False)


def writer(root: Path, **kw) -> TestClient:
    c = client(root, **kw)
    c.cookies.set("rsi_console", TOKEN)
    return c


def csrf(c: TestClient) -> str:
    return c.app.state.guard.csrf


def test_the_runs_list_shows_each_runs_state_and_an_unreadable_one_says_why(runs):
    newer = make_run(runs / "newer", problems=4)
    con = sqlite3.connect(newer / "ledger.sqlite")
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    (runs / "not-a-run").mkdir()
    rows = {r["dir"]: r for r in client(runs).get("/api/runs").json()}
    assert set(rows) == {"done", "waiting", "newer"}
    assert (rows["done"]["state"], rows["done"]["frontier"], rows["done"]["champion"]) == ("finished", 5, "cycle-0002")
    assert rows["waiting"]["state"] == "waiting" and rows["waiting"]["cycles_completed"] == 1
    assert rows["newer"]["state"] == "unreadable" and "newer than version" in rows["newer"]["error"]
    page = client(runs).get("/")
    assert page.status_code == 200 and 'href="/runs/done"' in page.text and "newer than version" in page.text
    before = (newer / "ledger.sqlite").read_bytes()
    assert client(runs).get("/api/runs/newer").status_code == 409
    assert (newer / "ledger.sqlite").read_bytes() == before  # nothing recorded is touched


def test_the_run_page_has_frontier_against_compute_accuracy_gates_and_live_progress(runs):
    c = client(runs)
    run = c.get("/api/runs/done").json()
    assert [p["frontier"] for p in run["frontier_by_cycle"]] == [3, 4, 5]
    assert [p["cpu_h"] for p in run["frontier_by_cycle"]] == sorted(p["cpu_h"] for p in run["frontier_by_cycle"])
    assert run["accuracy"]["2"]["5"] == 1.0 and run["accuracy"]["2"]["6"] == 0.25
    assert [g["promote"] for g in run["gates"]] == [True, True] and run["state"] == "finished"
    assert 'data-live="/api/runs/done"' in c.get("/runs/done").text
    with hold(runs / "done", "rsi resume"):  # a process working on the run, with its progress file
        (runs / "done" / "progress.json").write_text(json.dumps({
            "cycle": 3, "stage": "train", "bar": {"what": "train", "done": 40, "total": 150}, "updated": 4e9}))
        live = c.get("/api/runs/done").json()
        assert live["state"] == "running" and live["progress"]["bar"]["done"] == 40 and live["worker"]["pid"]
    assert c.get("/api/runs/done").json()["state"] == "finished"


def test_samples_page_filters_and_pages_by_keyset(runs):
    c = client(runs)
    seen, after = [], 0
    while after is not None:
        page = c.get(f"/api/runs/done/samples?after={after}").json()
        seen += page["rows"]
        after = page["next_after"]
    assert len(seen) == 240 and len({(r["cycle"], r["problem_id"], r["sample_index"]) for r in seen}) == 240
    assert [r["rid"] for r in seen] == sorted(r["rid"] for r in seen)
    dropped = c.get("/api/runs/done/samples?cycle=2&kept=dropped").json()["rows"]
    assert len(dropped) == 30 and all(r["cycle"] == 2 and r["kept"] is False for r in dropped)
    split = c.get("/api/runs/done/samples?reason=no majority&cycle=1").json()["rows"]
    assert len(split) == 30 and all(r["reason"].startswith("no majority") for r in split)
    assert c.get("/api/runs/done/samples?difficulty=5").json() == {"rows": [], "next_after": None}
    assert c.get("/api/runs/done/samples?reason=50%25").json()["rows"] == []  # LIKE's wildcards taken literally
    html = c.get("/runs/done/samples?kept=kept", headers={"accept": "text/html"})
    assert html.status_code == 200 and 'id="next"' in html.text and "majority 3/3" in html.text
    assert c.get("/api/runs/done/samples?cycle=one").status_code == 400


def test_review_records_exactly_what_rsi_review_records_and_refuses_without_token_or_csrf(runs, tmp_path):
    import shutil

    by_cli = shutil.copytree(runs / "waiting", tmp_path / "by-cli")  # the same run, reviewed with the CLI
    out = CliRunner().invoke(cli, ["review", str(by_cli), "--approve", "--by", "carol", "--why", "gains hold"])
    assert out.exit_code == 0, out.output
    with Ledger(by_cli / "ledger.sqlite", readonly=True) as led:
        (cli_event,) = led.events("review")
    page = writer(runs).get("/runs/waiting/review")
    assert "cycle-0002" in page.text and 'id="approve"' in page.text
    form = {"decision": "approve", "by": "carol", "why": "gains hold", "csrf": csrf(writer(runs))}
    assert client(runs).post("/runs/waiting/review", data=form).status_code == 401  # no token
    wrong = client(runs)
    wrong.cookies.set("rsi_console", "nope")
    assert wrong.post("/runs/waiting/review", data=form).status_code == 401
    assert writer(runs).post("/runs/waiting/review", data=form | {"csrf": "forged"}).status_code == 403
    assert writer(runs, read_only=True).post("/runs/waiting/review", data=form).status_code == 403
    with Ledger(runs / "waiting" / "ledger.sqlite", readonly=True) as led:
        assert led.events("review") == []
    done = writer(runs).post("/runs/waiting/review", data=form)
    assert done.status_code == 303 and "recorded" in done.headers["location"]
    with Ledger(runs / "waiting" / "ledger.sqlite", readonly=True) as led:
        (event,) = led.events("review")
    assert (event["cycle"], event["detail"]) == (cli_event["cycle"], cli_event["detail"])  # the CLI's own record
    assert event["detail"]["ruling"] == "approve" and event["detail"]["by"] == "carol"
    assert 'id="nothing"' in writer(runs).get("/runs/done/review").text


def test_a_label_from_the_queue_trains_from_the_next_cycle_and_a_kept_one_can_be_marked_wrong(runs):
    c = writer(runs)
    queue = c.get("/runs/done/label")
    assert queue.text.count("data-problem=") == 10  # every fourth of cycle 2's 40 split
    with Ledger(runs / "done" / "ledger.sqlite", readonly=True) as led:
        (first,) = [q for q in led.label_queue(2, limit=1)]
        kept = next(e for c_, e in led.accepted(2) if c_ == 2)
    assert [v["n"] for v in first["votes"]] == [1, 1, 1]
    problem = next(p for p in Ledger(runs / "done" / "ledger.sqlite", readonly=True).problems(2)
                   if p.id == first["problem_id"])
    out = c.post("/runs/done/label", data={"problem_id": problem.id, "answer": problem.answer, "correct": "1",
                                           "by": "ann", "why": "sorted by hand", "csrf": csrf(c)})
    assert out.status_code == 303 and "trains+from+cycle+3" in out.headers["location"]
    kept_problem = next(p for p in Ledger(runs / "done" / "ledger.sqlite", readonly=True).problems(2)
                        if p.prompt == kept.prompt)
    c.post("/runs/done/label", data={"problem_id": kept_problem.id, "answer": kept.answer, "correct": "0",
                                     "by": "bob", "from": "samples", "csrf": csrf(c)})
    with Ledger(runs / "done" / "ledger.sqlite", readonly=True) as led:
        assert [(h["person"], h["correct"], h["cycle"]) for h in led.human_labels()] == [("ann", True, 3),
                                                                                        ("bob", False, 3)]
        now, then = led.accepted(2), led.accepted(3)
        assert len(now) == len(then)  # one in, one out, from cycle 3 on
        added = [(cy, e) for cy, e in then if e.origin == "human"]
        assert [(cy, e.prompt, e.answer) for cy, e in added] == [(3, problem.prompt, problem.answer)]
        assert (kept.prompt, kept.answer) not in {(e.prompt, e.answer) for _, e in then}
        assert led.label_queue(2, limit=100) and problem.id not in {q["problem_id"] for q in led.label_queue(2)}
    refused = c.post("/runs/done/label", data={"problem_id": "sort/heldout/4/1", "answer": "1", "csrf": csrf(c)})
    assert "err=" in refused.headers["location"] and "no+problem" in refused.headers["location"]
    bad = c.post("/runs/done/label", data={"problem_id": problem.id, "answer": "x!", "csrf": csrf(c)})
    assert "alphabet" in bad.headers["location"].replace("+", " ")


def test_people_agreeing_or_not_with_kept_labels_reach_the_label_audit(runs):
    from rsi.config import MonitorsConfig
    from rsi.monitors.checks import label_audit
    from rsi.run.human_labels import people_on_kept

    with Ledger(runs / "done" / "ledger.sqlite", readonly=True) as led:
        kept = [e for c_, e in led.accepted(2) if c_ == 1][:3]
        ids = {p.prompt: p.id for p in led.problems(1)}
    label(runs / "done", ids[kept[0].prompt], kept[0].answer, False, "wrong", "bob")
    label(runs / "done", ids[kept[1].prompt], kept[1].answer, True, "right", "bob")
    with Ledger(runs / "done" / "ledger.sqlite", readonly=True) as led:
        people = people_on_kept(led, 3)
    assert people == {"judged": 2, "wrong": 1}
    unaudited = [Label("p", 0, "1", True, "majority", 1.0, None)]
    reading = label_audit(unaudited, "vote", MonitorsConfig(label_floor=0.7), people)
    assert reading.alert and reading.value["accuracy"] == 0.5 and "people found 1 of 2" in reading.message


def test_add_takes_a_form_row_or_a_jsonl_upload_and_refuses_bad_ones_untouched(runs):
    c = writer(runs)

    def human() -> int:
        with Ledger(runs / "done" / "ledger.sqlite", readonly=True) as led:
            return sum(p.source == "human" for p in led.problems())

    out = c.post("/runs/done/add", data={"prompt": "s:8812=", "answer": "1288", "difficulty": "4", "csrf": csrf(c)})
    assert "added+1+human" in out.headers["location"] and human() == 1
    rows = "".join(json.dumps({"prompt": f"s:{n}=", "answer": "".join(sorted(str(n)))}) + "\n" for n in (5561, 90127))
    out = c.post("/runs/done/add", data={"csrf": csrf(c)}, files={"file": ("mine.jsonl", rows.encode())})
    assert "added+2+human" in out.headers["location"] and human() == 3
    bad = rows + '{"prompt": "s:12=", "answer": "99"}\n'
    out = c.post("/runs/done/add", data={"csrf": csrf(c)}, files={"file": ("mine.jsonl", bad.encode())})
    assert "mine.jsonl%3A3" in out.headers["location"] and human() == 3
    out = c.post("/runs/done/add", data={"csrf": csrf(c)}, files={"file": ("x.jsonl", b"\xff\xfe\x00binary")})
    assert "not+a+UTF-8" in out.headers["location"] and human() == 3
    out = c.post("/runs/done/add", data={"csrf": csrf(c)}, files={"file": ("big.jsonl", b"{}\n" * (1 << 19))})
    assert out.status_code in (400, 413) and human() == 3
    out = c.post("/runs/done/add", data={"prompt": "s:1=", "answer": "1", "difficulty": "four", "csrf": csrf(c)})
    assert "whole+number" in out.headers["location"] and human() == 3


def test_stop_writes_the_stop_file_and_a_write_while_the_run_runs_is_refused_untouched(runs):
    c = writer(runs)
    assert c.post("/runs/done/stop", data={"csrf": csrf(c)}).status_code == 303
    assert (runs / "done" / "STOP").is_file()
    with hold(runs / "done", "rsi run"):
        out = c.post("/runs/done/add", data={"prompt": "s:8812=", "answer": "1288", "csrf": csrf(c)})
        assert "in+use+by+process" in out.headers["location"]
    with Ledger(runs / "done" / "ledger.sqlite", readonly=True) as led:
        assert not [p for p in led.problems() if p.source == "human"]


@pytest.mark.parametrize("path", ["/runs/%2e%2e", "/runs/..%2F..%2Fetc", "/runs/%2Fetc",
                                  "/api/runs/.hidden", "/runs/outside", "/runs/linked-ledger/samples"])
def test_no_path_outside_the_runs_directory_is_read(runs, tmp_path, path):
    outside = make_run(tmp_path / "elsewhere", problems=4)
    os.symlink(outside, runs / "outside")
    (runs / "linked-ledger").mkdir()
    os.symlink(outside / "ledger.sqlite", runs / "linked-ledger" / "ledger.sqlite")
    c = writer(runs)
    assert c.get(path).status_code == 404
    assert c.post(path + "/stop", data={"csrf": csrf(c)}).status_code in (404, 405)
    assert not (outside / "STOP").exists()
    assert {r["dir"] for r in c.get("/api/runs").json()} == {"done", "waiting"}


def test_off_loopback_every_request_needs_the_token_which_a_browser_keeps_in_a_cookie(runs):
    c = client(runs, host="0.0.0.0")
    assert c.get("/api/runs").status_code == 401
    assert c.get("/", headers={"accept": "text/html"}).status_code == 401
    assert c.get("/api/runs", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert c.get("/api/runs", headers={"authorization": "Bearer wrong"}).status_code == 401
    first = c.get(f"/runs/done?token={TOKEN}")
    assert first.status_code == 303 and first.headers["location"] == "/runs/done"  # the token out of the URL
    cookie = first.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert c.get("/runs/done").status_code == 200  # the cookie now
    loopback = client(runs, allowed_hosts=["127.0.0.1", "localhost"])
    assert loopback.get("/api/runs", headers={"host": "evil.example"}).status_code == 400  # DNS rebinding
    assert loopback.get("/api/runs", headers={"host": "localhost:8765"}).status_code == 200


def test_rsi_serve_refuses_a_missing_directory_and_a_port_in_use(tmp_path):
    out = CliRunner().invoke(cli, ["serve", str(tmp_path / "nowhere")])
    assert out.exit_code == 2 and "does not exist" in out.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        out = CliRunner().invoke(cli, ["serve", str(tmp_path), "--port", str(taken.getsockname()[1])])
    assert out.exit_code == 2 and "cannot listen" in out.output and "--port" in out.output


def test_rsi_label_lists_the_queue_and_records_as_the_console_does_and_rsi_stop_writes_stop(runs):
    shown = CliRunner().invoke(cli, ["label", str(runs / "done"), "--json"])
    queue = json.loads(shown.output)
    assert shown.exit_code == 0 and queue["cycle"] == 2 and len(queue["queue"]) == 10
    first = queue["queue"][0]
    both = CliRunner().invoke(cli, ["label", str(runs / "done"), first["problem_id"], "--answer", "1", "--wrong", "2"])
    assert both.exit_code == 2 and "one" in both.output
    answer = "".join(sorted(first["prompt"][2:-1]))
    out = CliRunner().invoke(cli, ["label", str(runs / "done"), first["problem_id"], "--answer", answer, "--by", "dan",
                                   "--why", "by hand"])
    assert out.exit_code == 0 and "trains from cycle 3" in " ".join(out.output.split())
    again = json.loads(CliRunner().invoke(cli, ["label", str(runs / "done"), "--json"]).output)
    assert first["problem_id"] not in {q["problem_id"] for q in again["queue"]} and len(again["queue"]) == 9
    with Ledger(runs / "done" / "ledger.sqlite", readonly=True) as led:
        assert [(h["answer"], h["person"], h["why"]) for h in led.human_labels()] == [(answer, "dan", "by hand")]
    assert CliRunner().invoke(cli, ["stop", str(runs / "done"), "--by", "eve"]).exit_code == 0
    assert "asked by eve" in (runs / "done" / "STOP").read_text()


def test_forms_show_only_to_a_token_holder_and_the_pages_script_ships_with_rsi(runs):
    reader, w = client(runs), writer(runs)
    assert 'id="add-form"' not in reader.get("/runs/done/add").text
    page = w.get("/runs/done/add").text
    assert 'id="add-form"' in page and f'value="{csrf(w)}"' in page and 'id="upload-form"' in page
    assert 'id="stop"' in w.get("/runs/done").text and 'id="stop"' not in reader.get("/runs/done").text
    assert 'id="add-form"' not in writer(runs, read_only=True).get("/runs/done/add").text
    script = reader.get("/static/console.js")
    assert script.status_code == 200 and "function drawRun" in script.text
    for url in ("/", "/runs/done", "/runs/done/samples", "/runs/waiting/review", "/runs/done/label", "/runs/done/add"):
        html = w.get(url).text  # every script and style sheet a page loads comes from the console itself
        assert re.findall(r'<script[^>]* src="([^"]+)"', html) == ["/static/console.js"], url
        assert re.findall(r'<link[^>]* href="([^"]+)"', html) == ["/static/console.css"], url
