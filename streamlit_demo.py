"""Entry point of the explorer: ``streamlit run streamlit_demo.py``. The page lives in ``app/``."""

from app.page import run

run()
