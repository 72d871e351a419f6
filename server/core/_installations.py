"""Installations: an integration enabled for one organisation, with its properties and numbers.

Secret property values are sealed with the :class:`SecretBox` before they reach the store and
are never returned; the webhook token is stored as a hash for lookups and sealed so that the full
webhook URL can be shown again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import MappingProxyType

from ..engine import Definition, Property
from ..errors import AlreadyExists, InvalidRequest, NotFound
from ..security.secrets import SecretBox, hash_token, is_sealed, new_token
from ..security.webhook_auth import key_problems
from ..sidecar import webhook_path
from ..store import InstallationRecord, NumberAssignment, NumberTaken, Store
from ._capped_cache import CappedCache, FreshCache
from ._catalog import IntegrationCatalog
from ._numbers import normalize_address, normalize_number
from ._send_limits import SendLimits, limits_to_json

__all__ = [
    "WEBHOOK_TOKEN_PROPERTY",
    "InstallationDirectory",
    "NumberInput",
    "installation_not_found",
]

logger = logging.getLogger(__name__)

# The sealed webhook token is kept among the properties under a name no definition can declare
# (property names cannot start with a NUL), so the store needs no column for it.
WEBHOOK_TOKEN_PROPERTY = "\x00webhook_token"  # noqa: S105 - a name, not a secret

# What Subscribe kept (docs/format.md, "Subscribe and Unsubscribe"): its captures and what it ran
# with, as one JSON text sealed whole, among the values kept beside the installation's record.
SUBSCRIPTION_VALUE = "subscription"


@dataclass(frozen=True, kw_only=True, slots=True)
class NumberInput:
    number: str
    users: tuple[str, ...] = ()


class InstallationDirectory:
    """Creates, changes and reads installations; resolves which one holds a number."""

    def __init__(
        self,
        *,
        store: Store,
        catalog: IntegrationCatalog,
        secret_box: SecretBox,
        public_url: str,
        cache_ttl_s: float = 2.0,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._box = secret_box
        self._public_url = public_url.rstrip("/")
        # Keyed by (id, updated_at): a changed installation is a new key, never a stale hit.
        self._plain_properties: CappedCache[tuple[str, datetime], dict[str, str]] = CappedCache()
        self._webhook_urls: CappedCache[tuple[str, datetime], str] = CappedCache()
        # Each organisation's enabled installations, for the send path: re-read after
        # ``cache_ttl_s`` (another replica may have changed them) and at once after a change here.
        self._by_org: FreshCache[str, tuple[InstallationRecord, ...]] = FreshCache(cache_ttl_s)
        # The installation each webhook URL's token names, for the webhook path: as fresh as the
        # send path's (``cache_ttl_s``, at once after a change here); a token that names none is
        # not kept, so unknown tokens cannot push the known ones out.
        self._by_token: FreshCache[tuple[str, str], InstallationRecord] = FreshCache(cache_ttl_s)

    # --- reading ------------------------------------------------------------------------------

    async def get(self, installation_id: str) -> InstallationRecord:
        record = await self._store.get_installation(installation_id)
        if record is None:
            raise installation_not_found(installation_id)
        return record

    async def enabled(self, org_id: str, installation_id: str) -> InstallationRecord:
        """An enabled installation of the organisation, from the cache sends use (changes made
        through this replica apply at once); NOT_FOUND when it is not enabled (any more)."""
        for record in await self.enabled_for_org(org_id):
            if record.id == installation_id:
                return record
        raise installation_not_found(installation_id)

    async def enabled_for_org(self, org_id: str) -> tuple[InstallationRecord, ...]:
        cached = self._by_org.fresh(org_id)
        if cached is not None:
            return cached
        records = tuple(r for r in await self._store.list_installations(org_id=org_id) if r.enabled)
        return self._by_org.keep(org_id, records)

    async def by_webhook_token(
        self, integration_id: str, token_hash: str
    ) -> InstallationRecord | None:
        """The installation of ``integration_id`` whose webhook token hashes to ``token_hash``,
        from the cache the webhook path uses (a webhook read it by token every time: about a
        tenth of the event loop's time under load)."""
        key = (integration_id, token_hash)
        cached = self._by_token.fresh(key)
        if cached is not None:
            return cached
        record = await self._store.find_installation_by_token_hash(integration_id, token_hash)
        if record is not None:
            self._by_token.keep(key, record)
        return record

    def _forget(self, record: InstallationRecord) -> None:
        """A change made here applies to this replica's caches at once."""
        self._by_org.pop(record.org_id, None)
        self._by_token.pop((record.integration_id, record.webhook_token_hash), None)

    def webhook_url(self, record: InstallationRecord) -> str:
        key = (record.id, record.updated_at)
        url = self._webhook_urls.get(key)
        if url is None:
            sealed = record.properties.get(WEBHOOK_TOKEN_PROPERTY)
            token = self._box.decrypt(sealed) if sealed else ""
            url = self._webhook_urls.put(
                key, self._public_url + webhook_path(record.integration_id, token)
            )
        return url

    def property_values(self, record: InstallationRecord) -> dict[str, str]:
        """Every property value in clear (for rendering requests; never for replies or logs)."""
        key = (record.id, record.updated_at)
        cached = self._plain_properties.get(key)
        if cached is None:
            cached = self._plain_properties.put(
                key,
                {
                    name: self._box.decrypt(value) if is_sealed(value) else value
                    for name, value in record.properties.items()
                    if name != WEBHOOK_TOKEN_PROPERTY
                },
            )
        return cached

    async def subscription_values(self, installation_id: str) -> str | None:
        """What Subscribe kept for the installation (JSON text, in clear), or None."""
        sealed = await self._store.get_installation_value(installation_id, SUBSCRIPTION_VALUE)
        return None if sealed is None else self._box.decrypt(sealed)

    async def keep_subscription_values(self, installation_id: str, text: str) -> None:
        """Keep ``text`` (JSON) sealed as what Subscribe kept, replacing what it kept before."""
        sealed = self._box.encrypt(text)
        await self._store.put_installation_value(installation_id, SUBSCRIPTION_VALUE, sealed)

    # --- writing ------------------------------------------------------------------------------

    async def enable(
        self,
        *,
        org_id: str,
        integration_id: str,
        properties: Mapping[str, str],
        numbers: Sequence[NumberInput],
        default_region: str | None,
        limits: SendLimits | None = None,
    ) -> InstallationRecord:
        violations: list[tuple[str, str]] = []
        if not org_id.strip():
            violations.append(("org_id", "required"))
        if not integration_id.strip():
            violations.append(("integration_id", "required"))
        if violations:
            raise InvalidRequest("the request is incomplete", violations=violations)
        integration = await self._catalog.get(integration_id)
        region = _region(default_region)
        sealed = self._seal_properties(integration.definition, {}, properties, ())
        token = new_token()
        sealed[WEBHOOK_TOKEN_PROPERTY] = self._box.encrypt(token)
        now = datetime.now(UTC)
        record = InstallationRecord(
            id=str(uuid.uuid4()),
            org_id=org_id,
            integration_id=integration_id,
            properties=sealed,
            numbers=_assignments(numbers, region, integration.definition.addresses),
            default_region=region,
            enabled=True,
            webhook_token_hash=hash_token(token),
            subscription_state=(
                "pending" if integration.definition.choose(sealed).subscribe else "not_required"
            ),
            subscription_error=None,
            created_at=now,
            updated_at=now,
            send_limits_json=_limits_json(limits, region),
        )
        try:
            stored = await self._store.create_installation(record)
        except NumberTaken as exc:
            raise _number_taken(exc, integration_id) from None
        self._by_org.pop(org_id, None)
        logger.info(
            "installation enabled",
            extra={"installation": stored.id, "org": org_id, "integration": integration_id},
        )
        return stored

    async def update(
        self,
        installation_id: str,
        *,
        properties: Mapping[str, str],
        clear_properties: Iterable[str],
        numbers: Sequence[NumberInput] | None,
        default_region: str | None,
        limits: SendLimits | None = None,
    ) -> InstallationRecord:
        record = await self.get(installation_id)
        integration = await self._catalog.get(record.integration_id)
        region = record.default_region if default_region is None else _region(default_region)
        sealed = self._seal_properties(
            integration.definition, record.properties, properties, tuple(clear_properties)
        )
        addresses = integration.definition.addresses
        new_numbers = (
            _assignments(numbers, region, addresses)
            if numbers is not None
            else _assignments(
                [NumberInput(number=n.given, users=n.users) for n in record.numbers],
                region,
                addresses,
            )
        )
        changed = replace(
            record,
            properties=sealed,
            numbers=new_numbers,
            default_region=region,
            updated_at=datetime.now(UTC),
            send_limits_json=(
                record.send_limits_json if limits is None else _limits_json(limits, region)
            ),
        )
        try:
            stored = await self._store.update_installation(changed)
        except NumberTaken as exc:
            raise _number_taken(exc, record.integration_id) from None
        self._forget(record)
        return stored

    async def disable(self, installation_id: str) -> InstallationRecord:
        record = await self.get(installation_id)
        if not record.enabled:
            return record
        changed = replace(record, enabled=False, updated_at=datetime.now(UTC))
        stored = await self._store.update_installation(changed)
        self._forget(record)
        logger.info("installation disabled", extra={"installation": installation_id})
        return stored

    def _seal_properties(
        self,
        definition: Definition,
        current: Mapping[str, str],
        given: Mapping[str, str],
        clear: tuple[str, ...],
    ) -> dict[str, str]:
        declared = {p.name: p for p in definition.properties}
        violations = [
            (f"properties[{name}]", f"the integration {definition.id!r} has no property {name!r}")
            for name in (*given, *clear)
            if name not in declared
        ]
        # Values sealed under an older key are sealed again under the current one (key rotation).
        merged = {k: self._reseal(v) for k, v in current.items() if k not in clear}
        for name, value in given.items():
            if name in declared:
                prop = declared[name]
                merged[name] = self._box.encrypt(value) if prop.secret else value
        for prop in definition.properties:
            if prop.name not in merged and prop.default is not None:
                merged[prop.name] = self._box.encrypt(prop.default) if prop.secret else prop.default
        for prop in definition.properties:
            # (ext) required_when: required only for some choices (docs/format.md, "Variants");
            # the reason names the property and the choices, never a value of it
            if definition.requires(prop, merged) and not merged.get(prop.name):
                violations.append((f"properties[{prop.name}]", _required(prop)))
            elif prop.options and merged.get(prop.name) not in (*prop.options, None, ""):
                # (ext) a choice (docs/format.md, "Variants"); options are never secret
                shown = ", ".join(repr(o) for o in prop.options)
                violations.append(
                    (f"properties[{prop.name}]", f"{merged[prop.name]!r} is not one of {shown}")
                )
        violations += self._key_problems(definition, merged)
        if violations:
            raise InvalidRequest(
                "the installation's properties are not valid", violations=violations
            )
        return merged

    def _key_problems(
        self, definition: Definition, merged: Mapping[str, str]
    ) -> list[tuple[str, str]]:
        """(ext) A public key pasted into a property must be one (docs/format.md,
        "WebhookAuth"); its value is never repeated in the answer."""
        auth = definition.choose(merged).webhook_auth
        if auth is None or auth.type != "rsa":
            return []
        plain = {k: self._box.decrypt(v) if is_sealed(v) else v for k, v in merged.items()}
        return [(f"properties[{name}]", reason) for name, reason in key_problems(auth, plain)]

    def _reseal(self, value: str) -> str:
        if is_sealed(value) and self._box.needs_reencryption(value):
            return self._box.encrypt(self._box.decrypt(value))
        return value


def _required(prop: Property) -> str:
    if not prop.required_when:
        return "a value is required"
    said = " and ".join(
        f"{name!r} is " + " or ".join(repr(o) for o in options)
        for name, options in prop.required_when.items()
    )
    return f"a value is required when {said}"


def _region(default_region: str | None) -> str | None:
    region = (default_region or "").strip().upper()
    if region and (len(region) != 2 or not region.isalpha()):
        raise InvalidRequest(
            "default_region must be a two-letter ISO 3166 region code",
            violations=[("default_region", f"{default_region!r} is not a region code like 'US'")],
        )
    return region or None


def _assignments(
    numbers: Sequence[NumberInput], region: str | None, addresses: str = "phone"
) -> tuple[NumberAssignment, ...]:
    """The numbers as stored: normalised, or (ext) kept verbatim when the definition's
    ``addresses`` are ids or user names (docs/format.md, "Addresses")."""
    out: dict[str, NumberAssignment] = {}
    violations = []
    for index, item in enumerate(numbers):
        normalized = normalize_address(item.number, region, addresses)
        if not normalized:
            violations.append((f"numbers[{index}].number", "a number is required"))
            continue
        users = tuple(u.strip() for u in item.users if u.strip())
        previous = out.get(normalized)
        if previous is not None:
            users = tuple(dict.fromkeys((*previous.users, *users)))
        out[normalized] = NumberAssignment(number=normalized, given=item.number, users=users)
    if violations:
        raise InvalidRequest("the installation's numbers are not valid", violations=violations)
    return tuple(out.values())


def installation_not_found(installation_id: str) -> NotFound:
    """What a call naming an installation that does not exist — or, for a token scoped to
    organisations, one of another organisation — is answered."""
    return NotFound(
        f"no installation {installation_id!r}",
        reason="INSTALLATION_NOT_FOUND",
        metadata={"installation": installation_id},
    )


def _number_taken(exc: NumberTaken, integration_id: str) -> AlreadyExists:
    return AlreadyExists(
        f"number {exc.number} is already held by another enabled installation of this integration",
        reason="NUMBER_TAKEN",
        metadata={
            "number": exc.number,
            "integration": integration_id,
            "installation": exc.installation_id,
        },
    )


def _limits_json(limits: SendLimits | None, region: str | None) -> str:
    """An installation's limits as kept, each number's own rate under its stored form
    (docs/delivery.md, "Limits")."""
    if limits is None:
        return ""
    numbers = {normalize_number(n, region): rate for n, rate in limits.numbers.items()}
    return limits_to_json(replace(limits, numbers=MappingProxyType(numbers)))
