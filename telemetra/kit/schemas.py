"""Field types shared by the features' request bodies."""

from typing import Annotated, Any, TypeVar

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from telemetra.kit.body import too_deep

Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
ShortText = Annotated[str, StringConstraints(max_length=300)]
LongText = Annotated[str, StringConstraints(max_length=5000)]

# A stored free-form value (device metadata, command params and results...) is read back by
# every listing that shows it: bounded when written, so that it always can be (API.md,
# "Bounded input"). 16 KiB holds any sane device description; a bigger blob is data, not
# metadata.
MAX_FREE_FORM_DEPTH = 16
MAX_FREE_FORM_BYTES = 16_384


def free_form_fault(value: Any) -> str | None:
    """What keeps a free-form value from being stored, or None: ``"deep"`` (past
    ``MAX_FREE_FORM_DEPTH``), ``"large"`` (past ``MAX_FREE_FORM_BYTES`` as JSON), ``"nul"`` (a
    NUL character: PostgreSQL's JSON refuses it, SQLite would store it) or ``"invalid: ..."``
    (not encodable). The one rule for device metadata, command params and results, and a
    reading's meta: decided on the encoded text at C speed."""
    try:
        encoded = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError) as exc:  # orjson stops at 255 levels
        return "deep" if "recursion" in str(exc).lower() else f"invalid: {exc}"
    if too_deep(encoded, MAX_FREE_FORM_DEPTH):
        return "deep"
    if len(encoded) > MAX_FREE_FORM_BYTES:
        return "large"
    # The escape is also the text of a string holding a backslash and "u0000": look closer.
    if b"\\u0000" in encoded and _holds_nul(value):
        return "nul"
    return None


def _holds_nul(value: Any) -> bool:  # bounded to MAX_FREE_FORM_DEPTH by the caller
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in key or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


_FAULTS = {"deep": f"nested deeper than {MAX_FREE_FORM_DEPTH} levels",
           "large": f"larger than {MAX_FREE_FORM_BYTES} bytes as JSON",
           "nul": "must not contain a NUL character"}


def check_free_form(value: Any) -> Any:
    """``value`` if it may be stored (``free_form_fault``), else a ValueError saying why."""
    fault = free_form_fault(value)
    if fault is not None:
        raise ValueError(_FAULTS.get(fault, fault))
    return value


_BOUNDS = (f"At most {MAX_FREE_FORM_DEPTH} levels deep and {MAX_FREE_FORM_BYTES} bytes as "
           "JSON.")
Model = TypeVar("Model", bound=BaseModel)

FreeForm = Annotated[dict[str, Any], AfterValidator(check_free_form),
                     Field(description=f"Free-form JSON object. {_BOUNDS}")]
FreeFormValue = Annotated[Any, AfterValidator(check_free_form),
                          Field(description=f"Any JSON value. {_BOUNDS}")]


def _nul_field(values: dict[str, Any]) -> str | None:
    for name, value in values.items():
        items = value if isinstance(value, list) else (value,)
        if any(isinstance(item, str) and "\x00" in item for item in items):
            return name
    return None


def refuse_nul(model: BaseModel) -> BaseModel:
    """A NUL in a string field is a 422 naming it, on both backends (PostgreSQL cannot store
    one in text; SQLite would, and a name would then differ from what is shown)."""
    name = _nul_field({**model.__dict__, **(model.model_extra or {})})
    if name is not None:
        raise ValueError(f"{name} must not contain a NUL character")
    return model


class Body(BaseModel):
    """A request body: unknown fields are an error, not silently dropped; no NUL in strings."""

    model_config = ConfigDict(extra="forbid")

    _no_nul = model_validator(mode="after")(refuse_nul)


def as_update(body: BaseModel, update: type[Model]) -> Model:
    """A PUT body as the PATCH body (``update``) that sets every field it has: the update path
    applied with ``exclude_unset`` then replaces the whole object, fields the client left out
    at their defaults (API.md, "Updates"). Fields ``update`` lacks (a sensor's device and key,
    which never change) are the caller's to check."""
    return update.model_validate(body.model_dump(include=set(update.model_fields)))


def page(items: list, total: int, params) -> dict:
    return {"items": items, "total": total, "limit": params.limit, "offset": params.offset}
