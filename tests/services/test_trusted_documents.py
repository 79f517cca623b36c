"""Reading manifests, the per-caller policy, and the per-process cache of registrations."""

from __future__ import annotations

import hashlib
import uuid

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.models import Role
from services.platform.settings import Settings, SettingsError, TrustMode
from services.trusted_documents import (
    ManifestError,
    Policy,
    TrustedDocuments,
    read_manifest,
    register,
    remove,
)

DOCUMENT = "query Me { me { id } }"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apollo(*operations: dict) -> str:
    return orjson.dumps(
        {"format": "apollo-persisted-query-manifest", "version": 1, "operations": list(operations)}
    ).decode()


def test_a_graphql_file_is_one_document_hashed_as_written():
    [registration] = read_manifest(DOCUMENT + "\n", source="me.graphql", name="web")
    assert registration.sha256 == sha(DOCUMENT + "\n")
    assert registration.operation_names == ("Me",)
    assert registration.manifest == "web"


def test_an_apollo_manifest_is_read_and_its_ids_checked():
    body = "query A { me { id } } query B { me { role } }"
    [registration] = read_manifest(
        apollo({"id": sha(body), "name": "A", "type": "query", "body": body}),
        source="m.json",
        name="m",
    )
    assert registration.operation_names == ("A", "B")
    with pytest.raises(ManifestError, match=r"operations\[0\]: id is not the SHA-256"):
        read_manifest(apollo({"id": "0" * 64, "body": body}), source="m.json", name="m")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{ me { id } }", "not JSON"),
        ("query { me { id } }", "anonymous operation"),
        ("fragment F on Viewer { id }", "holds no operation"),
        ("query A { me { id }", "does not parse"),
        ('{"format": "other"}', "not an apollo-persisted-query-manifest"),
        (apollo({"id": "x"}), "has no body"),
    ],
)
def test_unusable_files_are_refused_with_the_reason(text, problem):
    with pytest.raises(ManifestError, match=problem) as refused:
        read_manifest(text, source="bad.file", name="bad")
    assert "bad.file" in str(refused.value)


@given(
    role=st.sampled_from([*Role, None]),
    default=st.sampled_from(TrustMode),
    client=st.sampled_from(["web", "ios", None]),
    web=st.sampled_from(TrustMode),
)
def test_partners_are_always_restricted_others_as_their_clients_mode_says(
    role, default, client, web
):
    policy = Policy.of(role=role, client=client, default=default, per_client={"web": web})
    mode = web if client == "web" else default
    assert policy.restricted == (role is Role.PARTNER or mode is TrustMode.ENFORCE)
    assert policy.log_misses == (mode is TrustMode.LOG)


def test_modes_are_read_from_the_environment():
    settings = Settings.from_env(
        {
            "ROLLCALL_TRUSTED_DOCUMENTS": "log",
            "ROLLCALL_TRUSTED_DOCUMENTS_CLIENTS": "web=enforce, partner-sync=partners",
        }
    )
    assert settings.trusted_documents is TrustMode.LOG
    assert settings.trusted_documents_clients == {
        "web": TrustMode.ENFORCE,
        "partner-sync": TrustMode.PARTNERS,
    }
    assert Settings.from_env({}).trusted_documents is TrustMode.PARTNERS
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(
            {"ROLLCALL_TRUSTED_DOCUMENTS": "always", "ROLLCALL_TRUSTED_DOCUMENTS_CLIENTS": "web"}
        )
    assert "ROLLCALL_TRUSTED_DOCUMENTS must be one of" in str(refused.value)
    assert "TRUSTED_DOCUMENTS_CLIENTS item 'web'" in str(refused.value)


async def test_registration_is_all_or_nothing_and_seen_once_the_cache_expires(session_factory):
    now = [0.0]
    documents = TrustedDocuments(
        session_factory=session_factory, cache_seconds=30, clock=lambda: now[0]
    )
    good = f"query Good{uuid.uuid4().hex} {{ me {{ id }} }}"
    bad = f"query Bad{uuid.uuid4().hex} {{ me {{ nope }} }}"
    batch = [
        *read_manifest(good, source="good", name="t"),
        *read_manifest(bad, source="bad", name="t"),
    ]
    assert await documents.find(sha(good)) is None

    def validate(document: str) -> list[str]:
        return ["Cannot query field 'nope'"] if "nope" in document else []

    with pytest.raises(ManifestError, match="nope"):
        await register(session_factory=session_factory, registrations=batch, validate=validate)
    assert (
        await register(session_factory=session_factory, registrations=batch[:1], validate=validate)
        == 1
    )
    assert (
        await register(session_factory=session_factory, registrations=batch[:1], validate=validate)
        == 0
    )
    assert await documents.find(sha(good)) is None  # the miss is still cached
    now[0] = 31
    assert await documents.find(sha(good)) == good
    assert await documents.find(sha(bad)) is None
    assert await remove(session_factory=session_factory, digests=[sha(good)]) == 1
    now[0] = 62
    assert await documents.find(sha(good)) is None
