"""The Store contract: what every implementation must do, tested through the protocol only."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pytest

from server.store import (
    UNSET,
    Conflict,
    InstallationRecord,
    MessageKind,
    MessageRecord,
    MessageState,
    NumberAssignment,
    NumberTaken,
    RecordNotFound,
    Store,
    StoreClosed,
)

if TYPE_CHECKING:
    from conftest import StoreBackend  # tests/store/conftest.py

T0 = datetime(2025, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)
_ids = itertools.count(1)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def installation(
    *,
    org_id: str = "org-1",
    integration_id: str = "acme",
    numbers: tuple[str, ...] = ("+15550000001",),
    enabled: bool = True,
    created: int = 0,
    **changes: object,
) -> InstallationRecord:
    n = next(_ids)
    record = InstallationRecord(
        id=f"inst-{n}",
        org_id=org_id,
        integration_id=integration_id,
        properties={"API Key": "sealed:abc", "Account": "AC1"},
        numbers=tuple(
            NumberAssignment(number=number, given=number.lstrip("+"), users=("101", "alice"))
            for number in numbers
        ),
        default_region="US",
        enabled=enabled,
        webhook_token_hash=f"hash-{n}",
        subscription_state="not_required",
        subscription_error=None,
        created_at=at(created),
        updated_at=at(created),
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def message(*, org_id: str = "org-1", key: str | None = None, **changes: object) -> MessageRecord:
    record = MessageRecord(
        id=f"msg-{next(_ids)}",
        org_id=org_id,
        installation_id="inst-x",
        integration_id="acme",
        kind=MessageKind.SMS,
        from_number="+15550000001",
        to_number="+15550000002",
        text="héllo 👋",
        media_url=None,
        state=MessageState.PENDING,
        provider_message_id=None,
        provider_status=None,
        attempts=0,
        error=None,
        metadata={"ticket": "42", "ünïcode": "✓"},
        idempotency_key=key,
        request_fingerprint="fp-1" if key else None,
        reply_json=None,
        created_at=T0,
        updated_at=T0,
    )
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Integrations


async def test_put_integration_counts_versions_and_get_returns_latest_or_asked(
    store: Store,
) -> None:
    first = await store.put_integration("acme", '{"v": 1}', created_at=at(1))
    second = await store.put_integration("acme", '{"v": 2}', created_at=at(2))
    other = await store.put_integration("zeta", '{"z": 1}', created_at=at(3))

    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert first.created_at == at(1) and first.created_at.tzinfo is not None
    assert await store.get_integration("acme") == second
    assert await store.get_integration("acme", 1) == first
    assert await store.get_integration("acme", 3) is None
    assert await store.get_integration("nope") is None
    assert await store.list_integrations() == (second, other)


async def test_put_integration_stamps_now_when_no_time_is_given(store: Store) -> None:
    before = datetime.now(UTC)
    record = await store.put_integration("acme", "{}")
    assert before <= record.created_at <= datetime.now(UTC)
    assert record.deleted is False


async def test_deleted_integration_is_hidden_and_its_id_continues_counting(store: Store) -> None:
    await store.put_integration("acme", '{"v": 1}')
    await store.put_integration("acme", '{"v": 2}')
    kept = await store.put_integration("zeta", "{}")

    assert await store.delete_integration("acme") is True
    assert await store.delete_integration("acme") is False
    assert await store.delete_integration("never") is False
    assert await store.get_integration("acme") is None
    assert await store.get_integration("acme", 1) is None
    assert await store.list_integrations() == (kept,)

    again = await store.put_integration("acme", '{"v": 3}')
    assert again.version == 3
    assert await store.get_integration("acme") == again
    assert await store.get_integration("acme", 2) is None
    assert [r.id for r in await store.list_integrations()] == ["acme", "zeta"]


async def test_concurrent_puts_get_distinct_consecutive_versions(store: Store) -> None:
    records = await asyncio.gather(
        *(store.put_integration("acme", f'{{"n": {i}}}') for i in range(20))
    )
    assert sorted(r.version for r in records) == list(range(1, 21))
    latest = await store.get_integration("acme")
    assert latest is not None and latest.version == 20


# ---------------------------------------------------------------------------------------------
# Installations


async def test_installation_round_trip(store: Store) -> None:
    record = installation(numbers=("+15550000001", "12345"), default_region=None)
    assert await store.create_installation(record) == record
    stored = await store.get_installation(record.id)
    assert stored == record
    assert stored is not None
    assert dict(stored.properties) == {"API Key": "sealed:abc", "Account": "AC1"}
    assert stored.numbers[0].users == ("101", "alice")
    assert stored.created_at == T0
    assert await store.get_installation("missing") is None


async def test_list_installations_filters_and_orders_oldest_first(store: Store) -> None:
    b = installation(org_id="org-1", integration_id="beta", numbers=("+1", "+2"), created=2)
    a = installation(org_id="org-1", integration_id="acme", numbers=("+1",), created=1)
    c = installation(org_id="org-2", integration_id="acme", numbers=("+3",), created=3)
    for record in (b, a, c):
        await store.create_installation(record)

    assert await store.list_installations() == (a, b, c)
    assert await store.list_installations(org_id="org-1") == (a, b)
    assert await store.list_installations(integration_id="acme") == (a, c)
    assert await store.list_installations(org_id="org-2", integration_id="acme") == (c,)
    assert await store.list_installations(org_id="org-3") == ()


def _key(record: InstallationRecord) -> tuple[datetime, str]:
    return (record.created_at, record.id)


async def test_list_installations_pages_by_key_in_the_same_order(store: Store) -> None:
    records = [
        installation(org_id="org-1" if n % 2 else "org-2", numbers=(f"+1555000{n:04d}",), created=n)
        for n in range(7)
    ]
    for record in reversed(records):
        await store.create_installation(record)
    in_org_1 = tuple(r for r in records if r.org_id == "org-1")

    assert await store.list_installations(limit=3) == tuple(records[:3])
    assert await store.list_installations(limit=3, after=_key(records[2])) == tuple(records[3:6])
    assert await store.list_installations(limit=3, after=_key(records[5])) == tuple(records[6:])
    assert await store.list_installations(after=_key(records[4])) == tuple(records[5:])
    assert await store.list_installations(limit=0) == ()
    assert await store.list_installations(limit=10, after=_key(records[6])) == ()
    assert (
        await store.list_installations(org_id="org-1", limit=2, after=_key(in_org_1[0]))
        == in_org_1[1:3]
    )
    assert (
        await store.list_installations(
            org_id="org-1", integration_id="acme", after=_key(in_org_1[1])
        )
        == in_org_1[2:]
    )
    assert await store.list_installations(org_ids=frozenset({"org-1"})) == in_org_1
    assert await store.list_installations(org_ids=frozenset()) == ()
    assert await store.list_installations(
        org_ids=frozenset({"org-1", "org-2"}), limit=2, after=_key(records[0])
    ) == tuple(records[1:3])
    assert await store.list_installations(integration_id="acme", limit=1) == (records[0],)


async def test_update_installation_replaces_fields_and_keeps_created_at(store: Store) -> None:
    record = await store.create_installation(installation(numbers=("+1", "+2")))
    changed = dataclasses.replace(
        record,
        properties={"API Key": "sealed:new"},
        numbers=(NumberAssignment(number="+3", given="3", users=()),),
        default_region="GB",
        subscription_state="failed",
        subscription_error="HTTP 500",
        created_at=at(999),  # ignored: creation time is the store's
        updated_at=at(60),
    )
    stored = await store.update_installation(changed)
    assert stored == dataclasses.replace(changed, created_at=record.created_at)
    assert await store.get_installation(record.id) == stored
    assert await store.find_installation_by_number("acme", "+1") is None
    assert await store.find_installation_by_number("acme", "+3") == stored


async def test_update_of_a_missing_installation_is_not_found(store: Store) -> None:
    with pytest.raises(RecordNotFound):
        await store.update_installation(installation())


async def test_create_with_an_id_or_token_in_use_is_a_conflict(store: Store) -> None:
    first = await store.create_installation(installation(numbers=("+1",)))
    with pytest.raises(Conflict):
        await store.create_installation(installation(id=first.id, numbers=("+2",)))
    with pytest.raises(Conflict):
        await store.create_installation(
            installation(webhook_token_hash=first.webhook_token_hash, numbers=("+3",))
        )
    # Nothing of the refused ones was kept, numbers included.
    assert await store.list_installations() == (first,)
    assert await store.find_installation_by_number("acme", "+3") is None


async def test_a_number_is_held_by_one_enabled_installation_of_an_integration(store: Store) -> None:
    first = await store.create_installation(installation(numbers=("+1", "+2")))
    second = installation(org_id="org-2", numbers=("+9", "+2"))

    with pytest.raises(NumberTaken) as caught:
        await store.create_installation(second)
    assert (caught.value.number, caught.value.installation_id) == ("+2", first.id)
    # Atomic: neither the installation nor its other number was kept.
    assert await store.get_installation(second.id) is None
    assert await store.find_installation_by_number("acme", "+9") is None

    # Another integration may hold the same number.
    other = await store.create_installation(installation(integration_id="beta", numbers=("+2",)))
    assert await store.find_installation_by_number("beta", "+2") == other
    assert await store.find_installation_by_number("acme", "+2") == first


async def test_disabling_frees_the_numbers_and_re_enabling_checks_again(store: Store) -> None:
    first = await store.create_installation(installation(numbers=("+1", "+2")))
    disabled = await store.update_installation(
        dataclasses.replace(first, enabled=False, updated_at=at(10))
    )
    assert await store.find_installation_by_number("acme", "+2") is None

    second = await store.create_installation(installation(org_id="org-2", numbers=("+2",)))
    assert await store.find_installation_by_number("acme", "+2") == second

    with pytest.raises(NumberTaken) as caught:
        await store.update_installation(dataclasses.replace(disabled, enabled=True))
    assert (caught.value.number, caught.value.installation_id) == ("+2", second.id)
    # The refused update changed nothing: still disabled, "+1" still free.
    assert await store.get_installation(first.id) == disabled
    assert await store.find_installation_by_number("acme", "+1") is None


async def test_a_disabled_installation_may_be_created_with_a_held_number(store: Store) -> None:
    holder = await store.create_installation(installation(numbers=("+1",)))
    spare = await store.create_installation(installation(numbers=("+1",), enabled=False))
    assert await store.get_installation(spare.id) == spare
    assert await store.find_installation_by_number("acme", "+1") == holder


async def test_update_adding_a_held_number_is_refused_and_changes_nothing(store: Store) -> None:
    first = await store.create_installation(installation(numbers=("+1",)))
    second = await store.create_installation(installation(numbers=("+2",)))
    wanted = dataclasses.replace(
        second,
        numbers=(*second.numbers, NumberAssignment(number="+1", given="1", users=())),
        default_region="FR",
    )
    with pytest.raises(NumberTaken) as caught:
        await store.update_installation(wanted)
    assert caught.value.installation_id == first.id
    assert await store.get_installation(second.id) == second
    assert await store.find_installation_by_number("acme", "+2") == second


async def test_one_record_assigning_a_number_twice_is_refused(store: Store) -> None:
    record = installation(numbers=("+1", "+1"))
    with pytest.raises(NumberTaken) as caught:
        await store.create_installation(record)
    assert (caught.value.number, caught.value.installation_id) == ("+1", record.id)
    assert await store.get_installation(record.id) is None


async def test_concurrent_enables_of_one_number_let_exactly_one_win(store: Store) -> None:
    contenders = [installation(org_id=f"org-{i}", numbers=("+7",)) for i in range(10)]
    bystanders = [installation(numbers=(f"+8{i}",)) for i in range(10)]
    results = await asyncio.gather(
        *(store.create_installation(r) for r in contenders + bystanders), return_exceptions=True
    )
    won = [r for r in results[:10] if isinstance(r, InstallationRecord)]
    lost = [r for r in results[:10] if isinstance(r, NumberTaken)]
    assert len(won) == 1 and len(lost) == 9
    assert all(e.installation_id == won[0].id for e in lost)
    # A refused write in the same batch does not undo the others.
    assert results[10:] == bystanders
    assert len(await store.list_installations()) == 11


async def test_find_installations_for_number_sees_enabled_ones_of_the_org(store: Store) -> None:
    acme = await store.create_installation(installation(numbers=("+1",), created=1))
    beta = await store.create_installation(
        installation(integration_id="beta", numbers=("+1",), created=2)
    )
    gamma = await store.create_installation(
        installation(org_id="org-2", integration_id="gamma", numbers=("+1",))
    )
    await store.create_installation(
        installation(integration_id="delta", numbers=("+1",), enabled=False)
    )

    assert await store.find_installations_for_number("org-1", "+1") == (acme, beta)
    assert await store.find_installations_for_number("org-2", "+1") == (gamma,)
    assert await store.find_installations_for_number("org-3", "+1") == ()
    assert await store.find_installations_for_number("org-1", "+404") == ()


async def test_find_installation_by_token_hash(store: Store) -> None:
    record = await store.create_installation(installation(enabled=False))
    assert await store.find_installation_by_token_hash("acme", record.webhook_token_hash) == record
    assert await store.find_installation_by_token_hash("beta", record.webhook_token_hash) is None
    assert await store.find_installation_by_token_hash("acme", "other") is None


async def test_count_installations(store: Store) -> None:
    await store.create_installation(installation(numbers=("+1",)))
    await store.create_installation(installation(numbers=("+2",), enabled=False))
    await store.create_installation(installation(integration_id="beta"))
    assert await store.count_installations("acme") == 1
    assert await store.count_installations("acme", enabled_only=False) == 2
    assert await store.count_installations("none", enabled_only=False) == 0


# ---------------------------------------------------------------------------------------------
# Messages


async def test_message_round_trip_without_a_key(store: Store) -> None:
    record = message(kind=MessageKind.MMS, media_url="https://files.example/a.png", text="")
    stored, created = await store.claim_message(record)
    assert created is True and stored == record
    assert await store.get_message(record.id) == record
    assert await store.get_message("missing") is None
    # Without a key, equal content is simply another message.
    other = message()
    assert await store.claim_message(other) == (other, True)


async def test_claiming_an_id_in_use_is_a_conflict(store: Store) -> None:
    first, _ = await store.claim_message(message())
    with pytest.raises(Conflict):
        await store.claim_message(message(id=first.id))


async def test_claim_with_a_used_key_returns_the_stored_message(store: Store) -> None:
    first, created = await store.claim_message(message(key="k1"))
    assert created is True
    again, created = await store.claim_message(message(key="k1", text="different"))
    assert created is False and again == first
    assert await store.get_message_by_idempotency_key("org-1", "k1") == first
    assert await store.get_message_by_idempotency_key("org-2", "k1") is None
    # Keys belong to an organisation.
    elsewhere, created = await store.claim_message(message(key="k1", org_id="org-2"))
    assert created is True and elsewhere.id != first.id


async def test_fifty_concurrent_claims_of_one_key_create_exactly_one(store: Store) -> None:
    records = [message(key="same") for _ in range(50)]
    results = await asyncio.gather(*(store.claim_message(r) for r in records))
    winners = [stored for stored, created in results if created]
    assert len(winners) == 1
    assert winners[0] in records
    assert all(stored == winners[0] for stored, _ in results)
    assert await store.get_message_by_idempotency_key("org-1", "same") == winners[0]
    for record in records:
        expected = winners[0] if record.id == winners[0].id else None
        assert await store.get_message(record.id) == expected


async def test_update_message_changes_only_the_given_fields(store: Store) -> None:
    record, _ = await store.claim_message(message(key="k", error="old"))
    sent = await store.update_message(
        record.id,
        state=MessageState.SENT,
        provider_message_id="SM123",
        provider_status=201,
        attempts=1,
        error=None,
        reply_json='{"messageId": "x"}',
        updated_at=at(5),
    )
    assert sent == dataclasses.replace(
        record,
        state=MessageState.SENT,
        provider_message_id="SM123",
        provider_status=201,
        attempts=1,
        error=None,
        reply_json='{"messageId": "x"}',
        updated_at=at(5),
    )
    delivered = await store.update_message(
        record.id, state=MessageState.DELIVERED, updated_at=at(9)
    )
    assert delivered == dataclasses.replace(sent, state=MessageState.DELIVERED, updated_at=at(9))
    assert await store.get_message(record.id) == delivered
    assert await store.get_message_by_idempotency_key("org-1", "k") == delivered


async def test_update_message_stamps_now_and_unset_is_the_default(store: Store) -> None:
    record, _ = await store.claim_message(message())
    before = datetime.now(UTC)
    updated = await store.update_message(record.id, attempts=UNSET, state=MessageState.FAILED)
    assert updated.attempts == record.attempts and updated.state is MessageState.FAILED
    assert before <= updated.updated_at <= datetime.now(UTC)


async def test_update_of_a_missing_message_is_not_found(store: Store) -> None:
    with pytest.raises(RecordNotFound):
        await store.update_message("missing", state=MessageState.SENT)


async def test_find_message_by_provider_id(store: Store) -> None:
    record, _ = await store.claim_message(message())
    await store.claim_message(message(integration_id="beta", provider_message_id="SM1"))
    updated = await store.update_message(record.id, provider_message_id="SM1")
    assert await store.find_message_by_provider_id("acme", "SM1") == updated
    assert await store.find_message_by_provider_id("acme", "SM2") is None
    found = await store.find_message_by_provider_id("beta", "SM1")
    assert found is not None and found.integration_id == "beta"


# ---------------------------------------------------------------------------------------------
# Times, lifecycle, durability


async def test_times_are_kept_as_utc_to_the_microsecond(store: Store) -> None:
    local = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    record, _ = await store.claim_message(message(created_at=local, updated_at=local))
    stored = await store.get_message(record.id)
    assert stored is not None
    assert stored.created_at == local
    assert stored.created_at.utcoffset() == timedelta(0)


async def test_naive_times_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.claim_message(message(created_at=datetime(2025, 1, 1)))
    with pytest.raises(ValueError, match="naive"):
        await store.put_integration("acme", "{}", created_at=datetime(2025, 1, 1))


async def test_data_survives_close_and_reopen(store_backend: StoreBackend) -> None:
    first = store_backend.make()
    await first.start()
    integration = await first.put_integration("acme", '{"id": "acme"}')
    inst = await first.create_installation(installation(numbers=("+1",)))
    msg, _ = await first.claim_message(message(key="k"))
    msg = await first.update_message(msg.id, state=MessageState.SENT, provider_message_id="P1")
    await first.aclose()
    await first.aclose()  # closing twice is harmless

    second = store_backend.make()
    await second.start()
    try:
        assert await second.get_integration("acme") == integration
        assert await second.get_installation(inst.id) == inst
        assert await second.find_installation_by_number("acme", "+1") == inst
        assert await second.get_message(msg.id) == msg
        assert await second.claim_message(message(key="k")) == (msg, False)
        with pytest.raises(NumberTaken):
            await second.create_installation(installation(numbers=("+1",)))
    finally:
        await second.aclose()


async def test_a_closed_store_refuses_calls(store_backend: StoreBackend) -> None:
    never_opened = store_backend.make()
    with pytest.raises(StoreClosed):
        await never_opened.get_integration("acme")
    opened = store_backend.make()
    await opened.start()
    await opened.aclose()
    with pytest.raises(StoreClosed):
        await opened.put_integration("acme", "{}")
    with pytest.raises(StoreClosed):
        await opened.list_installations()


async def test_installation_values_are_kept_beside_the_record(store: Store) -> None:
    from datetime import UTC, datetime

    from server.store import InstallationRecord

    now = datetime.now(UTC)
    record = InstallationRecord(
        id="inst-values",
        org_id="o",
        integration_id="i",
        properties={},
        numbers=(),
        default_region=None,
        enabled=True,
        webhook_token_hash="h-values",
        subscription_state="not_required",
        subscription_error=None,
        created_at=now,
        updated_at=now,
    )
    await store.put_integration("i", "{}")
    await store.create_installation(record)
    assert await store.get_installation_value("inst-values", "oauth") is None
    await store.put_installation_value("inst-values", "oauth", "sealed-1")
    await store.put_installation_value("inst-values", "oauth", "sealed-2")
    await store.put_installation_value("inst-values", "state", "authorized")
    assert await store.get_installation_value("inst-values", "oauth") == "sealed-2"
    assert await store.get_installation_value("inst-values", "state") == "authorized"
    assert (await store.get_installation("inst-values")) == record
    with pytest.raises(RecordNotFound):
        await store.put_installation_value("nobody", "oauth", "x")


async def test_authorization_states_are_single_use(store: Store) -> None:
    import asyncio
    from datetime import UTC, datetime, timedelta

    later = datetime.now(UTC) + timedelta(minutes=10)
    assert await store.consume_authorization_state("k1") is None
    await store.save_authorization_state("k1", "sealed", later)
    results = await asyncio.gather(*(store.consume_authorization_state("k1") for _ in range(5)))
    assert sorted(r[1] for r in results if r) == [False, False, False, False, True]
    assert all(r is not None and r[0] == "sealed" for r in results)


async def test_exclusive_admits_one_holder_at_a_time(store: Store) -> None:
    import asyncio

    inside = 0
    most = 0

    async def hold() -> None:
        nonlocal inside, most
        async with store.exclusive("renewal:one"):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    await asyncio.gather(*(hold() for _ in range(5)))
    assert most == 1


async def test_integrations_page_by_id_after_the_last_of_the_page_before(store: Store) -> None:
    for name in ("delta", "alpha", "charlie", "bravo"):
        await store.put_integration(name, "{}")
    await store.put_integration("bravo", '{"v": 2}')
    await store.put_integration("echo", "{}")
    await store.delete_integration("echo")

    first = await store.list_integrations(limit=2)
    assert [(i.id, i.version) for i in first] == [("alpha", 1), ("bravo", 2)]
    rest = await store.list_integrations(after="bravo")
    assert [i.id for i in rest] == ["charlie", "delta"]
    assert await store.list_integrations(after="delta") == ()
    assert [i.id for i in await store.list_integrations()] == ["alpha", "bravo", "charlie", "delta"]
