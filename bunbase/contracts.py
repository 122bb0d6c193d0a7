"""Base model for every wire contract: snake_case in Python, camelCase on the wire."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, StringConstraints
from pydantic.alias_generators import to_camel


class Contract(BaseModel):
    """Inputs accept both wire (camelCase) and Python names; outputs serialise camelCase."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        str_strip_whitespace=True,
    )

    def wire(self) -> dict[str, object]:
        return self.model_dump(mode="json", by_alias=True)


class Empty(Contract):
    """An action that takes or returns nothing."""


#: An email address, checked for shape only (delivery is proven by verification mails).
Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
    ),
]


def _to_naive_utc(value: datetime) -> datetime:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _iso_utc(value: datetime) -> str:
    return value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


#: A UTC instant: accepts any ISO-8601 offset, stores naive UTC, writes `...Z` on the wire.
Timestamp = Annotated[
    datetime,
    AfterValidator(_to_naive_utc),
    PlainSerializer(_iso_utc, return_type=str, when_used="json"),
]


#: A list's `cursor`: the `nextCursor` of its previous page. Any string is accepted here;
#: the list checks it (`bunbase.cursors`), so a malformed one is 400 `invalid_cursor`.
Cursor = Annotated[str, Field(description="The nextCursor of the previous page")]
