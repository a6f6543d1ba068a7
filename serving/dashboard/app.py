"""CryptoLake dashboard entry point: ``streamlit run serving/dashboard/app.py``.

The pages live in ``app_pages/``; they read the API at ``settings.resolved_api_url`` (``CRYPTOLAKE_API_URL``).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES_DIR = Path(__file__).resolve().parent / "app_pages"

st.set_page_config(page_title="CryptoLake", page_icon=":chart_with_upwards_trend:", layout="wide")
navigation = st.navigation(
    [st.Page(PAGES_DIR / "candles.py", title="Candles", icon=":material/candlestick_chart:", default=True)]
)
navigation.run()
