"""The pages' files as the API serves them (the student page's and the teacher's register's):
their own CSP, and the API's other paths unchanged. Their behaviour in a browser is in
tests/web/."""

from __future__ import annotations

import dataclasses
import re
import shutil

import pytest

from graph.edge.page import CONTENT_SECURITY_POLICY, WEB_DIR
from rollcall.cli import _schema_problems
from scripts import page_manifest
from services import trusted_documents
from services.platform.persisted_queries import document_hash
from services.platform.settings import TrustMode
from tests.factories import api_process, error_codes

SCRIPTS = sorted(WEB_DIR.rglob("*.js"))
PAGES = [WEB_DIR / "index.html", WEB_DIR / "teacher.html"]
# A URL with a host: "//host", "http://host", "https://host", "ws(s)://host".
ANOTHER_HOST = re.compile(r"""(https?:|wss?:)?//[\w.-]""")


async def test_the_page_is_served_at_the_root_with_a_self_only_policy(client):
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/web/js/main.js">' in response.text
    policy = response.headers["content-security-policy"]
    assert policy == CONTENT_SECURITY_POLICY
    directives = dict(item.split(" ", 1) for item in policy.split("; "))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_the_register_is_served_at_teacher_with_the_same_policy(client):
    response = await client.get("/teacher")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/web/js/teacher.js">' in response.text
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    # no inline script or style (the policy would block them), and no other host named
    assert "<style" not in response.text and " style=" not in response.text
    assert re.findall(r"<script[^>]*>", response.text) == [
        '<script type="module" src="/web/js/teacher.js">'
    ]
    assert not ANOTHER_HOST.search(response.text)
    assert (await client.head("/teacher")).status_code == 200


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/web/js/main.js", "text/javascript"),
        ("/web/js/teacher.js", "text/javascript"),
        ("/web/app.css", "text/css"),
        ("/web/icon.svg", "image/svg+xml"),
        ("/sw.js", "text/javascript"),
        ("/", "text/html"),
        ("/teacher", "text/html"),
    ],
)
async def test_its_files_carry_the_policy_too(client, path, media_type):
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["cache-control"] == "no-cache"
    again = await client.get(path, headers={"if-none-match": response.headers["etag"]})
    assert again.status_code == 304


@pytest.mark.parametrize(
    "path", ["/", "/teacher", "/web/js/main.js", "/web/js/teacher.js", "/web/app.css", "/sw.js"]
)
async def test_its_text_is_gzipped_for_clients_that_accept_it(client, path):
    plain = await client.get(path, headers={"accept-encoding": "identity"})
    packed = await client.get(path, headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.content == plain.content  # httpx unpacks it
    assert int(packed.headers["content-length"]) < len(plain.content) / 2
    assert packed.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


async def test_nothing_outside_the_folder_is_served(client):
    assert (await client.get("/web/nope.js")).status_code == 404
    assert (await client.get("/web/../page.py")).status_code == 404
    assert (await client.get("/web/%2e%2e/page.py")).status_code == 404


async def test_the_api_paths_are_unchanged(client):
    graphiql = await client.get("/graphql", headers={"accept": "text/html"})
    assert graphiql.status_code == 200 and "graphiql" in graphiql.text.lower()
    # GraphiQL loads its code from a CDN: the page's policy must not reach it.
    assert "content-security-policy" not in graphiql.headers
    assert (await client.get("/health")).json()["status"] == "ok"
    answer = await client.post("/graphql", json={"query": "{ __typename }"})
    assert answer.json() == {"data": {"__typename": "Query"}}
    assert "content-security-policy" not in answer.headers


def test_the_service_worker_keeps_every_file_of_the_pages():
    worker = (WEB_DIR / "sw.js").read_text()
    listed = set(re.findall(r'^  "(/[^"]*)",$', worker, flags=re.MULTILINE))
    files = {
        "/web/" + path.relative_to(WEB_DIR).as_posix()
        for path in WEB_DIR.rglob("*")
        if path.is_file() and path.name not in {"index.html", "teacher.html", "sw.js"}
    }
    assert listed == files | {"/", "/teacher"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_no_script_parses_html_or_evaluates_strings(script):
    """Server data reaches the DOM as text only (graph/web/js/dom.js), never as markup."""
    source = script.read_text()
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
    ):
        assert sink not in source, f"{script.name} uses {sink}"


def test_nothing_is_loaded_from_elsewhere():
    for path in [*SCRIPTS, *PAGES, WEB_DIR / "app.css"]:
        text = path.read_text()
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), path.name
        assert not re.search(r"""(import|from)\s*\(?["'](https?:)?//""", text), path.name
        assert "@import" not in text, path.name


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js reads the page's queries.js")
async def test_the_manifest_lets_the_page_run_where_documents_must_be_trusted(
    settings, factory, session_factory
):
    # given the manifest as committed, equal to what the page's queries.js exports
    documents = page_manifest.page_documents(shutil.which("node"))
    assert page_manifest.MANIFEST.read_text() == page_manifest.manifest(documents)
    # when an operator registers it and enforces trusted documents for the page's client
    registrations = trusted_documents.read_manifest(
        page_manifest.MANIFEST.read_text(), source="manifest", name="rollcall-web"
    )
    assert len(registrations) == len(documents)
    await trusted_documents.register(
        session_factory=session_factory, registrations=registrations, validate=_schema_problems
    )
    enforced = dataclasses.replace(
        settings, trusted_documents_clients={"rollcall-web": TrustMode.ENFORCE}
    )
    school = await factory.school(students=1)
    headers = {
        "authorization": f"Bearer {school.student_token(school.students[0])}",
        "apollographql-client-name": "rollcall-web",
    }
    page = next(body for body in documents if body.startswith("query StudentPage"))
    try:
        async with api_process(enforced) as http:
            # then the page's documents run by hash, and anything else is refused
            extensions = {"persistedQuery": {"version": 1, "sha256Hash": document_hash(page)}}
            variables = {"weekStart": "2026-11-23", "weeks": 4}
            ran = await http.post(
                "/graphql", json={"extensions": extensions, "variables": variables}, headers=headers
            )
            assert "errors" not in ran.json(), ran.json()
            assert ran.json()["data"]["studentDashboard"]["totalClasses"] == 0
            other = await http.post("/graphql", json={"query": "{ me { id } }"}, headers=headers)
            assert error_codes(other.json()) == ["PERSISTED_QUERY_NOT_IN_LIST"]
    finally:
        await trusted_documents.remove(
            session_factory=session_factory, digests=[r.sha256 for r in registrations]
        )
