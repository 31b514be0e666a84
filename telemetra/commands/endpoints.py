from fastapi import APIRouter

from telemetra.kit.db import TransactionalRoute

router = APIRouter(prefix="/devices", tags=["commands"], route_class=TransactionalRoute)
