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




INGEST_BODY = {
    "requestBody": {
        "required": True,
        "description": "Any of the seven ingestion bodies (see the API guide).",
        "content": {"application/json": {"schema": {
            "oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]},
            "examples": {
                "keys": {"value": {"temperature": 23.5, "humidity": 60}},
                "values": {"value": {"ts": "2026-01-01T12:00:00Z", "values": {"t": 1}}},
                "data": {"value": {"data": {"t": 1}, "metadata": {"fw": "1.0"}}},
                "readings": {"value": {"readings": [{"key": "t", "value": 1}]}},
                "sensor_type": {"value": {"sensor_type": "temperature", "value": 22.5,
                                          "unit": "°C"}},
                "float32": {"value": {"time": 1767268800, "value": [157, 42, 76, 190]}},
                "sensor_id": {"value": {"sensor_id": 12, "value": 22.5, "unit": "°C"}},
            }}},
    }
}
