"""What ingestion answers, and the bodies it takes (documented in OpenAPI)."""

from pydantic import BaseModel, Field


class RejectedReading(BaseModel):
    index: int = Field(description="Position of the reading in the body, in body order")
    reason: str
    key: str | None = None


class IngestResult(BaseModel):
    accepted: int = Field(description="Readings stored by this request")
    duplicates: int = Field(description="Readings whose sensor and time were already stored")
    rejected: list[RejectedReading]


class ImportResult(IngestResult):
    rejected_total: int = Field(description="All rejected lines; `rejected` lists the first "
                                            "1000")




# The bodies, briefly, each with one example (the README's "Ingestion bodies" says more).
INGEST_FORMATS = (
    "The body is one of seven formats, all normalised to the same readings. Times are ISO "
    "8601 (naive means UTC), epoch seconds, or epoch milliseconds (numbers from 1e11 up); a "
    "missing time means now. A field no format has is refused, naming it.\n\n"
    "1. **keys**: sensor keys and their numbers: `{\"temperature\": 23.5, \"humidity\": 60}`\n"
    "2. **values**: one time and its values, or a list of those: "
    "`{\"ts\": \"2026-01-01T12:00:00Z\", \"values\": {\"temperature\": 23.5}}`\n"
    "3. **data**: values with metadata: "
    "`{\"data\": {\"temperature\": 23.5}, \"metadata\": {\"fw\": \"1.2\"}, "
    "\"timestamp\": 1767268800000}`\n"
    "4. **readings**: readings each with its own key (or sensor_type), unit, time, tags: "
    "`{\"readings\": [{\"key\": \"temperature\", \"value\": 23.5, \"unit\": \"°C\", "
    "\"ts\": 1767268800, \"tags\": [\"suspect\"]}]}`\n"
    "5. **sensor_type**: one reading named by its sensor type, or a list: "
    "`{\"sensor_type\": \"temperature\", \"value\": 22.5, \"unit\": \"°C\"}`\n"
    "6. **bytes**: a float32 as its 4 bytes, little-endian, or a list: "
    "`{\"time\": 1767268800, \"value\": [157, 42, 76, 190], \"tags\": [\"system\"]}`\n"
    "7. **sensor_id**: to an existing sensor by its id, or a list: "
    "`{\"sensor_id\": 12, \"value\": 22.5, \"unit\": \"°C\"}`"
)

INGEST_BODY = {
    "requestBody": {
        "required": True,
        "description": INGEST_FORMATS,
        "content": {"application/json": {"schema": {
            "oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]},
            "examples": {
                "keys": {"value": {"temperature": 23.5, "humidity": 60}},
                "values": {"value": {"ts": "2026-01-01T12:00:00Z",
                                     "values": {"temperature": 23.5}}},
                "data": {"value": {"data": {"temperature": 23.5}, "metadata": {"fw": "1.2"},
                                   "timestamp": 1767268800000}},
                "readings": {"value": {"readings": [{"key": "temperature", "value": 23.5,
                                                     "unit": "°C", "ts": 1767268800}]}},
                "sensor_type": {"value": {"sensor_type": "temperature", "value": 22.5,
                                          "unit": "°C"}},
                "bytes": {"value": {"time": 1767268800, "value": [157, 42, 76, 190]}},
                "sensor_id": {"value": {"sensor_id": 12, "value": 22.5, "unit": "°C"}},
            }}},
    }
}
