"""Which document an operation runs: the text sent, a registered (trusted) document named by
hash, or one Apollo's automatic persisted queries kept; and whether the caller may run it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from resolvers.context import Context
from services.platform.errors import Invalid
from services.platform.persisted_queries import document_hash, requested_hash
from services.trusted_documents import DocumentNotTrusted

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Document:
    text: str | None
    # Set when the client sent a document with its hash: kept for APQ once it validates.
    keep_as: str | None = None


async def resolve_document(
    query: str | None, persisted: object | None, context: Context
) -> Document:
    """The document to run. PERSISTED_QUERY_NOT_IN_LIST when the caller must run registered
    documents and this is not one; PERSISTED_QUERY_NOT_FOUND when a hash names nothing known;
    VALIDATION_ERROR for a document longer than the settings allow, before it is parsed."""
    limit = context.settings.query_max_length
    if query is not None and len(query) > limit:
        raise Invalid("query", f"The document is longer than {limit:,} characters.")
    policy = context.trust_policy
    digest = requested_hash(persisted) if persisted is not None else None
    if digest is not None and query is None:
        if (trusted := await context.trusted.find(digest)) is not None:
            return Document(trusted)
        if policy.restricted:
            raise DocumentNotTrusted()
        return Document(await context.persisted.resolve(digest, None))
    if query is not None and (policy.restricted or policy.log_misses):
        sent_hash = document_hash(query)
        if await context.trusted.find(sent_hash) is None:
            if policy.restricted:
                raise DocumentNotTrusted()
            logger.warning(
                "untrusted document %s (client %s) would be refused once enforced",
                sent_hash,
                context.client_name or "-",
            )
    if digest is not None:
        return Document(await context.persisted.resolve(digest, query), keep_as=digest)
    return Document(query)
