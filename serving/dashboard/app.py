"""CryptoLake dashboard entry point: ``streamlit run serving/dashboard/app.py``.

The pages live in ``app_pages/``; they read the API at ``settings.resolved_api_url`` (``CRYPTOLAKE_API_URL``).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES_DIR = Path(__file__).resolve().parent / "app_pages"

st.set_page_config(page_title="CryptoLake", page_icon=":chart_with_upwards_trend:", layout="wide")
navigation = st.navigation(
    [
        st.Page(PAGES_DIR / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page(PAGES_DIR / "candles.py", title="Candles", icon=":material/candlestick_chart:"),
        st.Page(PAGES_DIR / "compare.py", title="Compare", icon=":material/compare_arrows:"),
        st.Page(PAGES_DIR / "history.py", title="History", icon=":material/history:"),
        st.Page(PAGES_DIR / "futures.py", title="Futures", icon=":material/trending_up:"),
        st.Page(PAGES_DIR / "sentiment.py", title="Sentiment", icon=":material/mood:"),
        st.Page(PAGES_DIR / "quality.py", title="Data quality", icon=":material/fact_check:"),
    ]
)
navigation.run()
