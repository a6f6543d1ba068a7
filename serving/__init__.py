"""Serving layer: the FastAPI read API over the lakehouse (``serving.api``) and the Streamlit dashboard
(``serving.dashboard``)."""
