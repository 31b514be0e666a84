from fastapi import APIRouter

from telemetra.kit.db import TransactionalRoute

router = APIRouter(prefix="/connectors", tags=["connectors"], route_class=TransactionalRoute)
