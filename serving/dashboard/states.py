"""What every page does when the API is down or the pipeline has not built a table yet: say so, and what to do."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar

import streamlit as st

from serving.dashboard.queries import ApiError, api_url

T = TypeVar("T")
START_HINT: Final = "Start the pipeline with `cryptolake run` (or materialize the assets in Dagster)."


def from_api(load: Callable[[str], T], what: str) -> T | None:
    """``load(base_url)``; on an unreachable API an error box with what to do and the page stops; on a table not
    built yet (503) an info box and None."""
    base_url = api_url()
    try:
        return load(base_url)
    except ApiError as exc:
        if exc.no_data_yet:
            st.info(f"No {what} yet: {exc}. {START_HINT}", icon=":material/hourglass_empty:")
            return None
        if exc.status is not None and 400 <= exc.status < 500:
            st.warning(f"The API refused the request for {what}: {exc}", icon=":material/report:")
            return None
        st.error(
            f"The CryptoLake API at {base_url} is not available: {exc}. Start it with `python -m serving.api` "
            "(or `cryptolake run`), then reload this page.",
            icon=":material/cloud_off:",
        )
        st.stop()
    return None  # unreachable: st.stop() raises


def empty(what: str) -> None:
    """The empty state of a page or a chart: nothing to show yet, and why."""
    st.info(f"No {what} yet. {START_HINT}", icon=":material/hourglass_empty:")


def utc_caption(extra: str = "") -> None:
    st.caption(f"All times UTC. Prices and volumes in tables are exact decimals as the API sent them. {extra}")
