"""Bench page: the lab's way, langchain_community's StreamlitCallbackHandler fed one token at a time.

Built as the lab builds it (`StreamlitCallbackHandler(st.container())`, default settings); the
calls are the ones a LangChain model makes: start, one `on_llm_new_token` per token, end.
"""

import streamlit as st
from bench_page import recorder, run
from langchain_community.callbacks.streamlit import StreamlitCallbackHandler
from langchain_core.outputs import LLMResult


def render(provider, params):
    rec = recorder(provider, params)
    handler = StreamlitCallbackHandler(st.container(key="answer"))
    handler.on_llm_start({}, ["bench"])
    for piece in rec:
        handler.on_llm_new_token(piece)
    handler.on_llm_end(LLMResult(generations=[[]]))
    return rec


run(render)
