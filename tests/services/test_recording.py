"""The recording of one operation's reads: when its answer may be kept, and under what."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.platform.recording import Recording, recorded, unrecorded_read

TAGS = st.sampled_from(["student:a", "student:b", "classroom:c", "statistics", "user:u"])


def test_reads_that_agree_give_one_version_per_tag_and_the_first_expiry():
    running = Recording()
    running.lookup(tags=("user:u",), versions="e1,v1", watch=(), soft_expiry=300.0, stale=False)
    running.lookup(
        tags=("student:a", "statistics"),
        versions="e1,v2,v3",
        watch=("statistics:pending",),
        soft_expiry=120.0,
        stale=False,
    )
    assert running.storable
    assert running.soft_expiry == 120.0
    assert running.watch == {"statistics:pending"}
    tags = tuple(sorted(running.versions))
    assert tags == ("statistics", "student:a", "user:u")
    assert running.tag_versions(tags) == "e1,v3,v2,v1"


def test_nothing_read_through_the_cache_is_not_worth_keeping():
    assert not Recording().storable


@given(st.lists(st.tuples(TAGS, st.sampled_from(["v1", "v2"])), min_size=1, max_size=8))
def test_a_tag_seen_at_two_versions_is_never_kept(reads):
    """Property: kept only when every read of each tag saw the same version."""
    running = Recording()
    for tag, version in reads:
        running.lookup(
            tags=(tag,), versions=f"e,{version}", watch=(), soft_expiry=60.0, stale=False
        )
    seen: dict[str, set[str]] = {}
    for tag, version in reads:
        seen.setdefault(tag, set()).add(version)
    assert running.storable == all(len(versions) == 1 for versions in seen.values())


def test_a_stale_read_another_epoch_or_a_direct_read_is_never_kept():
    stale = Recording()
    stale.lookup(tags=("student:a",), versions="e,v", watch=(), soft_expiry=1.0, stale=True)
    epochs = Recording()
    epochs.lookup(tags=("student:a",), versions="e1,v", watch=(), soft_expiry=9.0, stale=False)
    epochs.lookup(tags=("statistics",), versions="e2,w", watch=(), soft_expiry=9.0, stale=False)
    with recorded() as direct:
        direct.lookup(tags=("student:a",), versions="e,v", watch=(), soft_expiry=9.0, stale=False)
        unrecorded_read("the database was read outside the cache")
    assert not stale.storable and not epochs.storable and not direct.storable
    assert direct.unrecorded == "the database was read outside the cache"


def test_outside_a_recording_a_direct_read_notes_nothing():
    unrecorded_read("nobody listens")  # no recording: nothing to refuse
    with recorded() as running:
        pass
    assert running.unrecorded is None
