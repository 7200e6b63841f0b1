"""Bench page: the usual Streamlit way, `st.write_stream` (it redraws the whole answer on every token)."""

import streamlit as st
from bench_page import recorder, run


def render(provider, params):
    rec = recorder(provider, params)
    with st.container(key="answer"):
        st.write_stream(rec)
    return rec


run(render)
