"""The baseline for one-reading requests: a bare FastAPI endpoint that parses the same body
(orjson, like Telemetra's ingest path) and answers 202 without storing anything."""

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI()


@app.post("/api/v1/readings", status_code=202)
async def readings(request: Request) -> Response:
    body = orjson.loads(await request.body())
    return Response(orjson.dumps({"accepted": len(body.get("values", {})), "duplicates": 0,
                                  "rejected": []}), status_code=202,
                    media_type="application/json")
