"""The console's web application (FastAPI, Jinja2 templates, one script shipped with the package).

Pages render on the server; the run page and the runs list fetch their JSON (`/api/...`) every two
seconds and redraw, so they follow a run without reloading. Every write is a form POST that goes
through the function the CLI uses (`rsi.stages.review.record`, `rsi.run.human_labels.label`,
`rsi.run.human.add_problems`, `rsi.run.stopping.request_stop`), then redirects back with what
happened (or the error) in the page. Access rules: `rsi.console.guard`.
"""

from __future__ import annotations

import getpass
import tempfile
from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import UploadFile

from rsi.console import reads
from rsi.console.guard import COOKIE, Guard, Refused
from rsi.errors import RsiError
from rsi.ledger.browse import SampleFilter
from rsi.run.rundir import open_ledger

HERE = Path(__file__).parent
MAX_UPLOAD = 1 << 20  # bytes of JSONL a form may carry
PAGE = 50


def create_app(runs_dir: Path, host: str = "127.0.0.1", read_only: bool = False, token: str | None = None,
               allowed_hosts: list[str] | None = None) -> FastAPI:
    """The console for the runs under `runs_dir`, served on `host` (which decides whether reading
    needs the token: `rsi.console.guard`)."""
    guard = Guard(runs_dir, host, read_only, token)
    app = FastAPI(title="rsi console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.guard = guard
    pages = Jinja2Templates(directory=HERE / "templates")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    if allowed_hosts:  # against DNS rebinding: a loopback console answers only to its own names
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)

    def presented(request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return request.query_params.get("token") or request.cookies.get(COOKIE)

    @app.middleware("http")
    async def access(request: Request, call_next):
        path = request.url.path
        try:
            if not path.startswith("/static/"):
                guard.check_read(presented(request))
        except Refused as e:
            return _refusal(request, pages, e)
        token = request.query_params.get("token")
        if token and request.method == "GET" and guard.holds_token(token):  # keep it in a cookie, not the URL
            rest = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
            out = RedirectResponse(path + (f"?{rest}" if rest else ""), status_code=303)
            out.set_cookie(COOKIE, token, httponly=True, samesite="strict")
            return out
        return await call_next(request)

    def render(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        writer = guard.holds_token(presented(request)) and not guard.read_only
        return pages.TemplateResponse(request, template, {
            "csrf": guard.csrf if writer else "", "can_write": writer, "read_only": guard.read_only,
            "message": request.query_params.get("msg"), "error": request.query_params.get("err"), **context},
            status_code=status)

    def run_dir(name: str) -> Path:
        return guard.run_dir(name)

    async def form_for_write(request: Request, name: str) -> tuple[Path, dict]:
        size = int(request.headers.get("content-length") or 0)
        if size > MAX_UPLOAD + 65536:
            raise Refused(413, f"the form is {size:,} bytes; a console form takes at most {MAX_UPLOAD:,} "
                               "(add a larger file with `rsi add RUN FILE`)")
        async with request.form(max_files=1, max_fields=20, max_part_size=MAX_UPLOAD) as form:
            fields = {k: (await v.read(MAX_UPLOAD + 1), v.filename) if isinstance(v, UploadFile) else v
                      for k, v in form.multi_items()}
        guard.check_write(presented(request), fields.get("csrf"))
        return run_dir(name), fields

    def back(url: str, **said: str) -> RedirectResponse:
        return RedirectResponse(f"{url}?{urlencode(said)}" if said else url, status_code=303)

    @app.exception_handler(Refused)
    async def refused(request: Request, e: Refused):
        return _refusal(request, pages, e)

    # ------------------------------------------------------------------ reads

    @app.get("/", response_class=HTMLResponse)
    async def runs_page(request: Request):
        return render(request, "runs.html", runs=reads.runs(guard), runs_dir=str(guard.runs_dir))

    @app.get("/api/runs")
    async def runs_json():
        return reads.runs(guard)

    @app.get("/runs/{name}", response_class=HTMLResponse)
    async def run_page(request: Request, name: str):
        return render(request, "run.html", run=_read(lambda: reads.overview(run_dir(name))))

    @app.get("/api/runs/{name}")
    async def run_json(name: str):
        return _read(lambda: reads.overview(run_dir(name)))

    @app.get("/runs/{name}/samples", response_class=HTMLResponse)
    async def samples_page(request: Request, name: str):
        which, after, (rows, following) = _samples(run_dir(name), request)
        return render(request, "samples.html", run={"dir": name}, rows=rows, which=which, after=after,
                      next_after=following,
                      query={k: v for k, v in request.query_params.items() if k not in ("after", "msg", "err")})

    @app.get("/api/runs/{name}/samples")
    async def samples_json(request: Request, name: str):
        rows, following = _samples(run_dir(name), request)[2]
        return {"rows": rows, "next_after": following}

    @app.get("/runs/{name}/review", response_class=HTMLResponse)
    async def review_page(request: Request, name: str):
        from rsi.stages.review import ReviewError, summary

        where = run_dir(name)
        try:
            found, why = summary(where), None
        except ReviewError as e:
            found, why = None, str(e).replace(str(where), name)
        except RsiError as e:
            raise Refused(409, str(e)) from None
        return render(request, "review.html", run={"dir": name}, review=found, nothing=why)

    @app.get("/runs/{name}/label", response_class=HTMLResponse)
    async def label_page(request: Request, name: str, cycle: int | None = None, offset: int = 0):
        from rsi.run.human_labels import labelled_cycles

        with _read(lambda: open_ledger(run_dir(name))) as ledger:
            cycles = labelled_cycles(ledger)
            shown = cycle if cycle in cycles else (cycles[-1] if cycles else None)
            rows = ledger.label_queue(shown, PAGE, max(0, offset)) if shown is not None else []
            labeler = (ledger.run_info() or {}).get("config", {}).get("label", {}).get("labeler")
            people = ledger.human_labels()[-20:]
        return render(request, "label.html", run={"dir": name}, cycles=cycles, cycle=shown, rows=rows,
                      labeler=labeler, offset=offset, page=PAGE, people=people)

    @app.get("/runs/{name}/add", response_class=HTMLResponse)
    async def add_page(request: Request, name: str):
        run_dir(name)
        return render(request, "add.html", run={"dir": name}, max_upload=MAX_UPLOAD)

    # ------------------------------------------------------------------ writes

    @app.post("/runs/{name}/review")
    async def review_write(request: Request, name: str):
        from rsi.stages.review import record

        where, f = await form_for_write(request, name)
        decision = f.get("decision")
        if decision not in ("approve", "reject"):
            return back(f"/runs/{name}/review", err="choose approve or reject")
        try:
            done = record(where, decision == "approve", f.get("why", ""), f.get("by") or None)
        except RsiError as e:
            return back(f"/runs/{name}/review", err=str(e))
        return back(f"/runs/{name}/review", msg=f"recorded: {done['ruling']} {done['candidate']} (cycle "
                    f"{done['cycle']}) by {done['by']}: {done['why']}. `rsi resume` acts on it.")

    @app.post("/runs/{name}/label")
    async def label_write(request: Request, name: str):
        from rsi.run.human_labels import label

        where, f = await form_for_write(request, name)
        to = f"/runs/{name}/label" if f.get("from") != "samples" else f"/runs/{name}/samples"
        try:
            done = label(where, f.get("problem_id", ""), f.get("answer", ""), f.get("correct", "1") == "1",
                         f.get("why", ""), f.get("by") or None)
        except RsiError as e:
            return back(to, err=str(e).replace(str(where), name))
        what = "the right answer" if done["correct"] else "a wrong kept label"
        return back(to, msg=f"recorded {done['answer']!r} as {what} for {done['problem_id']} by {done['by']}; "
                            f"it trains from cycle {done['cycle']}")

    @app.post("/runs/{name}/add")
    async def add_write(request: Request, name: str):
        where, f = await form_for_write(request, name)
        upload = f.get("file")
        if isinstance(upload, tuple) and upload[0]:
            data, filename = upload
            if len(data) > MAX_UPLOAD:
                return back(f"/runs/{name}/add", err=f"the file is over {MAX_UPLOAD:,} bytes; add it with "
                                                     "`rsi add RUN FILE`")
            label = Path(filename or "upload.jsonl").name
        else:
            import json

            try:
                row = {"prompt": f.get("prompt", ""), "answer": f.get("answer", "")}
                if str(f.get("difficulty", "")).strip():
                    row["difficulty"] = int(f["difficulty"])
            except ValueError:
                return back(f"/runs/{name}/add", err=f"difficulty must be a whole number (got {f['difficulty']!r})")
            data, label = (json.dumps(row) + "\n").encode(), "form"
        return _add(where, name, data, label, back)

    @app.post("/runs/{name}/stop")
    async def stop_write(request: Request, name: str):
        from rsi.run.stopping import request_stop

        where, f = await form_for_write(request, name)
        request_stop(where, f.get("by") or getpass.getuser())
        return back(f"/runs/{name}", msg="asked the run to stop before its next stage (the STOP file)")

    return app


def _add(where: Path, name: str, data: bytes, label: str, back) -> Response:
    """`rsi add`'s own path for a form's or an upload's rows, the file named as the person named it."""
    from rsi.run.human import add_problems

    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return back(f"/runs/{name}/add", err=f"{label} is not a UTF-8 text file: problems are JSONL, "
                                             '{"prompt": ..., "answer": ..., "difficulty": ...} a line')
    with tempfile.TemporaryDirectory(prefix="rsi-console-") as tmp:
        path = Path(tmp) / "rows.jsonl"
        path.write_bytes(data)
        try:
            cycle, made, known = add_problems(where, path)
        except RsiError as e:
            return back(f"/runs/{name}/add", err=str(e).replace(str(path), label).replace(str(where), name))
    skipped = f" ({known} the run already had were skipped)" if known else ""
    return back(f"/runs/{name}/add", msg=f"added {len(made)} human problems to cycle {cycle}{skipped}")


def _read(fn):
    """A read whose run cannot be read (a newer schema, a damaged ledger) answers 409 with the reason."""
    try:
        return fn()
    except Refused:
        raise
    except RsiError as e:
        raise Refused(409, str(e)) from None


def _samples(where: Path, request: Request) -> tuple[SampleFilter, int, tuple[list[dict], int | None]]:
    q = request.query_params

    def number(key: str) -> int | None:
        value = q.get(key, "").strip()
        if not value:
            return None
        try:
            return int(value)
        except ValueError:
            raise Refused(400, f"filter {key!r} takes a whole number (got {value!r})") from None

    kept = {"": None, "kept": True, "dropped": False}.get(q.get("kept", ""), None)
    which = SampleFilter(cycle=number("cycle"), difficulty=number("difficulty"), source=q.get("source") or None,
                         kept=kept, reason=q.get("reason") or None)
    after = number("after") or 0
    with _read(lambda: open_ledger(where)) as ledger:
        return which, after, _read(lambda: ledger.sample_page(which, after, PAGE))


def _refusal(request: Request, pages: Jinja2Templates, e: Refused) -> Response:
    if request.url.path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"error": str(e)}, status_code=e.status)
    return pages.TemplateResponse(request, "refused.html", {"error": str(e), "status": e.status, "can_write": False,
                                                            "read_only": True, "message": None},
                                  status_code=e.status)
