"""Bench page: the usual Streamlit way, `st.write_stream` (it redraws the whole answer on every token)."""
import streamlit as st

from bench_page import run


def render(rec) -> None:
    with st.container(key="answer"):
        st.write_stream(rec)


run(render)
