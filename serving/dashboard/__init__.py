"""Streamlit dashboard over the CryptoLake API. Run with ``streamlit run serving/dashboard/app.py``."""
