"""GraphiQL is served whole by the app: its page names no other host, and every script and
style it loads comes from the app, byte for byte what its integrity hash pins."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from scripts.vendor_graphiql import main as check_vendored

ASSET = re.compile(r'(?:src|href)="(?P<url>[^"]+)"(?:\s+integrity="(?P<integrity>[^"]+)")?')


async def page(client) -> str:
    response = await client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    return response.text


async def test_the_page_names_no_other_host(client):
    html = await page(client)
    assert "unpkg.com" not in html
    urls = [found["url"] for found in ASSET.finditer(html)]
    assert urls, "the page loads its scripts"
    assert all(url.startswith(("/", "data:")) and not url.startswith("//") for url in urls), urls
    # nor does any script or style fetch from another host by itself
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", html)


async def test_every_asset_is_served_with_the_hash_the_page_pins(client):
    assets = [found for found in ASSET.finditer(await page(client)) if found["integrity"]]
    assert len(assets) >= 5  # react, react-dom, graphiql's script and style, the explorer
    for asset in assets:
        response = await client.get(asset["url"], headers={"accept-encoding": "identity"})
        assert response.status_code == 200, asset["url"]
        digest = base64.b64encode(hashlib.sha384(response.content).digest()).decode()
        assert f"sha384-{digest}" == asset["integrity"], asset["url"]
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        expected = "text/css" if asset["url"].endswith(".css") else "javascript"
        assert expected in response.headers["content-type"]


async def test_assets_are_gzipped_and_unknown_ones_are_not_found(client):
    html = await page(client)
    script = next(found["url"] for found in ASSET.finditer(html) if "graphiql.min.js" in found[0])
    zipped = await client.get(script, headers={"accept-encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert (await client.get("/graphiql/graphiql@9.9.9/graphiql.min.js")).status_code == 404
    assert (await client.get("/graphiql/../../app.py")).status_code == 404


def test_the_vendored_copies_match_strawberrys_pins(capsys):
    assert check_vendored(["--check"]) == 0, capsys.readouterr().out


@pytest.mark.parametrize("accept", ["application/json", "*/*"])
async def test_api_clients_still_get_graphql_not_the_page(client, accept):
    response = await client.get(
        "/graphql", params={"query": "{ __typename }"}, headers={"accept": accept}
    )
    assert response.json() == {"data": {"__typename": "Query"}}
