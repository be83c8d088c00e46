"""The report as a person sees it: rendered by headless Chromium (Debian's `chromium` and
`chromium-driver`, which setup.sh installs where it can), its plots loaded, its heat maps' numbers
readable, no horizontal overflow at 1280 px, and the link to the tracked run."""

from __future__ import annotations

import pytest

from rsi.ledger import Ledger
from rsi.records import EvalResult, GateDecision
from rsi.views.report import write_report

LADDER = range(1, 41)  # the default config's ladder: 40 difficulties


def _evals(model: str, frontier: int) -> list[EvalResult]:
    """Accuracy 1 up to `frontier`, then falling by 0.13 a difficulty."""
    out = []
    for d in LADDER:
        correct = 50 if d <= frontier else max(0, 50 - 7 * (d - frontier))
        out.append(EvalResult(model, d, 50, correct, 0.0, 1.0, tuple(i < correct for i in range(50))))
    return out


@pytest.fixture
def report(tmp_path):
    """The report of a hand-built run over a 40-difficulty ladder, tracked in MLflow and TensorBoard."""
    run = tmp_path / "run"
    with Ledger(run / "ledger.sqlite") as led:
        led.set_run("wide", {"curriculum": {"threshold": 0.95}, "seed_data": {"max_difficulty": 3},
                             "eval": {"min_difficulty": 1, "max_difficulty": 40}})
        with led.stage(0, "base") as w:
            w.add_eval(0, "cycle-0000", _evals("cycle-0000", 4))
            w.cost(wall_s=100.0, cpu_s=180.0, train_sequences=50, train_tokens=1000)
        for cycle in range(1, 6):
            with led.stage(cycle, "evaluate") as w:
                w.add_eval(cycle, f"cycle-{cycle:04d}", _evals(f"cycle-{cycle:04d}", 4 + 6 * cycle))
                w.cost(wall_s=10.0, cpu_s=15.0)
            with led.stage(cycle, "gate") as w:
                w.add_gate(cycle, f"cycle-{cycle - 1:04d}", f"cycle-{cycle:04d}",
                           GateDecision(True, "gain +40.0% above the frontier on 350 problems", 0.4, 0.3, 0.0))
                w.cost(wall_s=1.0, cpu_s=1.0)
        led.add_event(0, "tracking", {"mlflow": {"ident": "abc", "link": f"{(run / 'mlruns').as_uri()} (run abc)"},
                                      "tensorboard": {"ident": "tb", "link": str(run / "tensorboard")}})
    (run / "champion").write_text("cycle-0005\n")
    return write_report(run)


def test_the_report_renders_in_chromium_with_readable_heat_maps_and_no_overflow(browser, report):
    browser.get(report.as_uri())
    images = browser.execute_script("return Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
    assert len(images) >= 2 and all(done and width > 0 for done, width in images)  # every plot loaded
    width = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1] == 1280  # no horizontal overflow at 1280 px
    cells = browser.execute_script("""return Array.from(document.querySelectorAll('table.heat td[title]')).map(td =>
        [td.textContent, td.title, td.scrollWidth <= td.clientWidth, parseFloat(getComputedStyle(td).fontSize)])""")
    assert len(cells) == 2 * 6 * 40 - 40  # champion per cycle (6 rows) and candidate per gate (5), 40 difficulties
    assert all(fits and size >= 10 for _, _, fits, size in cells)  # every number shows whole, at a readable size
    text, title, *_ = cells[40 + 20]  # cycle 1's champion at difficulty 21: 50 - 7 * 11 correct, floored at 0
    assert text == "0" and "cycle 1: champion cycle-0001, difficulty 21: 0.0%" in title
    text, title, *_ = cells[5 * 40 + 35]  # cycle 5 at difficulty 36: 36 correct of 50
    assert text == "72" and "difficulty 36: 72.0%" in title
    links = browser.execute_script("return Array.from(document.querySelectorAll('a')).map(a => a.href)")
    assert any(href.startswith("file:") and href.endswith("/mlruns") for href in links)
