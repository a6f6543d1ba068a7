"""``GET /api/v1/symbols``: the symbols that have 1-minute bars."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from serving.api.deps import CatalogDep
from serving.api.lake import read_symbols
from serving.api.schemas import Market, SymbolsPublic

router = APIRouter(prefix="/symbols", tags=["symbols"])


@router.get("", response_model=SymbolsPublic, summary="Symbols with 1-minute bars")
def get_symbols(
    catalog: CatalogDep, market: Annotated[Market | None, Query(description="Only this market")] = None
) -> SymbolsPublic:
    symbols = read_symbols(catalog, market)
    return SymbolsPublic(count=len(symbols), data=symbols)
