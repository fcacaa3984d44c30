"""The Streamlit attribution explorer: UI only; every computation comes from ``attribution_core``."""
